package engine

import (
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"time"
)

// Cold log segments. Logs only grow (the event log, the bot journal and
// the survey log are kept for months), so holding every record in memory
// would make the embedded engine's memory grow with retention instead of
// with traffic. When a log holds more than LogMemoryBytes of record data
// in memory, its oldest records are written to a cold segment file and
// only their IDs and file positions stay in memory; ReadLog reads them
// back from the file (the page cache, usually).
//
//	cold-<seg>.seg  magic, then record data back to back (one log per file,
//	                or strings: embedded_coldstr.go)
//
// A segment is written and fsynced before any record refers to it; until
// the next snapshot the WAL still holds those records too, so recovery
// replays them into memory and deletes the segments no snapshot refers
// to. Snapshots refer to cold records by position (opXCold) instead of
// copying their data, so compaction stays proportional to what is in
// memory. A segment is deleted once no snapshot or record refers to it:
// after a compaction, every segment the new snapshot does not mention and
// that existed when the state was frozen.
//
// One spill runs at a time, and a compaction never starts while one runs,
// so the segment a spill is still writing or installing (numbered after
// the frozen state's coldUpTo only if it started later) is never dropped
// by a compaction. A spill may start while a compaction writes its
// snapshot: otherwise strings and log records piled up in memory for as
// long as the snapshot took (the live heap jumped by tens of MB under
// load). Its segments are numbered after the compaction's coldUpTo, so
// that compaction never drops them; and the segments it reads (a merge of
// a string's parts) are referenced by live entries, which the frozen state
// references too, so the compaction never drops those either.

const coldMagic = "KEFUCOLD1\n"

// defaultLogMemory is EmbeddedOptions.LogMemoryBytes' default.
const defaultLogMemory = 2 << 20

// spillRetry is how long a failed spill waits before the next attempt.
const spillRetry = 30 * time.Second

// maxColdFile bounds one segment so positions fit in 32 bits.
const maxColdFile = 1 << 30

func coldName(seg uint32) string { return fmt.Sprintf("cold-%08x.seg", seg) }

// spillJob is one log's oldest hot records to move to a new segment.
type spillJob struct {
	key  string
	l    *stream
	recs []logRec
	seg  uint32
}

// startSpill picks the logs over the limit and, if any, starts a
// goroutine moving their oldest records to disk. Committer goroutine only,
// with no spill running.
func (e *Embedded) startSpill() {
	if time.Now().UnixNano() < e.spillAfter.Load() {
		return
	}
	var jobs []spillJob
	e.mu.Lock()
	for key := range e.st.overLimit {
		delete(e.st.overLimit, key)
		ent := e.st.keys[key]
		if ent == nil || ent.kind != kindLog {
			continue
		}
		l := ent.log
		if l.hot <= e.st.hotLimit {
			continue // appended to while the last spill was being written
		}
		// Keep the newest quarter of the limit in memory: readers of the
		// log's tail (the report, every few seconds) need no disk.
		keep := e.st.hotLimit / 4
		var n int
		var size int64
		for n < len(l.recs) && l.hot-size > keep && size+int64(len(l.recs[n].data)) <= maxColdFile-int64(len(coldMagic)) {
			size += int64(len(l.recs[n].data))
			n++
		}
		if n == 0 {
			continue
		}
		e.coldNext++
		jobs = append(jobs, spillJob{key: key, l: l, recs: l.recs[:n:n], seg: e.coldNext})
	}
	strGen, strKeys, strScan := e.st.strScanDue()
	e.mu.Unlock()
	if len(jobs) == 0 && !strScan {
		return
	}
	e.spilling.Store(true)
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		defer e.spilling.Store(false)
		for _, j := range jobs {
			if err := e.spill(j); err != nil {
				// The records stay in memory; try again later rather than
				// after every commit (a full disk would spin otherwise).
				e.spillAfter.Store(time.Now().Add(spillRetry).UnixNano())
				e.logf("engine: embedded: moving log %s to disk: %v", j.key, err)
			}
		}
		if strScan {
			if err := e.spillStrings(strGen, strKeys); err != nil {
				e.spillAfter.Store(time.Now().Add(spillRetry).UnixNano())
				e.logf("engine: embedded: moving strings to disk: %v", err)
			}
		}
	}()
}

// spill writes j's records to their segment as blocks, then turns those
// still in the log into cold blocks.
func (e *Embedded) spill(j spillJob) error {
	path := filepath.Join(e.dir, coldName(j.seg))
	blocks, err := writeColdBlocks(path, j.recs)
	if err != nil {
		return err
	}
	for i := range blocks {
		blocks[i].seg = j.seg
	}
	e.mu.Lock()
	moved := 0
	if ent := e.st.keys[j.key]; ent != nil && ent.kind == kindLog && ent.log == j.l && len(j.l.recs) > 0 {
		// Trims may have dropped some of the records meanwhile (only ever a
		// prefix); appends only add after them.
		l := j.l
		first := l.recs[0]
		p := searchAfter(j.recs, first.ms, first.seq) - 1
		if p >= 0 && j.recs[p].ms == first.ms && j.recs[p].seq == first.seq {
			moved = len(j.recs) - p
			var size int64
			for _, r := range l.recs[:moved] {
				size += int64(len(r.data))
			}
			// The p trimmed records are skipped: whole blocks dropped, the
			// block holding the cut marked.
			trimmed := uint32(p)
			for _, b := range blocks {
				if trimmed >= b.count {
					trimmed -= b.count
					continue
				}
				b.skip, trimmed = trimmed, 0
				l.blocks = append(l.blocks, b)
				l.blockRecs += b.live()
			}
			// A copy, not a reslice, so the moved records' data becomes
			// garbage.
			l.recs = append(l.recs[:0:0], l.recs[moved:]...)
			l.hot -= size
		}
	}
	if moved > 0 {
		e.coldSegs[j.seg] = true
	}
	e.mu.Unlock()
	if moved == 0 {
		os.Remove(path) // all trimmed, or the log is gone
		return nil
	}
	e.spills.Add(1)
	return nil
}

// writeCold writes recs' data to a new segment file and makes it durable
// (file and directory fsynced; on error no file is left), returning each
// record's position (seg left to the caller).
func writeCold(path string, recs []logRec) ([]coldRec, error) {
	cold := make([]coldRec, 0, len(recs))
	_, err := writeDurable(path, createNew, func(w io.Writer) error {
		if _, err := io.WriteString(w, coldMagic); err != nil {
			return err
		}
		off := int64(len(coldMagic))
		for _, r := range recs {
			cold = append(cold, coldRec{ms: r.ms, seq: r.seq, off: uint32(off), n: uint32(len(r.data)), crc: crc32.Checksum(r.data, crcTable)})
			if _, err := w.Write(r.data); err != nil {
				return err
			}
			off += int64(len(r.data))
		}
		return nil
	})
	return cold, err
}

// readCold hands emit the data of recs (consecutive records of one log),
// one read into a buffer from buf per run of records that are adjacent in
// one file (files stay open in e.files, at most maxOpenCold of them).
// Called with the engine lock held (read or write), so no segment is
// deleted under it.
func (e *Embedded) readCold(recs []coldRec, buf func(n int) []byte, emit func(ms, seq uint64, data []byte, owned bool)) error {
	for i := 0; i < len(recs); {
		j, end := i+1, int64(recs[i].off)+int64(recs[i].n)
		for j < len(recs) && recs[j].seg == recs[i].seg && int64(recs[j].off) == end {
			end += int64(recs[j].n)
			j++
		}
		b := buf(int(end - int64(recs[i].off)))
		if err := e.files.readAt(recs[i].seg, b, int64(recs[i].off)); err != nil {
			return fmt.Errorf("engine: embedded: reading cold log segment: %w", err)
		}
		for _, c := range recs[i:j] {
			data := b[:c.n:c.n]
			b = b[c.n:]
			if crc32.Checksum(data, crcTable) != c.crc {
				return fmt.Errorf("engine: embedded: %s: record %s: %w", coldName(c.seg), formatID(c.ms, c.seq), errCorrupt)
			}
			emit(c.ms, c.seq, data, true)
		}
		i = j
	}
	return nil
}

// openCold checks that the segments the recovered state refers to exist
// and deletes the others (spilled after the last snapshot: the WAL
// replayed their records into memory). Called once, before the engine is
// shared.
func (e *Embedded) openCold() error {
	used := map[uint32]bool{}
	for _, ent := range e.st.keys {
		if ent.kind == kindLog {
			for _, c := range ent.log.cold {
				used[c.seg] = true
			}
			for _, b := range ent.log.blocks {
				used[b.seg] = true
			}
		}
		if ent.cold != nil {
			for _, p := range ent.cold.parts {
				used[p.seg] = true
			}
		}
	}
	for _, c := range e.st.coldKeys {
		used[c.part.seg] = true
	}
	ents, err := os.ReadDir(e.dir)
	if err != nil {
		return err
	}
	for _, de := range ents {
		seg, ok := parseSeq(de.Name(), "cold-", ".seg")
		if !ok || seg > 1<<32-1 {
			continue
		}
		e.coldNext = max(e.coldNext, uint32(seg))
		path := filepath.Join(e.dir, de.Name())
		if !used[uint32(seg)] {
			if err := os.Remove(path); err != nil {
				e.logf("engine: embedded: removing %s: %v", de.Name(), err)
			}
			continue
		}
		e.coldSegs[uint32(seg)] = true
	}
	for seg := range used {
		if !e.coldSegs[seg] {
			return fmt.Errorf("engine: embedded: cold log segment %s is missing", coldName(seg))
		}
	}
	return nil
}

// dropCold deletes the segments that the snapshot of fr made obsolete:
// those that existed when fr was taken (seg <= upTo) and that it does not
// refer to. Records in memory can only refer to segments fr refers to or
// to newer ones. Called after the snapshot and its cleanup succeeded.
func (e *Embedded) dropCold(fr *frozen, upTo uint32) {
	e.mu.Lock()
	var gone []uint32
	for seg := range e.coldSegs {
		if seg <= upTo && !fr.segs[seg] {
			delete(e.coldSegs, seg)
			gone = append(gone, seg)
		}
	}
	e.mu.Unlock()
	// Readers that took a cold string's position under e.mu read it after
	// releasing e.mu, holding segMu: wait for them.
	e.segMu.Lock()
	defer e.segMu.Unlock()
	for _, seg := range gone {
		e.files.forget(seg)
		name := coldName(seg)
		if err := os.Remove(filepath.Join(e.dir, name)); err != nil && !os.IsNotExist(err) {
			e.logf("engine: embedded: removing %s: %v", name, err)
		}
	}
}
