package engine_test

import (
	"context"
	"errors"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"kefu/engine"
)

// countGets counts the GET commands sent for each key (alone or in a
// pipeline, as the engine's batcher may send either) and the pipelines
// holding GETs.
type countGets struct {
	mu        sync.Mutex
	gets      map[string]int
	pipelines int
}

func (c *countGets) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *countGets) note(cmd redis.Cmder) bool {
	if args := cmd.Args(); len(args) == 2 && strings.EqualFold(cmd.Name(), "get") {
		c.mu.Lock()
		c.gets[args[1].(string)]++
		c.mu.Unlock()
		return true
	}
	return false
}

func (c *countGets) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.note(cmd)
		return next(ctx, cmd)
	}
}

func (c *countGets) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		hasGet := false
		for _, cmd := range cmds {
			hasGet = c.note(cmd) || hasGet
		}
		if hasGet {
			c.mu.Lock()
			c.pipelines++
			c.mu.Unlock()
		}
		return next(ctx, cmds)
	}
}

func (c *countGets) snapshot() (map[string]int, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.gets), c.pipelines
}

func TestRedisPrefetch(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		client func(t *testing.T) redis.UniversalClient
	}{
		{"standalone", func(t *testing.T) redis.UniversalClient { return standalone(t).Client() }},
		{"cluster", func(t *testing.T) redis.UniversalClient { return cluster(t).Client() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client := tc.client(t)
			hook := &countGets{gets: map[string]int{}}
			client.AddHook(hook)
			prefix := uniquePrefix()
			e := engine.NewRedis(client, prefix)
			t.Cleanup(func() { e.Close() })
			// Keys in different slots (no shared hash tag), as the router's are.
			check(t, e.Set(ctx, "ho:a:c1", []byte("conv-1"), 0))
			check(t, e.Set(ctx, "bot:mem:c1", []byte("mem"), time.Minute))
			check(t, e.HSet(ctx, "hash", map[string][]byte{"f": []byte("v")}))

			_, pipesBefore := hook.snapshot()
			p := e.Prefetch(ctx, "ho:a:c1", "sv:p:c1", "bot:mem:c1", "hash")
			before, pipes := hook.snapshot()
			if n := pipes - pipesBefore; n != 1 {
				t.Fatalf("Prefetch sent %d pipelines, want 1", n)
			}
			sent := func(key string) int {
				now, _ := hook.snapshot()
				return now[prefix+key] - before[prefix+key]
			}
			pctx := engine.WithPrefetched(ctx, p)

			if v, err := e.Get(pctx, "ho:a:c1"); err != nil || string(v) != "conv-1" {
				t.Fatalf("prefetched Get = %q, %v", v, err)
			}
			if _, err := e.Get(pctx, "sv:p:c1"); !errors.Is(err, engine.ErrNotFound) {
				t.Fatalf("prefetched absent key: %v, want ErrNotFound", err)
			}
			if _, err := e.Get(pctx, "hash"); !errors.Is(err, engine.ErrWrongType) {
				t.Fatalf("prefetched hash key: %v, want ErrWrongType", err)
			}
			for _, k := range []string{"ho:a:c1", "sv:p:c1", "hash"} {
				if n := sent(k); n != 0 {
					t.Fatalf("%d GETs sent for prefetched key %s, want 0", n, k)
				}
			}

			// Served once: the second Get asks Redis and sees a change made
			// by another client (another gateway instance) meanwhile.
			check(t, client.Set(ctx, prefix+"ho:a:c1", "conv-2", 0).Err())
			if v, err := e.Get(pctx, "ho:a:c1"); err != nil || string(v) != "conv-2" {
				t.Fatalf("second Get = %q, %v; want Redis's conv-2", v, err)
			}
			if n := sent("ho:a:c1"); n != 1 {
				t.Fatalf("second Get sent %d GETs, want 1", n)
			}

			// A write through this engine after the prefetch is never hidden
			// by the value read before it.
			check(t, e.Set(ctx, "bot:mem:c1", []byte("mem-2"), time.Minute))
			if v, err := e.Get(pctx, "bot:mem:c1"); err != nil || string(v) != "mem-2" {
				t.Fatalf("Get after own write = %q, %v; want mem-2", v, err)
			}

			// Keys not prefetched, and other engines, go to Redis.
			check(t, e.Set(ctx, "other", []byte("o"), 0))
			if v, err := e.Get(pctx, "other"); err != nil || string(v) != "o" {
				t.Fatalf("Get of a key not prefetched = %q, %v", v, err)
			}
			p2 := e.Prefetch(ctx, "other")
			e2 := engine.NewRedis(tc.client(t), prefix)
			t.Cleanup(func() { e2.Close() })
			if v, err := e2.Get(engine.WithPrefetched(ctx, p2), "other"); err != nil || string(v) != "o" {
				t.Fatalf("other engine's Get = %q, %v", v, err)
			}
			if _, _, ok := p2.Take("other"); !ok {
				t.Fatal("another engine's Get consumed this engine's prefetched value")
			}
		})
	}
}

// TestRedisPrefetchEveryWriteInvalidates: each kind of write through the
// engine to a prefetched key (or a stripe it shares) makes the prefetched
// value unusable.
func TestRedisPrefetchEveryWriteInvalidates(t *testing.T) {
	ctx := context.Background()
	e := newStandaloneRedis(t)
	writes := map[string]func(key string) error{
		"Set":   func(k string) error { return e.Set(ctx, k, []byte("new"), 0) },
		"SetNX": func(k string) error { _, err := e.SetNX(ctx, k, []byte("new"), 0); return err },
		"Del":   func(k string) error { return e.Del(ctx, k) },
		"StrAppend": func(k string) error {
			_, err := e.StrAppend(ctx, k, []byte("+"), 0)
			return err
		},
		"SetMany": func(k string) error { return e.SetMany(ctx, engine.Write{Key: k, Val: []byte("new")}) },
		"CompareAndSwap": func(k string) error {
			_, err := e.CompareAndSwap(ctx, k, []byte("old"), []byte("new"), 0)
			return err
		},
		"CompareAndDelete": func(k string) error { _, err := e.CompareAndDelete(ctx, k, []byte("old")); return err },
		"Update": func(k string) error {
			return e.Update(ctx, []string{k}, func(tx engine.Tx) error { tx.Set(k, []byte("new"), 0); return nil })
		},
		"ClaimAndEnqueue": func(k string) error {
			_, _, err := e.ClaimAndEnqueue(ctx, k, []byte("new"), 0, "in:{t}", engine.Job{ID: k})
			return err
		},
	}
	for name, write := range writes {
		key := "in:{t}:" + name
		check(t, e.Set(ctx, key, []byte("old"), 0))
		p := e.Prefetch(ctx, key)
		check(t, write(key))
		want, err := e.Get(ctx, key) // the engine's current value
		if err != nil && !errors.Is(err, engine.ErrNotFound) {
			t.Fatal(err)
		}
		got, gerr := e.Get(engine.WithPrefetched(ctx, p), key)
		if string(got) != string(want) || (gerr == nil) != (err == nil) {
			t.Errorf("%s: Get after the write = %q, %v; want %q, %v (not the prefetched old value)", name, got, gerr, want, err)
		}
	}
}
