// Package gctune gives the Go garbage collector a minimum heap goal.
//
// With GOGC=p the runtime collects whenever the heap has grown p % over
// the data that survived the last collection. A service whose live data is
// small but which allocates fast (kefu: tens of MB live, ≈150 MB/s of
// short-lived garbage at full load) then collects many times a second, and
// every cycle pays to mark the whole live heap again. Go has no "minimum
// heap" setting, so the tuner emulates one: after every collection it sets
// the percentage so that the next goal is
//
//	max(live × (1 + p/100), floor)
//
// When the live data grows past floor/(1+p/100) the configured p applies
// unchanged, so a large deployment behaves exactly as with GOGC=p; below
// that, the heap may use the floor and the collector runs less often.
// Unlike a memory limit near the live size, this never makes the collector
// run back to back.
package gctune

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
)

// maxPercent bounds the percentage the tuner sets, so that a nearly empty
// heap (just after start) does not get an absurd growth factor; the floor
// is still reached from 0.1 % of it.
const maxPercent = 100_000

// tuner is one Start's settings.
type tuner struct {
	percent int    // the configured growth percentage
	floor   uint64 // minimum heap goal in bytes
	stopped atomic.Bool
	cycles  atomic.Int64 // adjustments made (one per collection)
	mu      sync.Mutex
	set     int // percentage last set
}

var current atomic.Pointer[tuner]

// Start makes the collector's goal at least floor bytes of heap, with
// percent (> 0, like GOGC) above it. It replaces an earlier Start's
// settings. stop restores percent and ends the tuning.
func Start(percent int, floor int64) (stop func()) {
	t := &tuner{percent: percent, floor: uint64(max(floor, 0))}
	if old := current.Swap(t); old != nil {
		old.halt(false)
	}
	t.adjust()
	t.arm()
	return func() {
		if current.CompareAndSwap(t, nil) {
			t.halt(true)
		} else {
			t.halt(false) // replaced: the newer tuner owns the percentage
		}
	}
}

// Stop ends the running tuner, if any, restoring its configured percent.
func Stop() {
	if t := current.Swap(nil); t != nil {
		t.halt(true)
	}
}

// halt stops t; under t.mu, so that an adjustment running concurrently
// (on the finalizer goroutine) cannot set a percentage after it.
func (t *tuner) halt(restore bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stopped.Store(true)
	if restore {
		debug.SetGCPercent(t.percent)
	}
}

// Percent returns the growth percentage the running tuner last set (0 when
// none runs).
func Percent() int {
	t := current.Load()
	if t == nil {
		return 0
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.set
}

// adjustments returns how many collections the running tuner has seen.
func adjustments() int64 {
	if t := current.Load(); t != nil {
		return t.cycles.Load()
	}
	return 0
}

// sentinel is garbage whose finalizer runs after each collection. It
// holds a pointer, so the runtime never batches it with other tiny
// objects (only pointer-free ones are), whose finalizers may never run.
type sentinel struct{ t *tuner }

// arm registers a finalizer that adjusts after the next collection and
// re-arms itself, until the tuner is stopped.
func (t *tuner) arm() {
	runtime.SetFinalizer(&sentinel{t: t}, func(s *sentinel) {
		if s.t.stopped.Load() {
			return
		}
		s.t.cycles.Add(1)
		s.t.adjust()
		s.t.arm()
	})
}

// adjust sets the percentage for the next goal from the last collection's
// live heap and GC roots.
func (t *tuner) adjust() {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/gc/scan/stack:bytes"}, {Name: "/gc/scan/globals:bytes"}}
	metrics.Read(s)
	var v [3]uint64
	for i := range s {
		if s[i].Value.Kind() == metrics.KindUint64 {
			v[i] = s[i].Value.Uint64()
		}
	}
	p := percentFor(t.percent, t.floor, v[0], v[1]+v[2])
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped.Load() || p == t.set {
		return
	}
	debug.SetGCPercent(p)
	t.set = p
}

// percentFor is the percentage that makes the goal max(live × (1 +
// percent/100), floor). The runtime's goal for a percentage p is the
// larger of live + (live + roots) × p/100, roots being the scannable
// stacks and globals, and its minimum heap, 4 MiB × p/100 (runtime
// defaultHeapMinimum); p is the largest that keeps both within floor.
// Without the roots a small heap overshot the floor by the stacks'
// share, and without the minimum a nearly empty one by a factor of ten.
func percentFor(percent int, floor, live, roots uint64) int {
	if live == 0 || floor <= live+(live+roots)*uint64(percent)/100 {
		return percent
	}
	need := (floor - live) * 100 / (live + roots)
	need = min(need, floor*100/runtimeHeapMinimum, maxPercent)
	return max(percent, int(need))
}

// runtimeHeapMinimum is the Go runtime's minimum heap goal at GOGC=100.
const runtimeHeapMinimum = 4 << 20
