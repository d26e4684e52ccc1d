package bot

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"kefu/bot/index"
	"kefu/bot/kb"
	"kefu/conv"
)

// evalTexts reads question texts of the evaluation sets (read in place,
// never copied: evaluation-only licence).
func evalTexts(tb testing.TB) (questions, queries []string) {
	tb.Helper()
	for _, set := range []string{"bq", "afqmc", "lcqmc"} {
		for _, f := range []string{"faq.jsonl", "queries.jsonl"} {
			fh, err := os.Open(filepath.Join("/work/shared/eval", set, f))
			if err != nil {
				tb.Skipf("evaluation text not available: %v", err)
			}
			sc := bufio.NewScanner(fh)
			for sc.Scan() {
				var row struct{ Question, Query string }
				if json.Unmarshal(sc.Bytes(), &row) == nil {
					if row.Question != "" {
						questions = append(questions, row.Question)
					}
					if row.Query != "" {
						queries = append(queries, row.Query)
					}
				}
			}
			fh.Close()
		}
	}
	return questions, queries
}

// syntheticKB builds n entries from the evaluation text: the real questions
// first, then recombinations of two questions' halves (so the vocabulary
// and length distribution stay those of real customer questions), each
// with one similar question, a category and every tenth store-scoped.
func syntheticKB(tb testing.TB, n int) ([]kb.Entry, []string) {
	qs, queries := evalTexts(tb)
	r := rand.New(rand.NewPCG(1, 2))
	half := func(s string, first bool) string {
		rs := []rune(s)
		if first {
			return string(rs[:len(rs)/2])
		}
		return string(rs[len(rs)/2:])
	}
	pick := func() string { return qs[r.IntN(len(qs))] }
	entries := make([]kb.Entry, n)
	for i := range entries {
		q := pick()
		if i >= len(qs) {
			q = half(pick(), true) + half(pick(), false)
		}
		e := kb.Entry{ID: fmt.Sprintf("syn-%06d", i), Question: q, Similar: []string{half(pick(), true) + half(q, false)},
			Answer: "答案", Category: fmt.Sprintf("cat-%d", i%20)}
		if i%10 == 0 {
			e.Stores = []string{fmt.Sprintf("store-%d", i%7)}
		}
		entries[i] = e
	}
	return entries, queries
}

func benchSearch(b *testing.B, n int) {
	entries, queries := syntheticKB(b, n)
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	cfg := DefaultConfig()
	bt, err := NewWithEntries(cfg, entries, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	build := time.Since(start)
	runtime.GC()
	runtime.ReadMemStats(&after)
	ctx := context.Background()
	r := bt.cur.Load()
	f := index.Filter{Store: "store-3", Visibilities: []string{"customer"}, Statuses: []string{"published"}, Now: time.Now()}
	lat := make([]time.Duration, 0, b.N)
	cpu := make([]time.Duration, 0, b.N)
	// Thread CPU time is measured besides wall time: on a shared machine
	// wall-clock tails include time the OS gave to other processes, while
	// CPU time is what one query costs one core.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c0 := threadCPU()
		t0 := time.Now()
		if _, _, err := r.search(ctx, queries[i%len(queries)], f, 5); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
		cpu = append(cpu, threadCPU()-c0)
	}
	b.StopTimer()
	slices.Sort(lat)
	slices.Sort(cpu)
	q := func(d []time.Duration, p float64) float64 {
		return float64(d[min(len(d)-1, int(p*float64(len(d))))].Nanoseconds()) / 1e6
	}
	b.ReportMetric(q(lat, 0.50), "p50_ms")
	b.ReportMetric(q(lat, 0.99), "p99_ms")
	b.ReportMetric(q(cpu, 0.50), "cpu_p50_ms")
	b.ReportMetric(q(cpu, 0.99), "cpu_p99_ms")
	b.ReportMetric(float64(after.HeapAlloc-min(before.HeapAlloc, after.HeapAlloc))/(1<<20), "heap_MB")
	b.ReportMetric(build.Seconds(), "build_s")
	runtime.KeepAlive(bt)
}

// threadCPU is the CPU time consumed by the calling OS thread.
func threadCPU() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

// BenchmarkSearch10k measures retrieval (normalise, embed, search, filter,
// pool) on a 10k-entry synthetic KB; heap_MB is the live heap of the bot
// (model + index + entries) after building.
func BenchmarkSearch10k(b *testing.B) { benchSearch(b, 10_000) }

// BenchmarkSearch100k is BenchmarkSearch10k at 100k entries.
func BenchmarkSearch100k(b *testing.B) { benchSearch(b, 100_000) }

// BenchmarkPublishIncremental measures re-publishing a 10k KB with 1% changed.
func BenchmarkPublishIncremental(b *testing.B) {
	entries, _ := syntheticKB(b, 10_000)
	bt, err := NewWithEntries(DefaultConfig(), entries, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := 0; j < 100; j++ {
			e := &entries[(i*100+j*97)%len(entries)]
			e.Similar = append(slices.Clone(e.Similar), fmt.Sprintf("变体%d", i))
		}
		if err := bt.Publish(context.Background(), entries, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRespond measures a whole Respond (state load/save in memory,
// handoff checks, retrieval, decision, journal append in memory) on the
// sample KB, concurrently from all Ps.
func BenchmarkRespond(b *testing.B) {
	bt := newSampleBot(b, nil)
	qs := []string{"你们几点关门", "怎么退货", "退款多久到账", "满多少包邮", "积分怎么用", "发票开错了", "火星天气"}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			_, err := bt.Respond(context.Background(), Query{Text: qs[i%len(qs)], Customer: conv.CustomerID(fmt.Sprint("c", i%97))})
			if err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}
