package engine_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"kefu/engine"
)

func openAt(t *testing.T, dir string, opts engine.EmbeddedOptions) *engine.Embedded {
	t.Helper()
	opts.Logf = t.Logf
	e, err := engine.OpenEmbedded(dir, opts)
	if err != nil {
		t.Fatalf("OpenEmbedded(%s): %v", dir, err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func check(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// dataset writes one of everything and returns a verifier for it.
type dataset struct {
	base    time.Time
	logIDs  []string
	counter int64
}

func writeDataset(t *testing.T, e engine.Engine) *dataset {
	t.Helper()
	ctx := context.Background()
	d := &dataset{base: time.Now().Truncate(time.Millisecond)}
	check(t, e.Set(ctx, "s:plain", []byte("plain"), 0))
	check(t, e.Set(ctx, "s:ttl", []byte("ttl"), time.Hour))
	check(t, e.Set(ctx, "s:deleted", []byte("x"), 0))
	check(t, e.Del(ctx, "s:deleted"))
	ok, err := e.SetNX(ctx, "s:nx", []byte("nx"), 0)
	check(t, err)
	if !ok {
		t.Fatal("SetNX failed")
	}
	_, err = e.CompareAndSwap(ctx, "s:plain", []byte("plain"), []byte("swapped"), 0)
	check(t, err)
	for i := 0; i < 7; i++ {
		d.counter, err = e.IncrBy(ctx, "s:ctr", 3, 0)
		check(t, err)
	}
	_, err = e.StrAppend(ctx, "s:app", []byte("ab"), 0)
	check(t, err)
	_, err = e.StrAppend(ctx, "s:app", []byte("cd"), time.Hour)
	check(t, err)
	check(t, e.HSet(ctx, "h", map[string][]byte{"a": []byte("1"), "b": []byte("2"), "c": []byte("3")}))
	check(t, e.HDel(ctx, "h", "b"))
	_, err = e.HIncrBy(ctx, "h", "n", 42)
	check(t, err)
	check(t, e.ZAdd(ctx, "z", engine.ZItem{Member: "x", Score: 1}, engine.ZItem{Member: "y", Score: 2}, engine.ZItem{Member: "gone", Score: 3}))
	_, err = e.ZRem(ctx, "z", "gone")
	check(t, err)
	check(t, e.ZAdd(ctx, "z", engine.ZItem{Member: "x", Score: 5}))
	q := "q:{d}"
	check(t, e.Enqueue(ctx, q, engine.Job{ID: "claimed", Data: []byte("c"), Due: d.base}))
	check(t, e.Enqueue(ctx, q, engine.Job{ID: "waiting", Data: []byte("w"), Due: d.base.Add(time.Hour)}))
	check(t, e.Enqueue(ctx, q, engine.Job{ID: "acked", Data: []byte("a"), Due: d.base.Add(2 * time.Hour)}))
	check(t, e.Ack(ctx, q, "acked"))
	jobs, err := e.Claim(ctx, q, d.base, time.Minute, 10)
	check(t, err)
	if len(jobs) != 1 {
		t.Fatalf("claimed %d", len(jobs))
	}
	claimed, _, err := e.ClaimAndEnqueue(ctx, "in:{d}:k", []byte("owner"), time.Hour, q, engine.Job{ID: "accepted", Data: []byte("m"), Due: d.base.Add(3 * time.Hour)})
	check(t, err)
	if !claimed {
		t.Fatal("ClaimAndEnqueue did not claim")
	}
	for i := 0; i < 4; i++ {
		id, err := e.Append(ctx, "log", []byte("rec"+strconv.Itoa(i)))
		check(t, err)
		d.logIDs = append(d.logIDs, id)
	}
	check(t, e.Update(ctx, []string{"tx:{1}:a", "tx:{1}:b"}, func(tx engine.Tx) error {
		tx.Set("tx:{1}:a", []byte("A"), 0)
		tx.Set("tx:{1}:b", []byte("B"), time.Hour)
		return nil
	}))
	return d
}

func (d *dataset) verify(t *testing.T, e engine.Engine) {
	t.Helper()
	ctx := context.Background()
	str := func(key, want string) {
		t.Helper()
		v, err := e.Get(ctx, key)
		if err != nil || string(v) != want {
			t.Fatalf("Get(%q) = %q, %v; want %q", key, v, err, want)
		}
	}
	str("s:plain", "swapped")
	str("s:ttl", "ttl")
	str("s:nx", "nx")
	str("s:ctr", strconv.FormatInt(d.counter, 10))
	str("s:app", "abcd")
	str("in:{d}:k", "owner")
	str("tx:{1}:a", "A")
	str("tx:{1}:b", "B")
	if _, err := e.Get(ctx, "s:deleted"); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("deleted key came back: %v", err)
	}
	if ttl, err := e.TTL(ctx, "s:ttl"); err != nil || ttl <= 59*time.Minute || ttl > time.Hour {
		t.Fatalf("TTL(s:ttl) = %v, %v", ttl, err)
	}
	if ttl, err := e.TTL(ctx, "s:plain"); err != nil || ttl != 0 {
		t.Fatalf("TTL(s:plain) = %v, %v", ttl, err)
	}
	h, err := e.HGetAll(ctx, "h")
	check(t, err)
	if len(h) != 3 || string(h["a"]) != "1" || string(h["c"]) != "3" || string(h["n"]) != "42" {
		t.Fatalf("hash = %q", h)
	}
	zs, err := e.ZRangeByScore(ctx, "z", 0, 100, 0)
	check(t, err)
	if fmt.Sprint(zs) != "[{y 2} {x 5}]" {
		t.Fatalf("zset = %v", zs)
	}
	q := "q:{d}"
	if n, _ := e.QueueLen(ctx, q); n != 3 {
		t.Fatalf("QueueLen = %d, want 3", n)
	}
	jobs, err := e.Claim(ctx, q, d.base.Add(10*time.Hour), time.Minute, 10)
	check(t, err)
	got := map[string]engine.Job{}
	for _, j := range jobs {
		got[j.ID] = j
	}
	if len(got) != 3 || got["claimed"].Attempts != 2 || got["waiting"].Attempts != 1 ||
		string(got["accepted"].Data) != "m" || string(got["claimed"].Data) != "c" {
		t.Fatalf("jobs after reopen = %+v", jobs)
	}
	recs, err := e.ReadLog(ctx, "log", "", 0)
	check(t, err)
	if len(recs) != len(d.logIDs) {
		t.Fatalf("log has %d records, want %d", len(recs), len(d.logIDs))
	}
	for i, r := range recs {
		if r.ID != d.logIDs[i] || string(r.Data) != "rec"+strconv.Itoa(i) {
			t.Fatalf("record %d = %s %q", i, r.ID, r.Data)
		}
	}
	id, err := e.Append(ctx, "log", []byte("after"))
	check(t, err)
	if engine.CompareIDs(id, d.logIDs[len(d.logIDs)-1]) <= 0 {
		t.Fatalf("ID after reopen %s not above %s", id, d.logIDs[len(d.logIDs)-1])
	}
}

func TestEmbeddedReopenKeepsState(t *testing.T) {
	dir := t.TempDir()
	e := openAt(t, dir, engine.EmbeddedOptions{})
	d := writeDataset(t, e)
	check(t, e.Close())
	d.verify(t, openAt(t, dir, engine.EmbeddedOptions{}))
}

// copyDir copies the engine's files while it is still running: the result is
// what a crash (kill -9) at this instant would leave on disk.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	ents, err := os.ReadDir(src)
	check(t, err)
	for _, de := range ents {
		if de.Name() == "LOCK" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, de.Name()))
		if errors.Is(err, os.ErrNotExist) {
			continue // removed by a concurrent compaction
		}
		check(t, err)
		check(t, os.WriteFile(filepath.Join(dst, de.Name()), b, 0o644))
	}
	return dst
}

func TestEmbeddedAcknowledgedWritesSurviveCrash(t *testing.T) {
	for _, compact := range []int64{0, 8 << 10} {
		t.Run(fmt.Sprintf("compact=%d", compact), func(t *testing.T) {
			dir := t.TempDir()
			e := openAt(t, dir, engine.EmbeddedOptions{CompactBytes: compact})
			ctx := context.Background()
			const workers, each = 16, 40
			var mu sync.Mutex
			acked := map[string]string{}
			var wg sync.WaitGroup
			stop := make(chan struct{})
			// Keep writing in the background so the crash copy catches the
			// WAL mid-batch.
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					if err := e.Set(ctx, "noise", []byte(strconv.Itoa(i)), 0); err != nil {
						return
					}
				}
			}()
			var ackWG sync.WaitGroup
			for w := 0; w < workers; w++ {
				ackWG.Add(1)
				go func(w int) {
					defer ackWG.Done()
					for i := 0; i < each; i++ {
						k, v := fmt.Sprintf("w%d:%d", w, i), strings.Repeat("v", i)
						if _, _, err := e.ClaimAndEnqueue(ctx, "in:{"+k+"}:d", []byte(v), 0, "in:{"+k+"}", engine.Job{ID: k, Data: []byte(v)}); err != nil {
							t.Error(err)
							return
						}
						mu.Lock()
						acked[k] = v
						mu.Unlock()
					}
				}(w)
			}
			ackWG.Wait()
			mu.Lock()
			snapshot := make(map[string]string, len(acked))
			for k, v := range acked {
				snapshot[k] = v
			}
			mu.Unlock()
			crashed := copyDir(t, dir)
			close(stop)
			wg.Wait()

			r := openAt(t, crashed, engine.EmbeddedOptions{})
			for k, v := range snapshot {
				got, err := r.Get(ctx, "in:{"+k+"}:d")
				if err != nil || string(got) != v {
					t.Fatalf("acknowledged claim %s lost after crash: %q, %v", k, got, err)
				}
				if n, err := r.QueueLen(ctx, "in:{"+k+"}"); err != nil || n != 1 {
					t.Fatalf("acknowledged job %s lost after crash: len %d, %v", k, n, err)
				}
			}
			if compact > 0 && e.Stats().Snapshots == 0 {
				t.Fatal("expected at least one compaction during the test")
			}
		})
	}
}

func walFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "wal-*.log"))
	check(t, err)
	sort.Strings(m)
	return m
}

func appendBytes(t *testing.T, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	check(t, err)
	_, err = f.Write(b)
	check(t, err)
	check(t, f.Close())
}

func TestEmbeddedTornTail(t *testing.T) {
	ctx := context.Background()
	cases := map[string]func(t *testing.T, path string){
		"garbage": func(t *testing.T, path string) {
			appendBytes(t, path, []byte{0x13, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef, 'p', 'a', 'r'})
		},
		"short header": func(t *testing.T, path string) {
			appendBytes(t, path, []byte{5, 0, 0})
		},
		"huge length": func(t *testing.T, path string) {
			appendBytes(t, path, []byte{0xff, 0xff, 0xff, 0x7f, 1, 2, 3, 4, 5})
		},
		"half of last record": func(t *testing.T, path string) {
			fi, err := os.Stat(path)
			check(t, err)
			check(t, os.Truncate(path, fi.Size()-5))
		},
	}
	for name, damage := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			e := openAt(t, dir, engine.EmbeddedOptions{})
			d := writeDataset(t, e)
			check(t, e.Set(ctx, "last", []byte("written last"), 0))
			check(t, e.Close())
			wals := walFiles(t, dir)
			damage(t, wals[len(wals)-1])

			r := openAt(t, dir, engine.EmbeddedOptions{})
			d.verify(t, r) // everything before the damaged record survives
			v, err := r.Get(ctx, "last")
			if name == "half of last record" {
				if !errors.Is(err, engine.ErrNotFound) {
					t.Fatalf("torn last record applied: %q, %v", v, err)
				}
			} else if string(v) != "written last" {
				t.Fatalf("last record lost: %q, %v", v, err)
			}
			// New writes go after the truncation point and survive reopening.
			check(t, r.Set(ctx, "after", []byte("recovery"), 0))
			check(t, r.Close())
			r2 := openAt(t, dir, engine.EmbeddedOptions{})
			if v, err := r2.Get(ctx, "after"); err != nil || string(v) != "recovery" {
				t.Fatalf("write after recovery lost: %q, %v", v, err)
			}
		})
	}
}

func TestEmbeddedCompaction(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	e := openAt(t, dir, engine.EmbeddedOptions{CompactBytes: 16 << 10})
	d := writeDataset(t, e)
	// Overwrite a few keys many times so the WAL outgrows the threshold
	// while live state stays small.
	for i := 0; i < 2000; i++ {
		check(t, e.Set(ctx, "hot"+strconv.Itoa(i%10), []byte(strings.Repeat("x", 64)+strconv.Itoa(i)), 0))
	}
	deadline := time.Now().Add(10 * time.Second)
	for e.Stats().Snapshots == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if e.Stats().Snapshots == 0 {
		t.Fatal("no snapshot after exceeding CompactBytes")
	}
	check(t, e.Close())
	snaps, _ := filepath.Glob(filepath.Join(dir, "snap-*.snap"))
	if len(snaps) != 1 {
		t.Fatalf("want exactly one snapshot left, have %v", snaps)
	}
	var walBytes int64
	for _, w := range walFiles(t, dir) {
		fi, err := os.Stat(w)
		check(t, err)
		walBytes += fi.Size()
	}
	if walBytes > 64<<10 {
		t.Fatalf("old WAL segments not removed: %d bytes remain", walBytes)
	}

	r := openAt(t, dir, engine.EmbeddedOptions{})
	d.verify(t, r)
	for i := 1990; i < 2000; i++ {
		v, err := r.Get(ctx, "hot"+strconv.Itoa(i%10))
		if err != nil || !strings.HasSuffix(string(v), "x"+strconv.Itoa(i)) {
			t.Fatalf("hot%d = %q, %v", i%10, v, err)
		}
	}
}

// TestEmbeddedCompactionWhileWriting snapshots while every kind of value
// is being changed in place (hash fields, sorted-set scores, log appends
// and trims, queued jobs): the snapshot shares values with the live state
// instead of copying them, so this pins (under -race) that writers never
// touch what a snapshot is still encoding, and that the reopened state is
// exactly the state at close.
func TestEmbeddedCompactionWhileWriting(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	e := openAt(t, dir, engine.EmbeddedOptions{CompactBytes: 4 << 10})
	const n = 600
	var wg sync.WaitGroup
	run := func(f func(i int) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n; i++ {
				if err := f(i); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	run(func(i int) error {
		return e.HSet(ctx, "h", map[string][]byte{"f" + strconv.Itoa(i%40): []byte(strconv.Itoa(i))})
	})
	run(func(i int) error {
		return e.ZAdd(ctx, "z", engine.ZItem{Member: "m" + strconv.Itoa(i%40), Score: float64(i)})
	})
	run(func(i int) error {
		if _, err := e.Append(ctx, "log", []byte("rec"+strconv.Itoa(i))); err != nil {
			return err
		}
		if i%100 == 99 {
			return e.TrimLog(ctx, "log", time.Now().Add(-time.Hour))
		}
		return nil
	})
	run(func(i int) error {
		q := "q:{w}"
		if err := e.Enqueue(ctx, q, engine.Job{ID: "j" + strconv.Itoa(i%50), Data: []byte(strconv.Itoa(i)), Due: time.Now()}); err != nil {
			return err
		}
		if i%3 == 0 {
			jobs, err := e.Claim(ctx, q, time.Now(), time.Hour, 2)
			if err != nil || len(jobs) == 0 {
				return err
			}
			return e.Ack(ctx, q, jobs[0].ID)
		}
		return nil
	})
	run(func(i int) error {
		return e.Set(ctx, "s"+strconv.Itoa(i%40), []byte(strings.Repeat("v", i%100)), 0)
	})
	// Appended strings grow in place while snapshots hold their older
	// entries and readers copy them.
	run(func(i int) error {
		_, err := e.StrAppend(ctx, "t"+strconv.Itoa(i%3), []byte("line "+strconv.Itoa(i)+"\n"), 0)
		return err
	})
	run(func(i int) error {
		b, err := e.Get(ctx, "t"+strconv.Itoa(i%3))
		if errors.Is(err, engine.ErrNotFound) {
			return nil
		}
		if err == nil && len(b) > 0 && b[len(b)-1] != '\n' {
			err = fmt.Errorf("t%d read mid-append: %q", i%3, b[max(0, len(b)-20):])
		}
		return err
	})
	wg.Wait()

	type view struct {
		h    map[string][]byte
		z    []engine.ZItem
		log  []engine.Record
		jobs int64
		s    []string
		t    []string
	}
	read := func(e engine.Engine) view {
		var v view
		var err error
		v.h, err = e.HGetAll(ctx, "h")
		check(t, err)
		v.z, err = e.ZRangeByScore(ctx, "z", 0, 1e9, 0)
		check(t, err)
		v.log, err = e.ReadLog(ctx, "log", "", 0)
		check(t, err)
		v.jobs, err = e.QueueLen(ctx, "q:{w}")
		check(t, err)
		for i := 0; i < 40; i++ {
			b, err := e.Get(ctx, "s"+strconv.Itoa(i))
			check(t, err)
			v.s = append(v.s, string(b))
		}
		for i := 0; i < 3; i++ {
			b, err := e.Get(ctx, "t"+strconv.Itoa(i))
			check(t, err)
			v.t = append(v.t, string(b))
		}
		return v
	}
	want := read(e)
	for i, tr := range want.t {
		if got := strings.Count(tr, "\n"); got != n/3 {
			t.Fatalf("t%d holds %d lines, want %d", i, got, n/3)
		}
	}
	check(t, e.Close())
	if e.Stats().Snapshots == 0 {
		t.Fatal("no compaction while writing")
	}
	got := read(openAt(t, dir, engine.EmbeddedOptions{}))
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("state after reopen differs:\n got %v\nwant %v", got, want)
	}
}

func TestEmbeddedExpiredKeysNotResurrected(t *testing.T) {
	ctx := context.Background()
	for _, viaSnapshot := range []bool{false, true} {
		t.Run(fmt.Sprintf("snapshot=%v", viaSnapshot), func(t *testing.T) {
			dir := t.TempDir()
			e := openAt(t, dir, engine.EmbeddedOptions{})
			check(t, e.Set(ctx, "gone", []byte("v"), 100*time.Millisecond))
			check(t, e.Set(ctx, "ctr", []byte("41"), 100*time.Millisecond))
			check(t, e.Set(ctx, "retyped", []byte("str"), 100*time.Millisecond))
			check(t, e.Set(ctx, "app", []byte("old"), 100*time.Millisecond))
			check(t, e.Set(ctx, "stays", []byte("v"), time.Hour))
			time.Sleep(150 * time.Millisecond)
			// Writes after expiry must replay on top of "absent", not of the
			// old value.
			n, err := e.IncrBy(ctx, "ctr", 1, 0)
			check(t, err)
			if n != 1 {
				t.Fatalf("IncrBy after expiry = %d", n)
			}
			check(t, e.HSet(ctx, "retyped", map[string][]byte{"f": []byte("hash now")}))
			if _, err := e.StrAppend(ctx, "app", []byte("new"), 0); err != nil {
				t.Fatal(err)
			}
			check(t, e.Set(ctx, "soon", []byte("v"), 200*time.Millisecond))
			if viaSnapshot {
				// Force a snapshot containing "soon" with its absolute expiry.
				for i := 0; e.Stats().Snapshots == 0; i++ {
					if i == 0 {
						check(t, e.Close())
						e = openAt(t, dir, engine.EmbeddedOptions{CompactBytes: 1})
					}
					check(t, e.Set(ctx, "pad", []byte("p"), 0))
					time.Sleep(5 * time.Millisecond)
					if i > 1000 {
						t.Fatal("no snapshot")
					}
				}
			}
			check(t, e.Close())
			time.Sleep(250 * time.Millisecond)

			r := openAt(t, dir, engine.EmbeddedOptions{})
			for _, k := range []string{"gone", "soon"} {
				if v, err := r.Get(ctx, k); !errors.Is(err, engine.ErrNotFound) {
					t.Fatalf("expired key %s resurrected: %q, %v", k, v, err)
				}
			}
			if v, err := r.Get(ctx, "app"); err != nil || string(v) != "new" {
				t.Fatalf("app = %q, %v; want new", v, err)
			}
			if v, err := r.Get(ctx, "ctr"); err != nil || string(v) != "1" {
				t.Fatalf("ctr = %q, %v; want 1", v, err)
			}
			if v, err := r.HGet(ctx, "retyped", "f"); err != nil || string(v) != "hash now" {
				t.Fatalf("retyped = %q, %v", v, err)
			}
			if v, err := r.Get(ctx, "stays"); err != nil || string(v) != "v" {
				t.Fatalf("stays = %q, %v", v, err)
			}
		})
	}
}

func TestEmbeddedGroupCommit(t *testing.T) {
	e := newEmbedded(t, engine.EmbeddedOptions{})
	ctx := context.Background()
	const workers, each = 64, 20
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if err := e.Set(ctx, fmt.Sprintf("g%d:%d", w, i), []byte("v"), 0); err != nil {
					t.Error(err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	s := e.Stats()
	t.Logf("stats: %+v (%.1f frames per fsync)", s, float64(s.Frames)/float64(s.Syncs))
	if s.Frames != workers*each {
		t.Fatalf("Frames = %d, want %d", s.Frames, workers*each)
	}
	if s.Syncs == 0 || s.Syncs >= s.Frames {
		t.Fatalf("no group commit: %d fsyncs for %d frames", s.Syncs, s.Frames)
	}
}

func TestEmbeddedDirLocked(t *testing.T) {
	dir := t.TempDir()
	openAt(t, dir, engine.EmbeddedOptions{})
	if e, err := engine.OpenEmbedded(dir, engine.EmbeddedOptions{Logf: t.Logf}); err == nil {
		e.Close()
		t.Fatal("second OpenEmbedded on the same dir succeeded")
	}
}

func TestEmbeddedRejectsCorruptMiddleSegment(t *testing.T) {
	// Damage that is not at the tail of the last segment is real corruption:
	// refuse to open instead of silently dropping acknowledged data.
	ctx := context.Background()
	dir := t.TempDir()
	e := openAt(t, dir, engine.EmbeddedOptions{})
	for i := 0; i < 10; i++ {
		check(t, e.Set(ctx, "k"+strconv.Itoa(i), []byte("v"), 0))
	}
	check(t, e.Close())
	wals := walFiles(t, dir)
	// A later, valid segment makes the damaged one a middle segment.
	b, err := os.ReadFile(wals[0])
	check(t, err)
	b[len(b)/2] ^= 0xff
	check(t, os.WriteFile(wals[0], b, 0o644))
	next := strings.Replace(wals[0], "0000000000000001", "0000000000000002", 1)
	check(t, os.WriteFile(next, firstFrame(t, b), 0o644))
	e2, err := engine.OpenEmbedded(dir, engine.EmbeddedOptions{Logf: t.Logf})
	if err == nil {
		e2.Close()
		t.Fatal("opened despite a damaged non-final WAL segment")
	}
	if !strings.Contains(err.Error(), "non-final segment") {
		t.Fatalf("unexpected error: %v", err)
	}
}

// firstFrame returns the first (intact) frame of a WAL segment.
func firstFrame(t *testing.T, seg []byte) []byte {
	t.Helper()
	if len(seg) < 8 {
		t.Fatal("segment too short")
	}
	n := int(seg[0]) | int(seg[1])<<8 | int(seg[2])<<16 | int(seg[3])<<24
	return bytes.Clone(seg[:8+n])
}

// A crash leaves the WAL's zero-filled space after the last record (see
// segment). Recovery reads it as the end of the log, in the final segment
// and in a non-final one (a crash between rotating and closing the old
// segment), and new writes land after the last record.
func TestEmbeddedZeroFilledTail(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	e := openAt(t, dir, engine.EmbeddedOptions{})
	d := writeDataset(t, e)
	check(t, e.Set(ctx, "last", []byte("written last"), 0))
	wal := walFiles(t, dir)[0]
	written := int64(e.Stats().WALBytes)
	deadline := time.Now().Add(10 * time.Second)
	for {
		fi, err := os.Stat(wal)
		check(t, err)
		if fi.Size() > written {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("WAL not zero-filled ahead: size %d, written %d", fi.Size(), written)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Copy the files as a crash would leave them (the engine stays open).
	copyWAL := func(to string, seq string) {
		b, err := os.ReadFile(wal)
		check(t, err)
		check(t, os.WriteFile(filepath.Join(to, "wal-"+seq+".log"), b, 0o644))
	}
	for name, extra := range map[string]func(dir string){
		"final segment":     func(string) {},
		"non-final segment": func(dir string) { check(t, os.WriteFile(filepath.Join(dir, "wal-0000000000000002.log"), nil, 0o644)) },
	} {
		t.Run(name, func(t *testing.T) {
			crashed := t.TempDir()
			copyWAL(crashed, "0000000000000001")
			extra(crashed)
			r := openAt(t, crashed, engine.EmbeddedOptions{})
			d.verify(t, r)
			if v, err := r.Get(ctx, "last"); err != nil || string(v) != "written last" {
				t.Fatalf("last record: %q, %v", v, err)
			}
			check(t, r.Set(ctx, "after", []byte("recovery"), 0))
			check(t, r.Close())
			r2 := openAt(t, crashed, engine.EmbeddedOptions{})
			if v, err := r2.Get(ctx, "last"); err != nil || string(v) != "written last" {
				t.Fatalf("last record after the second open: %q, %v", v, err)
			}
			if v, err := r2.Get(ctx, "after"); err != nil || string(v) != "recovery" {
				t.Fatalf("write after recovery lost: %q, %v", v, err)
			}
		})
	}
	check(t, e.Close())
}
