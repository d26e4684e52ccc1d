package engine

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestCompareIDs(t *testing.T) {
	cases := []struct {
		a, b string
		want int
	}{
		{"1-0", "1-0", 0},
		{"1-0", "1-1", -1},
		{"2-0", "10-0", -1}, // numeric, not lexical
		{"10-0", "9-99", 1},
		{"5", "5-0", 0}, // bare ms means seq 0, as in Redis
		{"", "0-0", -1},
		{"0-0", "", 1},
		{"", "", 0},
		{"1700000000000-5", "1700000000000-12", -1},
		{"garbage", "1-0", 1}, // malformed sorts after valid IDs
		{"1-0", "garbage", -1},
		{"a", "b", -1},
	}
	for _, c := range cases {
		if got := CompareIDs(c.a, c.b); got != c.want {
			t.Errorf("CompareIDs(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}

func TestSlotTagRules(t *testing.T) {
	cases := map[string]string{
		"in:{3}:d:abc": "3",
		"{user1000}.a": "user1000",
		"foo{}{bar}":   "foo{}{bar}", // empty first tag: whole key, as in Redis
		"foo{{bar}}":   "{bar",
		"plain":        "plain",
		"kefu:{a}{b}":  "a",
	}
	for k, want := range cases {
		if got := slotTag(k); got != want {
			t.Errorf("slotTag(%q) = %q, want %q", k, got, want)
		}
	}
	if got := queueBase("kefu:", "out"); got != "{kefu:out}" {
		t.Errorf("queueBase(untagged) = %q", got)
	}
	if got := queueBase("kefu:", "in:{3}"); got != "kefu:in:{3}" {
		t.Errorf("queueBase(tagged) = %q", got)
	}
	if err := checkSameSlot("kefu:in:{3}:d:x", "kefu:in:{3}:z"); err != nil {
		t.Errorf("same tag rejected: %v", err)
	}
	if err := checkSameSlot("a", "b"); !errors.Is(err, ErrCrossSlot) {
		t.Errorf("untagged keys accepted: %v", err)
	}
}

func TestSkiplistMatchesSortedSlice(t *testing.T) {
	s := newSkiplist(cmpZKey)
	ref := map[zkey]bool{}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 20000; i++ {
		k := zkey{score: float64(rng.IntN(200)), member: string(rune('a' + rng.IntN(26)))}
		if ref[k] {
			if !s.delete(k) {
				t.Fatalf("delete(%v) missed a present key", k)
			}
			delete(ref, k)
		} else {
			if s.delete(k) {
				t.Fatalf("delete(%v) found an absent key", k)
			}
			s.insert(k)
			ref[k] = true
		}
	}
	var want []zkey
	for k := range ref {
		want = append(want, k)
	}
	slices.SortFunc(want, cmpZKey)
	var got []zkey
	for n := s.first(); n != nil; n = n.next[0] {
		got = append(got, n.key)
	}
	if s.Len() != len(want) || !slices.Equal(got, want) {
		t.Fatalf("skiplist order differs: %d vs %d keys", len(got), len(want))
	}
	// seekGE lands on the first key >= the probe.
	for i := 0; i < 500; i++ {
		probe := zkey{score: float64(rng.IntN(210) - 5), member: ""}
		idx, _ := slices.BinarySearchFunc(want, probe, cmpZKey)
		n := s.seekGE(probe)
		if idx == len(want) {
			if n != nil {
				t.Fatalf("seekGE(%v) = %v, want nil", probe, n.key)
			}
		} else if n == nil || n.key != want[idx] {
			t.Fatalf("seekGE(%v) wrong", probe)
		}
	}
}

func TestNextFrameRejectsDamage(t *testing.T) {
	f := newFrame(0)
	f.op(opSet)
	f.str("k")
	f.bytes([]byte("v"))
	f.sv(0)
	good := append([]byte(nil), f.finish()...)
	if p, n, ok := nextFrame(good); !ok || n != len(good) || len(p) != len(good)-frameHeader {
		t.Fatal("valid frame rejected")
	}
	for i := range good {
		bad := append([]byte(nil), good...)
		bad[i] ^= 0x40
		if _, _, ok := nextFrame(bad); ok {
			t.Fatalf("frame with byte %d flipped accepted", i)
		}
	}
	for i := 0; i < len(good); i++ {
		if _, _, ok := nextFrame(good[:i]); ok {
			t.Fatalf("truncated frame (%d bytes) accepted", i)
		}
	}
	// A CRC-valid frame with a malformed op is reported, not applied.
	g := newFrame(0)
	g.op(opSet)
	g.uv(1000) // string length beyond the payload
	if _, err := newState().applyPayload(g.payload()); err == nil {
		t.Fatal("malformed op accepted")
	}
}

func TestEmbeddedSweepPurgesExpiredKeys(t *testing.T) {
	e, err := OpenEmbedded(t.TempDir(), EmbeddedOptions{SweepInterval: 10 * time.Millisecond, NoSync: true, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx := context.Background()
	for i := 0; i < 3000; i++ {
		if err := e.Set(ctx, "tmp:"+strings.Repeat("x", i%7)+string(rune(i)), []byte("v"), 20*time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Set(ctx, "keep", []byte("v"), time.Hour); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		e.mu.RLock()
		n, exp := len(e.st.keys), len(e.st.expiring)
		e.mu.RUnlock()
		if n == 1 && exp == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sweeper left %d keys (%d with TTL), want only 'keep'", n, exp)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestFramePoolsKeepCapacity: whatever the pools hand back after frames of
// every size (some grown past their class) were freed, a new frame is
// empty and has room for its hint.
func TestFramePoolsKeepCapacity(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 5000 {
		hint := rng.IntN(1 << uint(rng.IntN(20)))
		f := newFrame(hint)
		if len(f.b) != frameHeader || cap(f.b) < frameHeader+hint {
			t.Fatalf("step %d: newFrame(%d): len %d cap %d", i, hint, len(f.b), cap(f.b))
		}
		// Write more than the hint now and then, as StrAppend can.
		grow := hint
		if rng.IntN(4) == 0 {
			grow += rng.IntN(64 << 10)
		}
		f.b = append(f.b, make([]byte, grow)...)
		freeFrame(f)
	}
	for n, want := range map[int]int{1: 0, 512: 0, 513: 1, 4 << 10: 1, 32 << 10: 2, 256 << 10: 3, 256<<10 + 1: -1} {
		if got := frameClassFor(n); got != want {
			t.Errorf("frameClassFor(%d) = %d, want %d", n, got, want)
		}
	}
}
