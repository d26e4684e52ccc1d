package report

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"kefu/conv"
	"kefu/engine"
	"kefu/internal/testredis"
)

// benchEvents is the 1M-event workload: consecutive synthetic days of
// 10,000 contacts (≈6 events each) in 60 stores with 5 agents each, until
// one million events (16 days).
const benchEvents = 1_000_000

var (
	benchOnce sync.Once
	benchEvs  []conv.Event
	benchRaw  [][]byte
)

// benchTree is a brand with 6 regions of 10 stores: a mid-size chain.
func benchTree() *conv.StoreTree {
	root := conv.StoreNode{ID: "brand", Name: "品牌"}
	for r := 1; r <= 6; r++ {
		reg := conv.StoreNode{ID: conv.StoreID(fmt.Sprintf("r%d", r)), Name: fmt.Sprintf("区域%d", r)}
		for s := 1; s <= 10; s++ {
			reg.Children = append(reg.Children, conv.StoreNode{ID: conv.StoreID(fmt.Sprintf("s-%d%02d", r, s)), Name: fmt.Sprintf("门店%d-%d", r, s)})
		}
		root.Children = append(root.Children, reg)
	}
	t, _ := conv.NewStoreTree(root)
	return t
}

func loadBench(b *testing.B) ([]conv.Event, [][]byte) {
	b.Helper()
	benchOnce.Do(func() {
		stores := benchTree().Leaves("brand")
		for day := 0; len(benchEvs) < benchEvents; day++ {
			benchEvs = append(benchEvs, GenerateDay(uint64(1000+day), t0.AddDate(0, 0, day-30), shanghai,
				GenOptions{Contacts: 10000, Stores: stores, AgentsPerStore: 5})...)
		}
		benchEvs = benchEvs[:benchEvents]
		benchRaw = make([][]byte, len(benchEvs))
		for i := range benchEvs {
			benchRaw[i], _ = json.Marshal(benchEvs[i])
		}
	})
	return benchEvs, benchRaw
}

func heapMB() float64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return float64(m.HeapAlloc) / (1 << 20)
}

// BenchmarkFold_1M folds one million decoded events in memory: the cost of
// the KPI logic alone.
func BenchmarkFold_1M(b *testing.B) {
	evs, _ := loadBench(b)
	cfg := DefaultConfig()
	base := heapMB()
	var f *fold
	b.ResetTimer()
	for b.Loop() {
		f = newFold(cfg)
		for i := range evs {
			f.apply(benchID(i), &evs[i])
			if i%cfg.PageSize == 0 {
				f.sweep()
				f.clearDirty()
			}
		}
		f.sweep()
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/benchEvents, "ns/event")
	b.ReportMetric(heapMB()-base, "state-MB")
	b.ReportMetric(float64(len(f.contacts)), "contacts")
	b.ReportMetric(float64(len(f.buckets)), "buckets")
}

func benchID(i int) string { return fmt.Sprintf("%d-0", i+1) }

// benchEngine returns an embedded engine holding the 1M-event log.
func benchEngine(b *testing.B) engine.Engine {
	b.Helper()
	_, raw := loadBench(b)
	e, err := engine.OpenEmbedded(b.TempDir(), engine.EmbeddedOptions{NoSync: true, CompactBytes: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Close() })
	ctx := context.Background()
	// Appends run in parallel batches; the log orders them as they commit,
	// which is what several gateway instances do too.
	var wg sync.WaitGroup
	const workers = 8
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < len(raw); i += workers {
				if _, err := e.Append(ctx, EventLog, raw[i]); err != nil {
					panic(err)
				}
			}
		}(w)
	}
	wg.Wait()
	return e
}

// BenchmarkRefresh_1M_Embedded is a full first refresh over a 1M-event log
// on the embedded engine: read, decode, fold and persist every page.
func BenchmarkRefresh_1M_Embedded(b *testing.B) {
	e := benchEngine(b)
	ctx := context.Background()
	cfg := DefaultConfig()
	base := heapMB()
	var r *Reporter
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		_ = e.Del(ctx, StateKey, LockKey)
		var err error
		r, err = New(ctx, e, benchTree(), cfg, Options{Now: func() time.Time { return t0 }})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		n, err := r.Refresh(ctx)
		if err != nil || n != benchEvents {
			b.Fatalf("Refresh = %d, %v", n, err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/benchEvents, "ns/event")
	b.ReportMetric(float64(b.Elapsed().Seconds())/float64(b.N), "s/refresh")
	b.ReportMetric(heapMB()-base, "state-MB")
	state, _ := e.HGetAll(ctx, StateKey)
	var size int
	for k, v := range state {
		size += len(k) + len(v)
	}
	b.ReportMetric(float64(size)/(1<<20), "persisted-MB")
	_ = r
}

// benchReporter is a Reporter that has folded the 1M-event log.
func benchReporter(b *testing.B) *Reporter {
	b.Helper()
	e := benchEngine(b)
	ctx := context.Background()
	// "now" is the afternoon of the last generated day, so "today" has data.
	last := loadBenchLastDay(b)
	r, err := New(ctx, e, benchTree(), DefaultConfig(), Options{Now: func() time.Time { return last }})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := r.Refresh(ctx); err != nil {
		b.Fatal(err)
	}
	return r
}

func loadBenchLastDay(b *testing.B) time.Time {
	evs, _ := loadBench(b)
	y, m, d := evs[len(evs)-1].At.In(shanghai).Date()
	return time.Date(y, m, d, 16, 0, 0, 0, shanghai)
}

// BenchmarkIncrementalRefresh_1M folds 5,000 new events on top of a
// 1M-event state: what every refresh interval costs in steady state.
func BenchmarkIncrementalRefresh_1M(b *testing.B) {
	r := benchReporter(b)
	ctx := context.Background()
	extra := GenerateDay(99, t0.AddDate(0, 0, 60), shanghai, GenOptions{Contacts: 1200, Stores: benchTree().Leaves("brand")})[:5000]
	raw := make([][]byte, len(extra))
	for i := range extra {
		raw[i], _ = json.Marshal(extra[i])
	}
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		for _, x := range raw {
			if _, err := r.eng.Append(ctx, EventLog, x); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		if n, err := r.Refresh(ctx); err != nil || n != len(raw) {
			b.Fatalf("Refresh = %d, %v", n, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(raw)), "ns/event")
}

// BenchmarkLive_1M is the dashboard's live view (GET api/live, server time)
// over the state of 1M events, for HQ and for a store manager.
func BenchmarkLive_1M(b *testing.B) {
	r := benchReporter(b)
	h := NewDashboard(r, &stubLive{})
	for _, p := range []conv.Principal{admin, manager} {
		b.Run(string(p.Role), func(b *testing.B) {
			for b.Loop() {
				rec := httptest.NewRecorder()
				asPrincipal(&p, h).ServeHTTP(rec, httptest.NewRequest("GET", "/api/live", nil))
				if rec.Code != 200 {
					b.Fatal(rec.Code)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/op")
		})
	}
}

// BenchmarkPages_1M renders the heavier pages over the 1M-event state: the
// overview (trends, funnel, KPI table by store, 30 days) and KPIs by agent.
func BenchmarkPages_1M(b *testing.B) {
	r := benchReporter(b)
	h := NewDashboard(r, &stubLive{})
	for _, path := range []string{"/", "/kpi?by=agent", "/api/funnel", "/api/drill?filter=detractor"} {
		b.Run(path, func(b *testing.B) {
			for b.Loop() {
				rec := httptest.NewRecorder()
				asPrincipal(&admin, h).ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
				if rec.Code != 200 {
					b.Fatal(rec.Code, rec.Body.String())
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/op")
		})
	}
}

// BenchmarkRollupRebuild_1M is the first store/period query after a
// refresh: it rebuilds the day × store roll-up from all 1M-event buckets.
func BenchmarkRollupRebuild_1M(b *testing.B) {
	r := benchReporter(b)
	for b.Loop() {
		r.mu.Lock()
		r.gen++ // what a refresh does
		r.mu.Unlock()
		_ = r.Funnel(Query{})
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/op")
}

// BenchmarkRefresh_1M_Redis is Refresh_1M_Embedded on a real redis-server
// (the log written with pipelined XADDs in the engine's format, since one
// fsynced XADD per event would take minutes to set up).
func BenchmarkRefresh_1M_Redis(b *testing.B) {
	_, raw := loadBench(b)
	s := testredis.Start(b)
	client := s.Client()
	ctx := context.Background()
	const prefix = "kefu:"
	for i := 0; i < len(raw); i += 2000 {
		p := client.Pipeline()
		for _, x := range raw[i:min(i+2000, len(raw))] {
			p.XAdd(ctx, &redis.XAddArgs{Stream: prefix + EventLog, ID: "*", Values: []any{"d", x}})
		}
		if _, err := p.Exec(ctx); err != nil {
			b.Fatal(err)
		}
	}
	e := engine.NewRedis(client, prefix)
	cfg := DefaultConfig()
	base := heapMB()
	var r *Reporter
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		_ = e.Del(ctx, StateKey, LockKey)
		var err error
		r, err = New(ctx, e, benchTree(), cfg, Options{Now: func() time.Time { return t0 }})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if n, err := r.Refresh(ctx); err != nil || n != benchEvents {
			b.Fatalf("Refresh = %d, %v", n, err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/benchEvents, "ns/event")
	b.ReportMetric(float64(b.Elapsed().Seconds())/float64(b.N), "s/refresh")
	b.ReportMetric(heapMB()-base, "state-MB")
	runtime.KeepAlive(r)
}
