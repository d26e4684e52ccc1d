package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// When the WAL cannot be written (here: its file closed under it, as a
// failing disk would), every writer waiting for that batch and every later
// one gets ErrUnavailable — none hangs, none is told its write is durable.
func TestWALFailureWakesEveryWaiter(t *testing.T) {
	ctx := context.Background()
	e, err := OpenEmbedded(t.TempDir(), EmbeddedOptions{Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := e.Set(ctx, "before", []byte("ok"), 0); err != nil {
		t.Fatal(err)
	}
	e.wal.f.f.Close() // the next write+fsync fails
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- e.Set(ctx, fmt.Sprint("k", i), []byte("v"), 0)
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("writers still waiting after the WAL failed")
	}
	close(errs)
	for err := range errs {
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("write after the WAL failed: %v, want ErrUnavailable", err)
		}
	}
	if err := e.Ping(ctx); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Ping after the WAL failed: %v", err)
	}
}
