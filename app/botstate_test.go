package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"kefu/bot"
	"kefu/engine"
)

// newTestWriteBehind wraps the bot state of a fresh embedded engine,
// closed when the test ends.
func newTestWriteBehind(t *testing.T) (bot.State, *writeBehind) {
	t.Helper()
	eng, err := engine.OpenEmbedded(t.TempDir(), engine.EmbeddedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	inner := bot.EngineState(eng)
	return inner, newWriteBehind(inner, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

func TestWriteBehind_ServesLatestAndPersists(t *testing.T) {
	inner, w := newTestWriteBehind(t)
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

// TestWriteBehind_ReusesRecordSlice: flushes swap two record slices, so
// nothing queued is lost or duplicated across flushes, and the written
// records are cleared before the slice is queued into again.
func TestWriteBehind_ReusesRecordSlice(t *testing.T) {
	_, w := newTestWriteBehind(t)
	ctx := context.Background()
	want := 0
	for round := range 5 {
		for i := range 10 + round {
			_ = w.Append(ctx, bot.Record{Kind: bot.RecFallback, Question: fmt.Sprintf("r%d-%d", round, i)})
			want++
		}
		w.flush(ctx)
		w.mu.Lock()
		spare, queued := w.spare, len(w.records)
		w.mu.Unlock()
		if queued != 0 || cap(spare) == 0 {
			t.Fatalf("round %d: %d records still queued, spare cap %d", round, queued, cap(spare))
		}
		for _, r := range spare[:cap(spare)] {
			if r.Question != "" {
				t.Fatalf("round %d: the spare slice still holds %q", round, r.Question)
			}
		}
	}
	recs, err := w.Records(ctx)
	if err != nil || len(recs) != want {
		t.Fatalf("journal: %v, %d records, want %d", err, len(recs), want)
	}
	seen := map[string]bool{}
	for _, r := range recs {
		if seen[r.Question] {
			t.Fatalf("record %q written twice", r.Question)
		}
		seen[r.Question] = true
	}
}

// gatedJournal holds every batch write until gate is closed.
type gatedJournal struct {
	bot.Journal
	batch interface {
		AppendRecords(context.Context, []bot.Record) error
	}
	entered chan struct{}
	gate    chan struct{}
}

func (g *gatedJournal) AppendRecords(ctx context.Context, rs []bot.Record) error {
	close(g.entered)
	<-g.gate
	return g.batch.AppendRecords(ctx, rs)
}

// TestWriteBehind_RecordsWaitsForFlushUnderWay: a record taken from the
// queue by a background flush is not yet in the journal; Records must wait
// for that flush rather than read without it (an agent's new suggestion
// went missing from the list it was about to approve from).
func TestWriteBehind_RecordsWaitsForFlushUnderWay(t *testing.T) {
	inner, w := newTestWriteBehind(t)
	g := &gatedJournal{Journal: w.journal, batch: inner.(interface {
		AppendRecords(context.Context, []bot.Record) error
	}), entered: make(chan struct{}), gate: make(chan struct{})}
	w.journal = g
	ctx := context.Background()
	_ = w.Append(ctx, bot.Record{Kind: bot.RecDraft, Question: "可以开发票吗公司抬头", Answer: "可以。"})
	flushed := make(chan struct{})
	go func() { w.flush(ctx); close(flushed) }()
	<-g.entered // the background flush holds the record, unwritten
	got := make(chan []bot.Record, 1)
	go func() {
		recs, err := w.Records(ctx)
		if err != nil {
			t.Error(err)
		}
		got <- recs
	}()
	select {
	case recs := <-got:
		t.Fatalf("Records returned %d records while a flush was still writing", len(recs))
	case <-time.After(50 * time.Millisecond):
	}
	close(g.gate)
	<-flushed
	if recs := <-got; len(recs) != 1 || recs[0].Question != "可以开发票吗公司抬头" {
		t.Fatalf("Records after the flush: %+v", recs)
	}
}
