package engine_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"kefu/engine"
)

// Strings wholly moved to disk leave memory as cold keys (a hash of the key
// and the value's place) and every operation still finds them: reads,
// set-if-absent (the dedupe claim), overwrites, deletes, appends, type
// checks, expiry; across a snapshot and a WAL replay on top of it.
func TestEmbeddedColdKeys_OperationsSnapshotAndReplay(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	opts := engine.EmbeddedOptions{StringSpillBytes: 1, CompactBytes: 64 << 10}
	e := openAt(t, dir, opts)
	m := strModel{}
	const n = 300
	for i := range n {
		k, v := fmt.Sprintf("in:{1}:d:%d", i), stringValue(i, 200)
		check(t, e.Set(ctx, k, []byte(v), time.Hour))
		m[k] = v
	}
	check(t, e.Set(ctx, "soon", []byte(stringValue(1, 200)), 300*time.Millisecond))
	pushScans(t, e, n+1)
	if got := e.Stats().ColdKeys; got < n {
		t.Fatalf("ColdKeys = %d after moving %d whole strings, want ≥ %d", got, e.Stats().ColdStrings, n)
	}
	m.verify(t, e)

	// The dedupe claim: set-if-absent on a cold key fails and keeps it.
	if ok, err := e.SetNX(ctx, "in:{1}:d:0", []byte("second claim"), time.Hour); err != nil || ok {
		t.Fatalf("SetNX on a cold key = %v, %v; want false", ok, err)
	}
	check(t, e.Set(ctx, "in:{1}:d:1", []byte("overwritten"), time.Hour))
	m["in:{1}:d:1"] = "overwritten"
	check(t, e.Del(ctx, "in:{1}:d:2"))
	delete(m, "in:{1}:d:2")
	size, err := e.StrAppend(ctx, "in:{1}:d:3", []byte("+more"), time.Hour)
	check(t, err)
	m["in:{1}:d:3"] += "+more"
	if size != int64(len(m["in:{1}:d:3"])) {
		t.Fatalf("StrAppend to a cold key = %d, want %d", size, len(m["in:{1}:d:3"]))
	}
	if err := e.HSet(ctx, "in:{1}:d:4", map[string][]byte{"f": []byte("v")}); !errors.Is(err, engine.ErrWrongType) {
		t.Fatalf("HSet on a cold string key = %v, want ErrWrongType", err)
	}
	if ttl, err := e.TTL(ctx, "in:{1}:d:5"); err != nil || ttl <= 0 || ttl > time.Hour {
		t.Fatalf("TTL of a cold key = %v, %v", ttl, err)
	}
	// Compare-and-swap and a transaction start from the cold value.
	if ok, err := e.CompareAndSwap(ctx, "in:{1}:d:9", []byte(m["in:{1}:d:9"]), []byte("swapped"), time.Hour); err != nil || !ok {
		t.Fatalf("CAS on a cold key = %v, %v", ok, err)
	}
	m["in:{1}:d:9"] = "swapped"
	check(t, e.Update(ctx, []string{"in:{1}:d:10"}, func(tx engine.Tx) error {
		v, err := tx.Get("in:{1}:d:10")
		if err != nil {
			return err
		}
		tx.Set("in:{1}:d:10", append(v, "+tx"...), time.Hour)
		return nil
	}))
	m["in:{1}:d:10"] += "+tx"
	if ok, err := e.CompareAndDelete(ctx, "in:{1}:d:11", []byte(m["in:{1}:d:11"])); err != nil || !ok {
		t.Fatalf("CompareAndDelete on a cold key = %v, %v", ok, err)
	}
	delete(m, "in:{1}:d:11")
	m.verify(t, e)
	for _, k := range []string{"in:{1}:d:2", "soon"} {
		waitFor(t, k+" to be gone", func() bool {
			_, err := e.Get(ctx, k)
			return errors.Is(err, engine.ErrNotFound)
		})
	}
	// An expired cold key is free for a new claim.
	if ok, err := e.SetNX(ctx, "soon", []byte("again"), time.Hour); err != nil || !ok {
		t.Fatalf("SetNX after a cold key expired = %v, %v", ok, err)
	}
	m["soon"] = "again"

	// Snapshot (cold keys are written by hash), then more writes that
	// only the WAL holds: a delete and an overwrite of cold keys.
	snaps := e.Stats().Snapshots
	for i := 0; e.Stats().Snapshots == snaps; i++ {
		check(t, e.Set(ctx, "pad", bytes.Repeat([]byte("p"), 1<<10), 0))
		if i > 100000 {
			t.Fatal("no snapshot")
		}
	}
	m["pad"] = string(bytes.Repeat([]byte("p"), 1<<10))
	check(t, e.Del(ctx, "in:{1}:d:6"))
	delete(m, "in:{1}:d:6")
	check(t, e.Set(ctx, "in:{1}:d:7", []byte("after the snapshot"), time.Hour))
	m["in:{1}:d:7"] = "after the snapshot"
	cold := e.Stats().ColdKeys
	check(t, e.Close())

	r := openAt(t, dir, engine.EmbeddedOptions{StringSpillBytes: -1})
	m.verify(t, r)
	for _, k := range []string{"in:{1}:d:2", "in:{1}:d:6", "in:{1}:d:11"} {
		if _, err := r.Get(ctx, k); !errors.Is(err, engine.ErrNotFound) {
			t.Fatalf("deleted cold key %s after reopen: %v", k, err)
		}
	}
	if got := r.Stats().ColdKeys; got == 0 || got > cold {
		t.Fatalf("ColdKeys after reopen = %d, want 1..%d (loaded from the snapshot)", got, cold)
	}
	if ok, err := r.SetNX(ctx, "in:{1}:d:8", []byte("x"), time.Hour); err != nil || ok {
		t.Fatalf("SetNX on a cold key after reopen = %v, %v; want false", ok, err)
	}
}

// A cold key whose segment is damaged is an error on read, not a missing
// key (which would let a dedupe claim through).
func TestEmbeddedColdKeys_DamagedSegmentIsAnError(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	e := openAt(t, dir, engine.EmbeddedOptions{StringSpillBytes: 1})
	check(t, e.Set(ctx, "in:{1}:d:x", []byte(stringValue(3, 300)), time.Hour))
	pushScans(t, e, 1)
	if e.Stats().ColdKeys == 0 {
		t.Fatal("no cold key")
	}
	for _, f := range coldFiles(t, dir) {
		b, err := os.ReadFile(f)
		check(t, err)
		b[len(b)-1] ^= 0xff
		check(t, os.WriteFile(f, b, 0o644))
	}
	if _, err := e.Get(ctx, "in:{1}:d:x"); err == nil || errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("Get of a damaged cold key = %v, want a corruption error", err)
	}
}
