package engine_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"kefu/engine"
)

// maxPipeline records the longest pipeline the client sent.
type maxPipeline struct{ max atomic.Int64 }

func (m *maxPipeline) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (m *maxPipeline) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (m *maxPipeline) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for n := int64(len(cmds)); ; {
			cur := m.max.Load()
			if n <= cur || m.max.CompareAndSwap(cur, n) {
				break
			}
		}
		return next(ctx, cmds)
	}
}

// Concurrent Gets, Sets and SetNXs share pipelines (the batcher) and each
// caller still gets its own reply: its own values back, and exactly one
// winner per contended SetNX.
func TestRedisBatcher_ConcurrentCallers(t *testing.T) {
	client := standalone(t).Client()
	hook := &maxPipeline{}
	client.AddHook(hook)
	e := engine.NewRedis(client, uniquePrefix())
	ctx := context.Background()
	const callers, rounds = 64, 40
	var wins [rounds]atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				key := fmt.Sprintf("k:%d:%d", c, r)
				val := fmt.Sprintf("v:%d:%d", c, r)
				if err := e.Set(ctx, key, []byte(val), 0); err != nil {
					errs <- err
					return
				}
				got, err := e.Get(ctx, key)
				if err != nil || string(got) != val {
					errs <- fmt.Errorf("Get(%s) = %q, %v; want %q", key, got, err, val)
					return
				}
				if _, err := e.Get(ctx, key+":absent"); !errors.Is(err, engine.ErrNotFound) {
					errs <- fmt.Errorf("Get of an absent key: %v", err)
					return
				}
				ok, err := e.SetNX(ctx, fmt.Sprintf("nx:%d", r), []byte(val), 0)
				if err != nil {
					errs <- err
					return
				}
				if ok {
					wins[r].Add(1)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for r := range rounds {
		if n := wins[r].Load(); n != 1 {
			t.Fatalf("SetNX round %d: %d winners, want 1", r, n)
		}
	}
	if m := hook.max.Load(); m < 2 {
		t.Fatalf("longest pipeline held %d commands: concurrent callers did not share pipelines", m)
	}

	// After Close nothing is sent and callers are told.
	check(t, e.Close())
	if _, err := e.Get(ctx, "k:0:0"); !errors.Is(err, engine.ErrClosed) {
		t.Fatalf("Get after Close: %v, want ErrClosed", err)
	}
	if err := e.Set(ctx, "k", []byte("v"), 0); !errors.Is(err, engine.ErrClosed) {
		t.Fatalf("Set after Close: %v, want ErrClosed", err)
	}
}
