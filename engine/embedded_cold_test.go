package engine_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"kefu/engine"
	"kefu/engine/enginetest"
)

func coldFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "cold-*.seg"))
	check(t, err)
	return m
}

// waitFor polls cond (background spills and snapshots are asynchronous).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type logModel struct {
	ids  []string
	data []string
}

func (m *logModel) add(ids []string, data ...string) {
	m.ids = append(m.ids, ids...)
	m.data = append(m.data, data...)
}

// verify reads the whole log, and pages of every size through it, and
// compares with the model.
func (m *logModel) verify(t *testing.T, e engine.Engine, log string) {
	t.Helper()
	ctx := context.Background()
	all, err := e.ReadLog(ctx, log, "", 0)
	check(t, err)
	if len(all) != len(m.ids) {
		t.Fatalf("ReadLog: %d records, want %d", len(all), len(m.ids))
	}
	for i, r := range all {
		if r.ID != m.ids[i] || string(r.Data) != m.data[i] {
			t.Fatalf("record %d = %s %q, want %s %q", i, r.ID, r.Data, m.ids[i], m.data[i])
		}
	}
	if n, err := e.LogLen(ctx, log); err != nil || n != int64(len(m.ids)) {
		t.Fatalf("LogLen = %d, %v; want %d", n, err, len(m.ids))
	}
	for _, page := range []int{1, 7, 100} {
		after, i := "", 0
		for {
			recs, err := e.ReadLog(ctx, log, after, page)
			check(t, err)
			if len(recs) == 0 {
				break
			}
			for _, r := range recs {
				if i >= len(m.ids) || r.ID != m.ids[i] || string(r.Data) != m.data[i] {
					t.Fatalf("page %d: record %d = %s %q", page, i, r.ID, r.Data)
				}
				i++
			}
			after = recs[len(recs)-1].ID
		}
		if i != len(m.ids) {
			t.Fatalf("paging by %d read %d records, want %d", page, i, len(m.ids))
		}
	}
	enginetest.CheckLogPages(t, e, log)
}

func TestEmbeddedColdLogs_ReadTrimReopen(t *testing.T) {
	ctx := context.Background()
	for _, compact := range []int64{0, 8 << 10} {
		t.Run(fmt.Sprintf("compact=%d", compact), func(t *testing.T) {
			dir := t.TempDir()
			opts := engine.EmbeddedOptions{LogMemoryBytes: 2 << 10, CompactBytes: compact}
			e := openAt(t, dir, opts)
			var m logModel
			for i := 0; i < 300; i++ {
				d := fmt.Sprintf("rec %d %s", i, strings.Repeat("x", i%50))
				if i%3 == 0 {
					ids, err := e.AppendMany(ctx, "log", []byte(d), []byte(d+" b"))
					check(t, err)
					m.add(ids, d, d+" b")
					continue
				}
				id, err := e.Append(ctx, "log", []byte(d))
				check(t, err)
				m.add([]string{id}, d)
			}
			waitFor(t, "a spill", func() bool { return e.Stats().Spills > 0 })
			m.verify(t, e, "log")

			// Trim into the cold part: the boundary moves, reads agree.
			time.Sleep(2 * time.Millisecond)
			cut := time.Now()
			time.Sleep(2 * time.Millisecond)
			for i := 0; i < 100; i++ {
				d := "late " + strconv.Itoa(i)
				id, err := e.Append(ctx, "log", []byte(d))
				check(t, err)
				m.add([]string{id}, d)
			}
			check(t, e.TrimLog(ctx, "log", cut))
			k := len(m.ids) - 100
			m.ids, m.data = m.ids[k:], m.data[k:]
			waitFor(t, "a second spill", func() bool { return e.Stats().Spills > 1 })
			m.verify(t, e, "log")

			check(t, e.Close())
			r := openAt(t, dir, opts)
			m.verify(t, r, "log")
			if compact == 0 && len(coldFiles(t, dir)) != 0 {
				// No snapshot refers to them: the WAL replayed their records.
				t.Fatalf("segments left after reopening without a snapshot: %v", coldFiles(t, dir))
			}
			id, err := r.Append(ctx, "log", []byte("after reopen"))
			check(t, err)
			if engine.CompareIDs(id, m.ids[len(m.ids)-1]) <= 0 {
				t.Fatalf("ID after reopen %s not above %s", id, m.ids[len(m.ids)-1])
			}
		})
	}
}

// Cold data must be exactly what was appended: a damaged segment is an
// error, not wrong data.
func TestEmbeddedColdLogs_DamageIsDetected(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	opts := engine.EmbeddedOptions{LogMemoryBytes: 1 << 10, CompactBytes: 4 << 10}
	e := openAt(t, dir, opts)
	for i := 0; i < 200; i++ {
		_, err := e.Append(ctx, "log", bytes.Repeat([]byte{'a' + byte(i%26)}, 40))
		check(t, err)
	}
	waitFor(t, "a snapshot referring to cold records", func() bool { return e.Stats().Spills > 0 && e.Stats().Snapshots > 0 })
	check(t, e.Close())
	files := coldFiles(t, dir)
	if len(files) == 0 {
		t.Fatal("no cold segment left after the snapshot")
	}
	b, err := os.ReadFile(files[0])
	check(t, err)
	b[len(b)-1] ^= 0xff
	check(t, os.WriteFile(files[0], b, 0o644))
	r := openAt(t, dir, opts)
	if _, err := r.ReadLog(ctx, "log", "", 0); err == nil {
		t.Fatal("read a damaged cold segment without error")
	}
}

// Acknowledged appends survive a crash at any moment of spills and
// compactions, and the files no snapshot needs any more go away.
func TestEmbeddedColdLogs_CrashAndCleanup(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	opts := engine.EmbeddedOptions{LogMemoryBytes: 4 << 10, CompactBytes: 16 << 10}
	e := openAt(t, dir, opts)
	var mu sync.Mutex
	acked := map[string]string{}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				d := fmt.Sprintf("w%d-%d-%s", w, i, strings.Repeat("p", i%60))
				id, err := e.Append(ctx, "log", []byte(d))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				acked[id] = d
				mu.Unlock()
				if i%50 == 0 {
					if _, err := e.ReadLog(ctx, "log", "", 0); err != nil { // readers meet spills
						t.Error(err)
						return
					}
				}
			}
		}(w)
	}
	waitFor(t, "spills and snapshots", func() bool { return e.Stats().Spills > 3 && e.Stats().Snapshots > 1 })
	mu.Lock()
	want := make(map[string]string, len(acked))
	for id, d := range acked {
		want[id] = d
	}
	mu.Unlock()
	r := openCrashCopy(t, dir, opts)
	close(stop)
	wg.Wait()

	recs, err := r.ReadLog(ctx, "log", "", 0)
	check(t, err)
	got := map[string]string{}
	for i, rec := range recs {
		if i > 0 && engine.CompareIDs(recs[i-1].ID, rec.ID) >= 0 {
			t.Fatalf("out of order at %d", i)
		}
		got[rec.ID] = string(rec.Data)
	}
	for id, d := range want {
		if got[id] != d {
			t.Fatalf("acknowledged record %s lost or changed after crash: %q", id, got[id])
		}
	}

	// Trim everything: once a snapshot no longer needs them, every cold
	// segment is deleted.
	check(t, e.TrimLog(ctx, "log", time.Now().Add(time.Hour)))
	before := e.Stats().Snapshots
	for i := 0; e.Stats().Snapshots < before+2; i++ {
		check(t, e.Set(ctx, "pad", bytes.Repeat([]byte("p"), 1<<10), 0))
		if i > 100000 {
			t.Fatal("no snapshot")
		}
	}
	waitFor(t, "cold segments to be deleted", func() bool { return len(coldFiles(t, dir)) == 0 })
}

// openCrashCopy opens a copy of dir taken while the engine runs (what a
// kill -9 leaves). copyDir is not atomic: a compaction finishing while it
// copies can delete a segment that an older snapshot it already copied
// refers to (a state no real crash leaves), so such a copy is taken again;
// a real loss would fail every time.
func openCrashCopy(t *testing.T, dir string, opts engine.EmbeddedOptions) *engine.Embedded {
	t.Helper()
	opts.Logf = t.Logf
	for attempt := 0; ; attempt++ {
		r, err := engine.OpenEmbedded(copyDir(t, dir), opts)
		if err == nil {
			t.Cleanup(func() { r.Close() })
			return r
		}
		if attempt == 3 || !strings.Contains(err.Error(), "is missing") {
			t.Fatal(err)
		}
		t.Logf("copy %d inconsistent (%v); copying again", attempt, err)
	}
}
