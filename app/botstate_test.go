package app

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"kefu/bot"
	"kefu/engine"
)

func TestWriteBehind_ServesLatestAndPersists(t *testing.T) {
	eng, err := engine.OpenEmbedded(t.TempDir(), engine.EmbeddedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	inner := bot.EngineState(eng)
	w := newWriteBehind(inner, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx := context.Background()
	m := bot.Memory{Misses: 1, RateEntry: "hours-001"}
	if err := w.Save(ctx, "demo:u1", m, time.Minute); err != nil {
		t.Fatal(err)
	}
	if got, _ := w.Load(ctx, "demo:u1"); got.Misses != 1 || got.RateEntry != "hours-001" {
		t.Fatalf("write-behind state not visible before the flush: %+v", got)
	}
	if got, _ := inner.Load(ctx, "demo:u1"); got.Misses != 0 {
		t.Fatalf("written before the flush: %+v", got)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- w.run(rctx) }()
	for _, q := range []string{"发票", "退货", "营业时间"} {
		_ = w.Append(ctx, bot.Record{Kind: bot.RecFallback, Question: q})
	}
	cancel()
	<-done
	if got, _ := inner.Load(ctx, "demo:u1"); got.Misses != 1 {
		t.Fatalf("not persisted after run: %+v", got)
	}
	recs, err := w.Records(ctx)
	if err != nil || len(recs) != 3 || recs[0].Question != "发票" || recs[2].Question != "营业时间" {
		t.Fatalf("journal: %v %+v", err, recs)
	}
	w.mu.Lock()
	n := len(w.dirty)
	w.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d entries still dirty after the flush", n)
	}
}
