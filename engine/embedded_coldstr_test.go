package engine_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"kefu/engine"
)

// strModel is what a set of string keys must hold.
type strModel map[string]string

func (m strModel) verify(t *testing.T, e engine.Engine) {
	t.Helper()
	ctx := context.Background()
	for k, want := range m {
		got, err := e.Get(ctx, k)
		if err != nil || string(got) != want {
			t.Fatalf("Get(%s) = %d bytes %q…, %v; want %d bytes %q…", k, len(got), head(got), err, len(want), head([]byte(want)))
		}
	}
}

var filler = bytes.Repeat([]byte("f"), 100)

func head(b []byte) string { return string(b[:min(len(b), 24)]) }

// stringValue is a value long enough to be moved to disk.
func stringValue(i, n int) string {
	return fmt.Sprintf("v%04d:", i) + strings.Repeat(string(rune('a'+i%26)), n)
}

// pushScans writes filler strings until at least want strings were moved to
// disk: each scan runs after StringSpillBytes of written strings, and moves
// what was not used since the scan before.
func pushScans(t *testing.T, e *engine.Embedded, want uint64) {
	t.Helper()
	ctx := context.Background()
	for i := 0; e.Stats().ColdStrings < want; i++ {
		// Fillers stay under minColdString: they count, never move.
		check(t, e.Set(ctx, fmt.Sprintf("filler:%d", i%8), filler, 0))
		if i > 200000 {
			t.Fatalf("only %d strings moved to disk, want %d", e.Stats().ColdStrings, want)
		}
	}
}

// Strings move to disk and every operation on them behaves as before: reads,
// appends to a cold string, compare-and-swap and -delete, transactions,
// TTLs; across a reopen without a snapshot (the WAL has the values) and
// with one (the snapshot refers to the cold parts).
func TestEmbeddedColdStrings_OperationsAndReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	opts := engine.EmbeddedOptions{StringSpillBytes: 1}
	e := openAt(t, dir, opts)
	m := strModel{}
	const n = 200
	for i := range n {
		k, v := fmt.Sprintf("s:%d", i), stringValue(i, 150+i)
		check(t, e.Set(ctx, k, []byte(v), time.Hour))
		m[k] = v
	}
	check(t, e.Set(ctx, "small", []byte("short values stay"), 0))
	m["small"] = "short values stay"
	claim := stringValue(7, 300) // a dedupe record: shares the queue's hash tag
	check(t, e.Set(ctx, "in:{q}:d:1", []byte(claim), time.Hour))
	m["in:{q}:d:1"] = claim
	pushScans(t, e, n+1)
	if len(coldFiles(t, dir)) == 0 {
		t.Fatal("no cold segment written")
	}
	m.verify(t, e)

	// An append to a cold string adds to its in-memory tail.
	size, err := e.StrAppend(ctx, "s:1", []byte("+tail"), time.Hour)
	check(t, err)
	m["s:1"] += "+tail"
	if size != int64(len(m["s:1"])) {
		t.Fatalf("StrAppend length = %d, want %d", size, len(m["s:1"]))
	}
	// Compare-and-swap against a cold value: a same-length wrong value
	// fails, the right one wins.
	wrong := []byte(strings.ToUpper(m["s:2"]))
	if ok, err := e.CompareAndSwap(ctx, "s:2", wrong, []byte("x"), 0); err != nil || ok {
		t.Fatalf("CAS with a wrong old value = %v, %v", ok, err)
	}
	if ok, err := e.CompareAndSwap(ctx, "s:2", []byte(m["s:2"]), []byte("swapped"), 0); err != nil || !ok {
		t.Fatalf("CAS with the cold value = %v, %v", ok, err)
	}
	m["s:2"] = "swapped"
	if ok, err := e.CompareAndDelete(ctx, "s:3", []byte(m["s:3"])); err != nil || !ok {
		t.Fatalf("CompareAndDelete of a cold value = %v, %v", ok, err)
	}
	delete(m, "s:3")
	if _, err := e.Get(ctx, "s:3"); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("deleted cold key: %v", err)
	}
	// A transaction reads the cold value and sees no conflict.
	check(t, e.Update(ctx, []string{"s:4"}, func(tx engine.Tx) error {
		v, err := tx.Get("s:4")
		if err != nil {
			return err
		}
		tx.Set("s:4", append(v, "+tx"...), time.Hour)
		return nil
	}))
	m["s:4"] += "+tx"
	if ttl, err := e.TTL(ctx, "s:5"); err != nil || ttl <= 0 || ttl > time.Hour {
		t.Fatalf("TTL of a cold key = %v, %v", ttl, err)
	}
	claimed, cur, err := e.ClaimAndEnqueue(ctx, "in:{q}:d:1", []byte("other"), time.Hour, "in:{q}", engine.Job{ID: "j"})
	if err != nil || claimed || string(cur) != claim {
		t.Fatalf("ClaimAndEnqueue on a cold key = %v, %d bytes, %v", claimed, len(cur), err)
	}
	// Appended tails move to disk on later scans too.
	before := e.Stats().ColdStrings
	for i := range 20 {
		_, err := e.StrAppend(ctx, "s:1", []byte(strings.Repeat("t", 140)+fmt.Sprint(i)), time.Hour)
		check(t, err)
		m["s:1"] += strings.Repeat("t", 140) + fmt.Sprint(i)
		pushScans(t, e, before+uint64(i)+1)
	}
	m.verify(t, e)

	// Reopen without a snapshot: the WAL replays the values into memory,
	// and the segments nobody refers to are deleted.
	check(t, e.Close())
	r := openAt(t, dir, engine.EmbeddedOptions{StringSpillBytes: -1})
	m.verify(t, r)
	if files := coldFiles(t, dir); len(files) != 0 {
		t.Fatalf("segments left after reopening without a snapshot: %v", files)
	}
	check(t, r.Close())

	// Move them again, snapshot, reopen: the snapshot refers to the parts.
	e = openAt(t, dir, engine.EmbeddedOptions{StringSpillBytes: 1, CompactBytes: 64 << 10})
	pushScans(t, e, n-1) // s:2 is short now, s:3 is gone; the claim counts
	check(t, e.Set(ctx, "pad", bytes.Repeat([]byte("p"), 1<<10), 0))
	for i := 0; e.Stats().Snapshots == 0; i++ {
		check(t, e.Set(ctx, "pad", bytes.Repeat([]byte("p"), 1<<10), 0))
		if i > 100000 {
			t.Fatal("no snapshot")
		}
	}
	m["pad"] = strings.Repeat("p", 1<<10)
	check(t, e.Close())
	if len(coldFiles(t, dir)) == 0 {
		t.Fatal("the snapshot refers to no cold segment")
	}
	r = openAt(t, dir, engine.EmbeddedOptions{StringSpillBytes: -1})
	m.verify(t, r)
}

// A string that is read between scans stays in memory; one nobody touches
// moves. The engine tells them apart only through ColdStrings and file
// sizes, so the test reads one key constantly and checks that the
// segments hold only the other's bytes.
func TestEmbeddedColdStrings_ReadKeysStayInMemory(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	e := openAt(t, dir, engine.EmbeddedOptions{StringSpillBytes: 1})
	hot, cold := strings.Repeat("H", 4000), strings.Repeat("C", 4000)
	// The hot key is written last: a key written and not read during two
	// scans is cold by definition.
	check(t, e.Set(ctx, "cold", []byte(cold), 0))
	check(t, e.Set(ctx, "hot", []byte(hot), 0))
	for i := 0; e.Stats().ColdStrings < 1; i++ {
		if got, err := e.Get(ctx, "hot"); err != nil || string(got) != hot {
			t.Fatal("hot key read failed", err)
		}
		check(t, e.Set(ctx, fmt.Sprintf("filler:%d", i%8), []byte("f"), 0))
		if i > 200000 {
			t.Fatal("nothing moved to disk")
		}
	}
	for i := range 200 { // more scans: the hot key is still read
		_, err := e.Get(ctx, "hot")
		check(t, err)
		check(t, e.Set(ctx, fmt.Sprintf("filler:%d", i%8), []byte("f"), 0))
	}
	var onDisk []byte
	for _, f := range coldFiles(t, dir) {
		b, err := os.ReadFile(f)
		check(t, err)
		onDisk = append(onDisk, b...)
	}
	if !bytes.Contains(onDisk, []byte(cold)) || bytes.Contains(onDisk, []byte("HHHH")) {
		t.Fatalf("cold segments (%d bytes) should hold the untouched value and not the read one", len(onDisk))
	}
}

// A damaged cold string is an error, not wrong data.
func TestEmbeddedColdStrings_DamageIsDetected(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	e := openAt(t, dir, engine.EmbeddedOptions{StringSpillBytes: 1})
	check(t, e.Set(ctx, "k", bytes.Repeat([]byte("z"), 500), 0))
	pushScans(t, e, 1)
	files := coldFiles(t, dir)
	if len(files) != 1 {
		t.Fatalf("cold segments: %v", files)
	}
	b, err := os.ReadFile(files[0])
	check(t, err)
	b[len(b)-1] ^= 0xff
	check(t, os.WriteFile(files[0], b, 0o644))
	if _, err := e.Get(ctx, "k"); err == nil {
		t.Fatal("read a damaged cold string without error")
	}
}

// Writers, appenders, readers and CAS loops race with scans and
// compactions; every acknowledged value is read back, before and after a
// crash copy of the directory.
func TestEmbeddedColdStrings_ConcurrentWithScansAndCompactions(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	e := openAt(t, dir, engine.EmbeddedOptions{StringSpillBytes: 4 << 10, CompactBytes: 256 << 10})
	const workers, keys = 4, 50
	models := make([]strModel, workers)
	var wg sync.WaitGroup
	for w := range workers {
		models[w] = strModel{}
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			m := models[w]
			for i := range 3000 {
				k := fmt.Sprintf("w%d:%d", w, i%keys)
				switch i % 5 {
				case 0, 1: // transcript-like appends
					d := fmt.Sprintf("[%d:%s]", i, strings.Repeat("a", 100+i%80))
					if _, err := e.StrAppend(ctx, k, []byte(d), time.Hour); err != nil {
						t.Error(err)
						return
					}
					m[k] += d
				case 2:
					v := stringValue(i, 130+i%200)
					if err := e.Set(ctx, k, []byte(v), time.Hour); err != nil {
						t.Error(err)
						return
					}
					m[k] = v
				case 3:
					got, err := e.Get(ctx, k)
					if want, ok := m[k]; (ok && (err != nil || string(got) != want)) || (!ok && !errors.Is(err, engine.ErrNotFound)) {
						t.Errorf("Get(%s) mid-run: %d bytes, %v; want %d bytes", k, len(got), err, len(m[k]))
						return
					}
				case 4:
					if old, ok := m[k]; ok {
						nv := old + "+cas"
						swapped, err := e.CompareAndSwap(ctx, k, []byte(old), []byte(nv), time.Hour)
						if err != nil || !swapped {
							t.Errorf("CAS(%s) = %v, %v", k, swapped, err)
							return
						}
						m[k] = nv
					}
				}
			}
		}(w)
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	st := e.Stats()
	if st.ColdStrings == 0 || st.Snapshots == 0 {
		t.Fatalf("the run moved %d strings and took %d snapshots; the test needs both", st.ColdStrings, st.Snapshots)
	}
	all := strModel{}
	for _, m := range models {
		for k, v := range m {
			all[k] = v
		}
	}
	all.verify(t, e)
	crashed := copyDir(t, dir)
	r := openAt(t, crashed, engine.EmbeddedOptions{StringSpillBytes: -1})
	all.verify(t, r)
	t.Logf("%d strings moved to disk in %d spills, %d snapshots", st.ColdStrings, st.Spills, st.Snapshots)
}

// Once no string refers to a segment and a snapshot has been taken without
// it, the file is deleted: expired dedupe records do not pile up on disk.
func TestEmbeddedColdStrings_UnusedSegmentsDeleted(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	e := openAt(t, dir, engine.EmbeddedOptions{StringSpillBytes: 1, CompactBytes: 32 << 10})
	for i := range 50 {
		check(t, e.Set(ctx, fmt.Sprintf("d:%d", i), []byte(stringValue(i, 200)), 0))
	}
	pushScans(t, e, 50)
	if len(coldFiles(t, dir)) == 0 {
		t.Fatal("nothing on disk")
	}
	for i := range 50 {
		check(t, e.Del(ctx, fmt.Sprintf("d:%d", i)))
	}
	before := e.Stats().Snapshots
	for i := 0; e.Stats().Snapshots < before+2; i++ {
		check(t, e.Set(ctx, "pad", bytes.Repeat([]byte("p"), 100), 0))
		if i > 100000 {
			t.Fatal("no snapshot")
		}
	}
	waitFor(t, "cold segments to be deleted", func() bool { return len(coldFiles(t, dir)) == 0 })
}

func coldBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	for _, f := range coldFiles(t, dir) {
		fi, err := os.Stat(f)
		check(t, err)
		n += fi.Size()
	}
	return n
}

// A segment whose strings mostly ended (dedupe records) but that a few
// long-lived ones (transcripts) still refer to is rewritten: the live
// parts move to a new segment and the old file goes, so disk use follows
// the live strings, not the longest-lived one.
func TestEmbeddedColdStrings_MostlyDeadSegmentsRewritten(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	opts := engine.EmbeddedOptions{StringSpillBytes: 64 << 10, CompactBytes: 256 << 10, NoSync: true}
	e := openAt(t, dir, opts)
	m := strModel{}
	for i := range 3000 {
		k, v := fmt.Sprintf("d:%d", i), stringValue(i, 400)
		if i%100 == 0 {
			k = fmt.Sprintf("t:%d", i) // long-lived, spread over the segments
			m[k] = v
		}
		check(t, e.Set(ctx, k, []byte(v), 0))
	}
	pushScans(t, e, 3000)
	full := coldBytes(t, dir)
	for i := range 3000 {
		if i%100 != 0 {
			check(t, e.Del(ctx, fmt.Sprintf("d:%d", i)))
		}
	}
	snaps := e.Stats().Snapshots
	for i := 0; e.Stats().ColdRewrites == 0 || e.Stats().Snapshots < snaps+3; i++ {
		check(t, e.Set(ctx, fmt.Sprintf("pad:%d", i%4), bytes.Repeat([]byte("p"), 100), 0))
		if i > 200000 {
			t.Fatalf("%d rewrites, %d snapshots", e.Stats().ColdRewrites, e.Stats().Snapshots-snaps)
		}
	}
	waitFor(t, "the rewritten segments to be deleted", func() bool { return coldBytes(t, dir) < full/10 })
	m.verify(t, e)
	check(t, e.Close())
	r := openAt(t, dir, opts)
	m.verify(t, r)
	t.Logf("cold files %d → %d bytes after %d rewrites", full, coldBytes(t, dir), e.Stats().ColdRewrites)
}

// Acknowledged strings survive a crash at any moment of scans, spills,
// segment rewrites and compactions: a copy of the directory taken while
// writers run (what a kill -9 leaves) holds every value acked before the
// copy began, and no key whose delete was acked before it.
func TestEmbeddedColdStrings_CrashMidSpill(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	opts := engine.EmbeddedOptions{StringSpillBytes: 8 << 10, CompactBytes: 128 << 10}
	e := openAt(t, dir, opts)
	var mu sync.Mutex
	acked, deleted := map[string]string{}, map[string]bool{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := fmt.Sprintf("w%d:%d", w, i)
				v := stringValue(i, 150+i%300)
				if err := e.Set(ctx, k, []byte(v), 0); err != nil {
					t.Error(err)
					return
				}
				if i%10 == 0 { // kept for good, like transcripts
					mu.Lock()
					acked[k] = v
					mu.Unlock()
				} else if i > 20 && (i-20)%10 != 0 { // most end, as dedupe records do
					old := fmt.Sprintf("w%d:%d", w, i-20)
					if err := e.Del(ctx, old); err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					deleted[old] = true
					mu.Unlock()
				}
			}
		}()
	}
	waitFor(t, "strings moved, segments rewritten and snapshots", func() bool {
		s := e.Stats()
		return s.ColdStrings > 2000 && s.ColdRewrites > 0 && s.Snapshots > 2
	})
	mu.Lock()
	want := maps.Clone(acked)
	gone := make([]string, 0, len(deleted))
	for k := range deleted {
		gone = append(gone, k)
	}
	mu.Unlock()
	r := openCrashCopy(t, dir, opts)
	close(stop)
	wg.Wait()
	for k, v := range want {
		got, err := r.Get(ctx, k)
		if err != nil || string(got) != v {
			t.Fatalf("acknowledged %s lost or changed after the crash: %d bytes, %v", k, len(got), err)
		}
	}
	for _, k := range gone {
		if _, err := r.Get(ctx, k); !errors.Is(err, engine.ErrNotFound) {
			t.Fatalf("acknowledged delete of %s undone by the crash: %v", k, err)
		}
	}
	s := e.Stats()
	t.Logf("%d live and %d deleted keys checked; %d strings moved, %d rewrites, %d snapshots before the copy", len(want), len(gone), s.ColdStrings, s.ColdRewrites, s.Snapshots)
}
