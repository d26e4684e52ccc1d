package engine

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// Logs spilled by older versions keep one coldRec a record in a raw
// segment. Such a log (simulated by moving its oldest records to a raw
// segment the old way) reads, pages, spills newer records into blocks
// behind them, trims through both tiers and survives a snapshot and a
// reopen.
func TestColdLogBlocks_OlderSegmentsStillRead(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	opts := EmbeddedOptions{LogMemoryBytes: -1, StringSpillBytes: -1, CompactBytes: 64 << 10, Logf: t.Logf}
	e, err := OpenEmbedded(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	var ids, data []string
	add := func(n int, tag string) {
		for i := range n {
			d := fmt.Sprintf("%s-%03d", tag, i)
			id, err := e.Append(ctx, "log", []byte(d))
			if err != nil {
				t.Fatal(err)
			}
			ids, data = append(ids, id), append(data, d)
		}
	}
	verify := func(e *Embedded, what string) {
		t.Helper()
		recs, err := e.ReadLog(ctx, "log", "", 0)
		if err != nil || len(recs) != len(ids) {
			t.Fatalf("%s: %d records, %v; want %d", what, len(recs), err, len(ids))
		}
		for i, r := range recs {
			if r.ID != ids[i] || string(r.Data) != data[i] {
				t.Fatalf("%s: record %d = %s %q, want %s %q", what, i, r.ID, r.Data, ids[i], data[i])
			}
		}
		for _, page := range []int{1, 3, 50} { // pages across the tiers
			after, n := "", 0
			for {
				recs, err := e.ReadLog(ctx, "log", after, page)
				if err != nil {
					t.Fatal(err)
				}
				if len(recs) == 0 {
					break
				}
				for _, r := range recs {
					if r.ID != ids[n] {
						t.Fatalf("%s: page %d: record %d = %s, want %s", what, page, n, r.ID, ids[n])
					}
					n++
				}
				after = recs[len(recs)-1].ID
			}
			if n != len(ids) {
				t.Fatalf("%s: paging by %d read %d records, want %d", what, page, n, len(ids))
			}
		}
		if n, err := e.LogLen(ctx, "log"); err != nil || n != int64(len(ids)) {
			t.Fatalf("%s: LogLen = %d, %v; want %d", what, n, err, len(ids))
		}
		// ReadLogPage reads both tiers like ReadLog, one page reused.
		var p LogPage
		for _, page := range []int{0, 1, 3, 50} {
			for _, after := range append([]string{""}, ids...) {
				want, err := e.ReadLog(ctx, "log", after, page)
				if err != nil {
					t.Fatal(err)
				}
				if err := e.ReadLogPage(ctx, "log", after, page, &p); err != nil {
					t.Fatal(err)
				}
				if p.Len() != len(want) {
					t.Fatalf("%s: ReadLogPage(after %s, %d) has %d records, ReadLog %d", what, after, page, p.Len(), len(want))
				}
				for i, r := range want {
					if p.ID(i) != r.ID || string(p.Data(i)) != string(r.Data) {
						t.Fatalf("%s: ReadLogPage(after %s, %d): record %d = %s %q, want %s %q", what, after, page, i, p.ID(i), p.Data(i), r.ID, r.Data)
					}
				}
			}
		}
	}
	add(60, "old")
	time.Sleep(3 * time.Millisecond)
	add(60, "mid")
	// What an older version's spill left: the first 60 records as coldRecs.
	e.mu.Lock()
	l := e.st.keys["log"].log
	e.coldNext++
	seg := e.coldNext
	cold, err := writeCold(filepath.Join(dir, coldName(seg)), l.recs[:60])
	if err != nil {
		e.mu.Unlock()
		t.Fatal(err)
	}
	for i := range cold {
		cold[i].seg = seg
	}
	l.cold = cold
	l.recs = append(l.recs[:0:0], l.recs[60:]...)
	e.coldSegs[seg] = true
	e.mu.Unlock()
	verify(e, "legacy + hot")

	// Newer records now spill as blocks behind the legacy ones.
	e.mu.Lock()
	e.st.hotLimit = 64
	e.mu.Unlock()
	add(40, "new")
	for e.Stats().Spills == 0 || e.spilling.Load() {
		add(1, "more")
	}
	e.mu.RLock()
	tiers := fmt.Sprintf("%d legacy, %d blocks, %d hot", len(l.cold), len(l.blocks), len(l.recs))
	blocks := len(l.blocks)
	e.mu.RUnlock()
	if blocks == 0 {
		t.Fatalf("no blocks after a spill: %s", tiers)
	}
	verify(e, "legacy + blocks + hot: "+tiers)

	// A snapshot refers to both tiers; reopen from it.
	for i := 0; e.Stats().Snapshots == 0 || e.maint.Load() || e.spilling.Load(); i++ {
		if err := e.Set(ctx, "pad", make([]byte, 1<<10), 0); err != nil {
			t.Fatal(err)
		}
		if i > 100000 {
			t.Fatal("no snapshot")
		}
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := OpenEmbedded(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { r.Close() }()
	r.mu.RLock()
	l = r.st.keys["log"].log
	tiers = fmt.Sprintf("%d legacy, %d blocks, %d hot", len(l.cold), len(l.blocks), len(l.recs))
	r.mu.RUnlock()
	if len(l.cold) == 0 || len(l.blocks) == 0 {
		t.Fatalf("the snapshot lost a tier: %s", tiers)
	}
	verify(r, "reopened from a snapshot: "+tiers)

	// Trim the legacy tier away and into the blocks.
	cut := ids[100] // a "mid" record: in a block now
	ms, _, _ := parseID(cut)
	if err := r.TrimLog(ctx, "log", time.UnixMilli(int64(ms))); err != nil {
		t.Fatal(err)
	}
	k := 0
	for k < len(ids) {
		m, _, _ := parseID(ids[k])
		if m >= ms {
			break
		}
		k++
	}
	ids, data = ids[k:], data[k:]
	verify(r, "after a trim into the blocks")
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	r, err = OpenEmbedded(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	verify(r, "reopened after the trim")
}
