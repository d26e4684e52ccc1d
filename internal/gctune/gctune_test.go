package gctune

import (
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

func TestPercentFor(t *testing.T) {
	const mib = 1 << 20
	cases := []struct {
		percent            int
		floor, live, roots uint64
		want               int
	}{
		{50, 100 * mib, 0, 0, 50},                // nothing measured yet
		{50, 100 * mib, 200 * mib, 0, 50},        // live above the floor
		{50, 100 * mib, 100 * mib, 0, 50},        // at the floor
		{50, 100 * mib, 80 * mib, 0, 50},         // 80 × 1.5 = 120 > floor
		{50, 100 * mib, 50 * mib, 0, 100},        // 50 × 2 = floor
		{50, 100 * mib, 40 * mib, 0, 150},        // 40 × 2.5 = floor
		{50, 100 * mib, 40 * mib, 10 * mib, 120}, // 40 + 50 × 1.2 = floor
		{50, 100 * mib, 60 * mib, 10 * mib, 57},  // 60 + 70 × 0.57 ≈ floor
		{50, 100 * mib, 60 * mib, 30 * mib, 50},  // 60 + 90 × 0.5 > floor
		{50, 100 * mib, 1, 0, 2500},              // the runtime's minimum heap: 4 MiB × 25
		{50, 2 * mib, 1 * mib, 0, 50},            // the runtime's minimum at 50 % is 2 MiB already
		{50, 8 * mib, 1 * mib, 0, 200},           // the minimum: 4 MiB × 2 = floor (1 × 8 would overshoot)
		{200, 100 * mib, 50 * mib, 0, 200},       // the configured percent is larger
		{50, 0, 50 * mib, 0, 50},                 // no floor
		{100, 64 * mib, 16 * mib, 0, 300},        // 16 × 4 = 64
		{100, 64 * mib, 63 * mib, 0, 100},        // 63 × 2 > 64
		{10, 64 * mib, 60 * mib, 0, 10},          // 60 × 1.1 > 64
		{10, 64 * mib, 32 * mib, 0, 100},         // 32 × 2 = 64
		{50, 3 * mib / 2, 1 * mib, 0, 50},        // 1 × 1.5 = floor
		{50, 64*mib + 1, 16 * mib, 0, 300},       // integer percent: within 1 %
		{1000, 2 * mib, 1 * mib, 0, 1000},        // large configured percent
		{50, 1 << 40, 1 << 30, 0, maxPercent},    // a floor 1024 × live: capped
	}
	for _, c := range cases {
		if got := percentFor(c.percent, c.floor, c.live, c.roots); got != c.want {
			t.Errorf("percentFor(%d, %d, %d, %d) = %d, want %d", c.percent, c.floor, c.live, c.roots, got, c.want)
		}
	}
}

// garbage allocates n bytes in 64 KiB pieces that die at once.
var sink []byte

func garbage(n int) {
	for i := 0; i < n; i += 64 << 10 {
		sink = make([]byte, 64<<10)
	}
	sink = nil
}

// cycles returns the collections that allocating n bytes of garbage causes.
func cycles(n int) uint32 {
	runtime.GC()
	var a, b runtime.MemStats
	runtime.ReadMemStats(&a)
	garbage(n)
	runtime.ReadMemStats(&b)
	return b.NumGC - a.NumGC
}

// TestFloorCutsCollections: with a small live heap, a 64 MiB floor makes
// 256 MiB of garbage cost a handful of collections instead of one every few
// MiB; stopping restores the configured percentage.
func TestFloorCutsCollections(t *testing.T) {
	old := debug.SetGCPercent(50)
	defer debug.SetGCPercent(old)
	const n = 256 << 20
	plain := cycles(n)
	stop := Start(50, 64<<20)
	waitAdjusted(t)
	tuned := cycles(n)
	stop()
	if got := debug.SetGCPercent(50); got != 50 {
		t.Errorf("after stop GOGC = %d, want 50", got)
	}
	t.Logf("collections for %d MiB of garbage: %d at GOGC=50, %d with a 64 MiB floor", n>>20, plain, tuned)
	if plain < 30 {
		t.Fatalf("only %d collections without the floor: the test does not measure anything", plain)
	}
	// One collection per ≈64 MiB: 4, give or take the first and last.
	if tuned < 2 || tuned > 8 {
		t.Errorf("%d collections with a 64 MiB floor, want 2..8 (256 MiB / ≈64 MiB each)", tuned)
	}
}

// TestLargeLiveKeepsPercent: once the live data alone needs more than the
// floor, the configured percentage applies unchanged.
func TestLargeLiveKeepsPercent(t *testing.T) {
	old := debug.SetGCPercent(50)
	defer debug.SetGCPercent(old)
	stop := Start(50, 16<<20)
	defer stop()
	live := make([][]byte, 0, 64)
	for range 48 {
		live = append(live, make([]byte, 1<<20))
	}
	before := adjustments()
	runtime.GC()
	waitFor(t, func() bool { return adjustments() > before })
	if p := Percent(); p != 50 {
		t.Errorf("with 48 MiB live and a 16 MiB floor the percent is %d, want 50", p)
	}
	runtime.KeepAlive(live)
	live = nil
	before = adjustments()
	runtime.GC()
	waitFor(t, func() bool { return adjustments() > before })
	if p := Percent(); p <= 50 {
		t.Errorf("with the live data gone the percent is %d, want above 50", p)
	}
}

// TestStartReplaces: a second Start takes over; the first one's stop then
// leaves the second in charge.
func TestStartReplaces(t *testing.T) {
	old := debug.SetGCPercent(50)
	defer debug.SetGCPercent(old)
	stop1 := Start(50, 1<<30)
	stop2 := Start(70, 0)
	stop1()
	if got := Percent(); got != 70 {
		t.Errorf("after the first stop Percent = %d, want the second tuner's 70", got)
	}
	stop2()
	if Percent() != 0 {
		t.Error("a tuner still runs after both stops")
	}
	if got := debug.SetGCPercent(50); got != 70 {
		t.Errorf("after the last stop GOGC = %d, want 70", got)
	}
	Start(60, 1<<30)
	Stop()
	if Percent() != 0 {
		t.Error("a tuner still runs after Stop")
	}
	if got := debug.SetGCPercent(50); got != 60 {
		t.Errorf("after Stop GOGC = %d, want 60", got)
	}
}

// waitAdjusted waits until the running tuner has seen a collection.
func waitAdjusted(t *testing.T) {
	t.Helper()
	before := adjustments()
	runtime.GC()
	waitFor(t, func() bool { return adjustments() > before })
}

// waitFor polls cond: finalizers run on their own goroutine after a
// collection, not inside runtime.GC.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("the tuner did not run after a collection")
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
}
