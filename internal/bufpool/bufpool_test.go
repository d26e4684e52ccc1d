package bufpool

import "testing"

func TestPoolKeepsOnlyBuffersUpToMax(t *testing.T) {
	p := New(16, 64)
	bp := p.Get()
	if len(*bp) != 0 || cap(*bp) < 16 {
		t.Fatalf("new buffer len %d cap %d", len(*bp), cap(*bp))
	}
	p.Put(bp, append(*bp, "hello"...))
	if got := p.Get(); len(*got) != 0 {
		t.Fatalf("a recycled buffer is not empty: %q", *got)
	}
	if allocs := testing.AllocsPerRun(100, func() {
		if raceEnabled {
			return // sync.Pool drops items at random under -race
		}
		bp := p.Get()
		p.Put(bp, append(*bp, "payload"...))
	}); allocs != 0 {
		t.Fatalf("%.1f allocations per Get/Put", allocs)
	}
	bp = p.Get()
	p.Put(bp, append(*bp, make([]byte, 1000)...)) // grew past max: dropped
	if got := p.Get(); cap(*got) > 64 {
		t.Fatalf("a buffer past max came back: cap %d", cap(*got))
	}
}
