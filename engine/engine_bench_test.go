package engine_test

import (
	"context"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"kefu/engine"
)

// BenchmarkClaimAndEnqueue measures the gateway's accept step under
// concurrency (16 goroutines per CPU). On the embedded engine every call
// waits for an fsync; group commit lets concurrent calls share it, which the
// frames/fsync metric shows. Compare with the serial variant, where every
// call pays a whole fsync.
//
//	go test -run '^$' -bench ClaimAndEnqueue ./engine/
func BenchmarkClaimAndEnqueue(b *testing.B) {
	b.Run("embedded", func(b *testing.B) {
		e := newEmbedded(b, engine.EmbeddedOptions{})
		benchAccept(b, e, 16)
		reportGroupCommit(b, e)
	})
	b.Run("embedded-serial", func(b *testing.B) {
		e := newEmbedded(b, engine.EmbeddedOptions{})
		benchAccept(b, e, 0)
		reportGroupCommit(b, e)
	})
	b.Run("redis", func(b *testing.B) { benchAccept(b, newStandaloneRedis(b), 16) })
	b.Run("redis-cluster", func(b *testing.B) { benchAccept(b, newClusterRedis(b), 16) })
}

// benchAccept runs ClaimAndEnqueue with fresh message IDs spread over 64
// tags; parallelism 0 means a single goroutine.
func benchAccept(b *testing.B, e engine.Engine, parallelism int) {
	ctx := context.Background()
	payload := []byte(`{"ToUserName":"kf","FromUserName":"user","MsgType":"text","Content":"你好，我想查询一下订单状态","MsgId":"1234567890"}`)
	var seq atomic.Int64
	accept := func() {
		n := seq.Add(1)
		tag := "in:{" + strconv.FormatInt(n%64, 10) + "}"
		id := strconv.FormatInt(n, 10)
		claimed, _, err := e.ClaimAndEnqueue(ctx, tag+":d:"+id, []byte("pending"), time.Hour, tag,
			engine.Job{ID: id, Data: payload, Due: time.Now()})
		if err != nil || !claimed {
			b.Fatalf("ClaimAndEnqueue = %v, %v", claimed, err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	if parallelism == 0 {
		for i := 0; i < b.N; i++ {
			accept()
		}
		return
	}
	b.SetParallelism(parallelism)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			accept()
		}
	})
}

func reportGroupCommit(b *testing.B, e *engine.Embedded) {
	s := e.Stats()
	if s.Syncs > 0 {
		b.ReportMetric(float64(s.Frames)/float64(s.Syncs), "frames/fsync")
	}
}

// BenchmarkEmbeddedGet compares reading a string held in memory with one
// moved to a cold segment file (open, pread from the page cache, CRC
// check, close), and reports the heap each kind of value keeps per key
// (the key itself, its entry and map slots included).
//
//	go test -run '^$' -bench EmbeddedGet -benchmem ./engine/
func BenchmarkEmbeddedGet(b *testing.B) {
	const keys = 20000
	value := []byte(strings.Repeat("您好，这是一条被动回复的内容。", 12)) // ≈ a dedupe record with its reply
	for _, cold := range []bool{false, true} {
		name := "hot"
		if cold {
			name = "cold"
		}
		// Filled once, outside b.Run: a sub-benchmark's function runs
		// several times, and each run's cleanup closes its engine.
		ctx := context.Background()
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		opts := engine.EmbeddedOptions{NoSync: true, StringSpillBytes: -1}
		if cold {
			opts.StringSpillBytes = 256 << 10
		}
		e := newEmbedded(b, opts)
		for i := range keys {
			if err := e.Set(ctx, "in:{1}:d:"+strconv.Itoa(i), value, time.Hour); err != nil {
				b.Fatal(err)
			}
		}
		for i := 0; cold && e.Stats().ColdStrings < keys; i++ {
			if err := e.Set(ctx, "pad:"+strconv.Itoa(i%8), value[:100], 0); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		perKey := float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / keys
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				v, err := e.Get(ctx, "in:{1}:d:"+strconv.Itoa(i%keys))
				if err != nil || len(v) != len(value) {
					b.Fatalf("Get: %d bytes, %v", len(v), err)
				}
			}
			b.ReportMetric(perKey, "heap-B/key")
		})
	}
}
