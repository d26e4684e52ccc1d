package engine

import "testing"

// FuzzApplyPayload feeds arbitrary op sequences to the state: frames are
// CRC-checked before they get here, but a snapshot or WAL written by a
// buggy or newer version must fail to load, never panic or build a state
// whose counters disagree with its contents.
func FuzzApplyPayload(f *testing.F) {
	seed := newFrame(256)
	setOp(seed, "k", []byte("value"), 0)
	seed.op(opSApp)
	seed.str("k")
	seed.bytes([]byte("+more"))
	seed.sv(0)
	seed.op(0)
	seed.op(opSCold)
	seed.str("c")
	seed.sv(0)
	seed.uv(1)
	for _, v := range []uint64{1, 10, 5, 0xdeadbeef} {
		seed.uv(v)
	}
	seed.bytes([]byte("tail"))
	seed.op(opXAdd)
	seed.str("log")
	seed.uv(1000)
	seed.uv(0)
	seed.bytes([]byte("rec"))
	seed.op(opXBlock)
	seed.str("log2")
	for _, v := range []uint64{900, 0, 905, 1, 2, 10, 40, 7, 3, 1} {
		seed.uv(v)
	}
	seed.bytes([]byte{0, 2, 3})
	seed.op(opXTrim)
	seed.str("log2")
	seed.uv(903)
	seed.op(opXCold)
	seed.str("log3")
	for _, v := range []uint64{800, 0, 3, 10, 4, 9} {
		seed.uv(v)
	}
	f.Add(seed.payload())
	f.Add([]byte{opXBlock, 1, 'l', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, p []byte) {
		s := newState()
		if _, err := s.applyPayload(p); err != nil {
			return
		}
		for key, e := range s.keys {
			if e.kind != kindLog {
				continue
			}
			n := 0
			for _, b := range e.log.blocks {
				if b.skip >= b.count {
					t.Fatalf("%s: block with every record skipped", key)
				}
				n += b.live()
				_ = b.countBefore(b.lastMs)
				_ = b.msAt(b.skip)
			}
			if n != e.log.blockRecs {
				t.Fatalf("%s: blockRecs %d, blocks hold %d", key, e.log.blockRecs, n)
			}
			_, _ = e.log.firstMs()
			e.log.trim(e.log.lastMs)
		}
	})
}
