package bench

import (
	"math/bits"
	"time"
)

// hist is a log-linear latency histogram in microseconds: exact below
// 64 µs, then 64 buckets per power of two (≈1.5 % relative error). It is
// per worker (no locks on the hot path) and merged at the end, so the
// generator's bookkeeping costs a few nanoseconds per request.
type hist struct {
	counts [histBuckets]uint64
	n      uint64
	max    uint64
}

const (
	histSub     = 64
	histBuckets = histSub + 40*histSub
)

func histIndex(us uint64) int {
	if us < histSub {
		return int(us)
	}
	exp := bits.Len64(us) - 7 // us>>exp lands in [64, 128)
	i := histSub + exp*histSub + int(us>>uint(exp)) - histSub
	if i >= histBuckets {
		i = histBuckets - 1
	}
	return i
}

// histValue is the midpoint of bucket i in microseconds.
func histValue(i int) float64 {
	if i < histSub {
		return float64(i)
	}
	exp := (i - histSub) / histSub
	sub := (i-histSub)%histSub + histSub
	lo := float64(uint64(sub) << uint(exp))
	return lo + float64(uint64(1)<<uint(exp))/2
}

func (h *hist) record(d time.Duration) {
	us := uint64(d / time.Microsecond)
	h.counts[histIndex(us)]++
	h.n++
	if us > h.max {
		h.max = us
	}
}

func (h *hist) merge(o *hist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	if o.max > h.max {
		h.max = o.max
	}
}

// quantile returns the q-quantile (0 < q ≤ 1) in milliseconds.
func (h *hist) quantile(q float64) float64 {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.5)
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			v := histValue(i)
			if v > float64(h.max) {
				v = float64(h.max)
			}
			return v / 1000
		}
	}
	return float64(h.max) / 1000
}
