package report

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"kefu/conv"
	"kefu/engine"
	"kefu/internal/testredis"
)

// forEachEngine runs fn on the embedded engine and on a real redis-server.
func forEachEngine(t *testing.T, fn func(t *testing.T, e engine.Engine, reopen func() engine.Engine)) {
	t.Run("embedded", func(t *testing.T) {
		dir := t.TempDir()
		open := func() engine.Engine {
			e, err := engine.OpenEmbedded(dir, engine.EmbeddedOptions{NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			return e
		}
		var cur engine.Engine = open()
		t.Cleanup(func() { cur.Close() })
		fn(t, cur, func() engine.Engine {
			cur.Close()
			cur = open()
			return cur
		})
	})
	t.Run("redis", func(t *testing.T) {
		s := testredis.Start(t)
		e := engine.NewRedis(s.Client(), "kefu:")
		fn(t, e, func() engine.Engine { return e })
	})
}

func appendAll(t testing.TB, e engine.Engine, evs []conv.Event) {
	t.Helper()
	ctx := context.Background()
	for i := range evs {
		b, _ := json.Marshal(evs[i])
		if _, err := e.Append(ctx, EventLog, b); err != nil {
			t.Fatal(err)
		}
	}
}

func newReporter(t testing.TB, e engine.Engine, cfg Config) *Reporter {
	t.Helper()
	r, err := New(context.Background(), e, SampleTree(), cfg, Options{Now: func() time.Time { return t0.Add(30 * time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// snapshot is everything a report shows, without the definitions' timestamps.
type snapshot struct {
	Stores, Agents, Days Table
	Funnel               Funnel
}

func snap(r *Reporter) snapshot {
	strip := func(t Table) Table { t.Definitions = nil; return t }
	return snapshot{
		Stores: strip(r.KPIs(Query{By: DimStore})),
		Agents: strip(r.KPIs(Query{By: DimAgent})),
		Days:   strip(r.KPIs(Query{By: DimDay})),
		Funnel: r.Funnel(Query{}),
	}
}

// reference computes the snapshot with an in-memory fold of evs.
func reference(t *testing.T, cfg Config, evs []conv.Event) snapshot {
	t.Helper()
	r := &Reporter{cfg: cfg, tree: SampleTree(), defs: Definitions(cfg), loc: cfg.location(), f: runFold(t, cfg, evs),
		now: func() time.Time { return t0.Add(30 * time.Hour) }} // the clock newReporter uses
	return snap(r)
}

func sameSnapshot(t *testing.T, got, want snapshot) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		g, _ := json.Marshal(got.Stores.Total)
		w, _ := json.Marshal(want.Stores.Total)
		t.Fatalf("report differs from the reference\n got total %s\nwant total %s", g, w)
	}
}

func testDay(t testing.TB) []conv.Event {
	return GenerateDay(7, t0, shanghai, GenOptions{Contacts: 1200})
}

// smallDay keeps the tests that need several passes quick on a Redis that
// fsyncs every write.
func smallDay(t testing.TB) []conv.Event {
	return GenerateDay(11, t0, shanghai, GenOptions{Contacts: 250})
}

func TestReporter_ReplayDaySameOnBothEngines(t *testing.T) {
	evs := testDay(t)
	cfg := DefaultConfig()
	cfg.PageSize = 777 // pages end mid-contact
	want := reference(t, cfg, evs)
	if want.Stores.Total.Counts.Contacts < 1150 || want.Funnel.Stages[len(want.Funnel.Stages)-1].Count == 0 {
		t.Fatalf("synthetic day too thin: %+v", want.Stores.Total.Counts)
	}
	forEachEngine(t, func(t *testing.T, e engine.Engine, _ func() engine.Engine) {
		appendAll(t, e, evs)
		r := newReporter(t, e, cfg)
		n, err := r.Refresh(context.Background())
		if err != nil || n != len(evs) {
			t.Fatalf("Refresh = %d, %v; want %d", n, err, len(evs))
		}
		sameSnapshot(t, snap(r), want)
	})
}

func TestReporter_IncrementalAcrossRestart(t *testing.T) {
	evs := smallDay(t)
	cfg := DefaultConfig()
	cfg.PageSize = 500
	want := reference(t, cfg, evs)
	forEachEngine(t, func(t *testing.T, e engine.Engine, reopen func() engine.Engine) {
		ctx := context.Background()
		half := len(evs) / 2
		appendAll(t, e, evs[:half])
		r := newReporter(t, e, cfg)
		if n, err := r.Refresh(ctx); err != nil || n != half {
			t.Fatalf("first Refresh = %d, %v", n, err)
		}
		if n, _ := r.Refresh(ctx); n != 0 {
			t.Fatalf("second Refresh read %d records; the cursor did not hold", n)
		}
		cur, err := e.HGet(ctx, StateKey, fieldCursor)
		if err != nil || string(cur) != r.Cursor() {
			t.Fatalf("persisted cursor %q, %v; in memory %q", cur, err, r.Cursor())
		}
		r.release(ctx) // a clean shutdown hands the lease over
		e = reopen()
		appendAll(t, e, evs[half:])
		r2 := newReporter(t, e, cfg)
		if n, err := r2.Refresh(ctx); err != nil || n != len(evs)-half {
			t.Fatalf("Refresh after restart = %d, %v; want %d", n, err, len(evs)-half)
		}
		sameSnapshot(t, snap(r2), want)
	})
}

func TestReporter_ParameterChangeRebuilds(t *testing.T) {
	evs := smallDay(t)
	forEachEngine(t, func(t *testing.T, e engine.Engine, _ func() engine.Engine) {
		ctx := context.Background()
		appendAll(t, e, evs)
		r := newReporter(t, e, DefaultConfig())
		if _, err := r.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		r.release(ctx)
		cfg := DefaultConfig()
		cfg.ServiceLevelSeconds = 30
		r2 := newReporter(t, e, cfg)
		if _, err := r2.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		sameSnapshot(t, snap(r2), reference(t, cfg, evs))
		hist, err := r2.DefinitionHistory(ctx)
		if err != nil || len(hist) != len(Definitions(cfg))+1 {
			t.Fatalf("definition history has %d entries (%v); want both service-level versions", len(hist), err)
		}
	})
}

func TestReporter_FollowerAgreesWithLeader(t *testing.T) {
	evs := smallDay(t)
	s := testredis.Start(t)
	e := engine.NewRedis(s.Client(), "kefu:")
	ctx := context.Background()
	cfg := DefaultConfig()
	a, b := newReporter(t, e, cfg), newReporter(t, e, cfg)
	appendAll(t, e, evs[:len(evs)/3])
	for _, r := range []*Reporter{a, b} {
		if _, err := r.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if a.leader == b.leader {
		t.Fatalf("leaders: a=%v b=%v; want exactly one", a.leader, b.leader)
	}
	appendAll(t, e, evs[len(evs)/3:])
	for _, r := range []*Reporter{a, b} {
		if _, err := r.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
	}
	want := reference(t, cfg, evs)
	sameSnapshot(t, snap(a), want)
	sameSnapshot(t, snap(b), want)
	// The leader steps down; the follower takes over from the persisted state.
	leader, follower := a, b
	if b.leader {
		leader, follower = b, a
	}
	leader.release(ctx)
	if _, err := follower.Refresh(ctx); err != nil || !follower.leader {
		t.Fatalf("follower did not take the lease: %v", err)
	}
	sameSnapshot(t, snap(follower), want)
}

func TestReporter_LeaseLostStopsWriting(t *testing.T) {
	e := openEmbedded(t)
	ctx := context.Background()
	evs := smallDay(t)
	cfg := DefaultConfig()
	appendAll(t, e, evs[:len(evs)/2])
	r := newReporter(t, e, cfg)
	if _, err := r.Refresh(ctx); err != nil || !r.leader {
		t.Fatalf("first refresh: %v (leader %v)", err, r.leader)
	}
	before, _ := e.HGet(ctx, StateKey, fieldCursor)
	// Another instance takes the lease (ours expired while we were busy).
	if err := e.Set(ctx, LockKey, []byte("someone-else"), time.Minute); err != nil {
		t.Fatal(err)
	}
	appendAll(t, e, evs[len(evs)/2:])
	if _, err := r.Refresh(ctx); err != nil || r.leader {
		t.Fatalf("refresh after losing the lease: %v (leader %v)", err, r.leader)
	}
	if after, _ := e.HGet(ctx, StateKey, fieldCursor); string(after) != string(before) {
		t.Fatalf("persisted cursor moved without the lease: %s → %s", before, after)
	}
	// It followed: folded in memory only, and agrees with the reference.
	sameSnapshot(t, snap(r), reference(t, cfg, evs))
}

func TestReporter_RollupAgreesWithBuckets(t *testing.T) {
	r := threeDays(t)
	byStore := r.KPIs(Query{By: DimStore})  // day × store roll-up
	byAgent := r.KPIs(Query{By: DimAgent})  // fine buckets
	byChan := r.KPIs(Query{By: DimChannel}) // fine buckets
	if !reflect.DeepEqual(byStore.Total, byAgent.Total) || !reflect.DeepEqual(byStore.Total, byChan.Total) {
		t.Fatalf("totals differ:\n store %+v\n agent %+v", byStore.Total.Counts, byAgent.Total.Counts)
	}
	// A new page invalidates the roll-up.
	before := r.KPIs(Query{}).Total.Counts.Contacts
	appendAll(t, r.eng, GenerateDay(5, t0, shanghai, GenOptions{Contacts: 20}))
	if _, err := r.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if after := r.KPIs(Query{}).Total.Counts.Contacts; after <= before {
		t.Errorf("contacts %d after a refresh, %d before: stale roll-up", after, before)
	}
}

func TestReporter_RunRefreshesAndHandsOverOnStop(t *testing.T) {
	e := openEmbedded(t)
	evs := smallDay(t)
	appendAll(t, e, evs)
	cfg := DefaultConfig()
	cfg.RefreshInterval = 10 * time.Millisecond
	r := newReporter(t, e, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for r.KPIs(Query{}).Total.Counts.Contacts == 0 {
		if time.Now().After(deadline) {
			t.Fatal("Run did not fold the log")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	if _, err := e.Get(context.Background(), LockKey); err == nil {
		t.Error("the lease is still held after Run returned")
	}
}

func TestReporter_ReadOnlyNeverWipesTheStore(t *testing.T) {
	e := openEmbedded(t)
	ctx := context.Background()
	evs := smallDay(t)
	appendAll(t, e, evs)
	r := newReporter(t, e, DefaultConfig())
	if _, err := r.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	r.release(ctx)
	stored, _ := e.HGetAll(ctx, StateKey)
	// A CLI run with other parameters computes with them, in memory only.
	cfg := DefaultConfig()
	cfg.ServiceLevelSeconds = 45
	ro, err := New(ctx, e, SampleTree(), cfg, Options{ReadOnly: true, Now: func() time.Time { return t0.Add(30 * time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ro.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	sameSnapshot(t, snap(ro), reference(t, cfg, evs))
	after, _ := e.HGetAll(ctx, StateKey)
	if !reflect.DeepEqual(stored, after) {
		t.Error("a read-only reporter changed the persisted state")
	}
	if _, err := e.Get(ctx, LockKey); err == nil {
		t.Error("a read-only reporter took the lease")
	}
}
