package bot

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"kefu/conv"
	"kefu/engine"
)

// fakeEngine implements the few engine.Engine methods EngineState uses
// (Get, Set with TTL, Del, Append, ReadLog); the rest panic via the nil
// embedded interface. Unlike the real engine it lets the test move the
// clock, to check expiry without sleeping.
type fakeEngine struct {
	engine.Engine
	mu   sync.Mutex
	kv   map[string][]byte
	exp  map[string]time.Time
	logs map[string][]engine.Record
	now  func() time.Time
}

func newFakeEngine() *fakeEngine {
	return &fakeEngine{kv: map[string][]byte{}, exp: map[string]time.Time{}, logs: map[string][]engine.Record{}, now: time.Now}
}

func (f *fakeEngine) Get(_ context.Context, k string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.kv[k]
	if !ok || (!f.exp[k].IsZero() && !f.now().Before(f.exp[k])) {
		return nil, engine.ErrNotFound
	}
	return v, nil
}

func (f *fakeEngine) Set(_ context.Context, k string, v []byte, ttl time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.kv[k] = append([]byte(nil), v...)
	f.exp[k] = time.Time{}
	if ttl > 0 {
		f.exp[k] = f.now().Add(ttl)
	}
	return nil
}

func (f *fakeEngine) Del(_ context.Context, keys ...string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, k := range keys {
		delete(f.kv, k)
	}
	return nil
}

func (f *fakeEngine) Append(_ context.Context, log string, data []byte) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := strconv.Itoa(len(f.logs[log]) + 1)
	f.logs[log] = append(f.logs[log], engine.Record{ID: id, Data: append([]byte(nil), data...)})
	return id, nil
}

func (f *fakeEngine) ReadLog(_ context.Context, log, after string, count int) ([]engine.Record, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	start := 0
	if after != "" {
		start, _ = strconv.Atoi(after)
	}
	recs := f.logs[log]
	if start >= len(recs) {
		return nil, nil
	}
	return append([]engine.Record(nil), recs[start:min(len(recs), start+count)]...), nil
}

func TestEngineState_SharedAcrossBots(t *testing.T) {
	e := newFakeEngine()
	clock := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	e.now = func() time.Time { return clock }
	// Two bots on one engine stand for two gateway instances.
	mk := func() *Bot {
		cfg := DefaultConfig()
		cfg.KB = samplePath(t)
		cfg.Answer, cfg.Clarify, cfg.Margin = 0.99, 0.01, 0.5
		b, err := New(cfg, EngineState(e), nil)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	b1, b2 := mk(), mk()
	d := ask(t, b1, "wx:1", "", "退货")
	if d.Action != ActClarify {
		t.Fatalf("want clarify, got %s", d.Action)
	}
	d2 := ask(t, b2, "wx:1", "", "1")
	if d2.Action != ActAnswer || d2.EntryID != d.Candidates[0].EntryID {
		t.Fatalf("second instance did not see the pending choice: %s %s", d2.Action, d2.EntryID)
	}
	// The journal is the engine log, visible to both.
	recs, err := b2.journal.Records(context.Background())
	if err != nil || len(recs) < 2 {
		t.Fatalf("journal: %v %d records", err, len(recs))
	}
	// Memory expires with the TTL: after it, "1" is a new question.
	ask(t, b1, "wx:2", "", "退货")
	clock = clock.Add(DefaultStateTTL + time.Second)
	if d := ask(t, b2, "wx:2", "", "1"); d.Action == ActAnswer && d.Reason == "picked" {
		t.Fatal("pending choice survived its TTL")
	}
}

func TestMemoryState_Expiry(t *testing.T) {
	s := NewMemoryState()
	ctx := context.Background()
	c := conv.CustomerID("c")
	if err := s.Save(ctx, c, Memory{Misses: 1}, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	if m, _ := s.Load(ctx, c); m.Misses != 0 {
		t.Fatalf("expired memory returned: %+v", m)
	}
	s.Save(ctx, c, Memory{Misses: 2}, time.Hour)
	if m, _ := s.Load(ctx, c); m.Misses != 2 {
		t.Fatalf("got %+v", m)
	}
	s.Save(ctx, c, Memory{}, time.Hour)
	if m, _ := s.Load(ctx, c); fmt.Sprint(m) != fmt.Sprint(Memory{}) {
		t.Fatalf("zero memory not cleared: %+v", m)
	}
}

// TestEngineState_EmbeddedEngine runs the adapter on the real embedded
// engine: memory shared by two bots, durable across reopening the engine,
// journal on the engine log, TTL honoured.
func TestEngineState_EmbeddedEngine(t *testing.T) {
	dir := t.TempDir()
	e, err := engine.OpenEmbedded(dir, engine.EmbeddedOptions{Logf: func(string, ...any) {}})
	if err != nil {
		t.Fatal(err)
	}
	mk := func(e engine.Engine, ttl time.Duration) *Bot {
		cfg := DefaultConfig()
		cfg.KB = samplePath(t)
		cfg.Answer, cfg.Clarify, cfg.Margin, cfg.StateTTL = 0.99, 0.01, 0.5, ttl
		b, err := New(cfg, EngineState(e), nil)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	b1 := mk(e, time.Hour)
	d := ask(t, b1, "wx:9", "", "退货")
	if d.Action != ActClarify {
		t.Fatalf("want clarify, got %s", d.Action)
	}
	// Restart the engine: the pending choice is durable.
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e2, err := engine.OpenEmbedded(dir, engine.EmbeddedOptions{Logf: func(string, ...any) {}})
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close()
	b2 := mk(e2, 300*time.Millisecond)
	if d2 := ask(t, b2, "wx:9", "", "2"); d2.Action != ActAnswer || d2.EntryID != d.Candidates[1].EntryID {
		t.Fatalf("after engine restart: %s %s, want answer %s", d2.Action, d2.EntryID, d.Candidates[1].EntryID)
	}
	recs, err := b2.journal.Records(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[RecordKind]int{}
	for _, r := range recs {
		kinds[r.Kind]++
	}
	if kinds[RecClarify] != 1 || kinds[RecPick] != 1 {
		t.Errorf("journal kinds %v", kinds)
	}
	ask(t, b2, "wx:10", "", "退货")
	time.Sleep(500 * time.Millisecond)
	if d := ask(t, b2, "wx:10", "", "1"); d.Reason == "picked" {
		t.Fatal("pending choice survived its TTL on the embedded engine")
	}
}
