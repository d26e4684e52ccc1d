package engine

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Files in the data directory:
//
//	wal-<seq>.log   write-ahead log segments, replayed in seq order
//	snap-<seq>.snap state after every segment with a smaller seq
//	LOCK            flock'ed while open so two processes cannot share dir
//
// Compaction rotates to a new segment N+1, writes snap-(N+1) (tmp, fsync,
// rename, fsync dir) and only then deletes segments and snapshots < N+1, so a
// crash at any point leaves a snapshot plus the segments that follow it.

const snapMagic = "KEFUSNAP1\n"

func walName(seq uint64) string  { return fmt.Sprintf("wal-%016x.log", seq) }
func snapName(seq uint64) string { return fmt.Sprintf("snap-%016x.snap", seq) }

// parseSeq extracts seq from "<prefix><hex><suffix>".
func parseSeq(name, prefix, suffix string) (uint64, bool) {
	if !strings.HasPrefix(name, prefix) || !strings.HasSuffix(name, suffix) {
		return 0, false
	}
	s, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(name, prefix), suffix), 16, 64)
	return s, err == nil
}

// walWriter implements group commit. Writers append encoded frames to
// pending (under the engine's write lock, so WAL order equals apply order)
// and get a log sequence number; the single committer goroutine swaps
// pending out, writes it with one write+fsync and advances durable, waking
// every waiter whose LSN is covered. While one fsync runs the next batch
// accumulates, so N concurrent writers cost ~1 fsync instead of N.
type walWriter struct {
	mu       sync.Mutex
	work     sync.Cond // committer waits for pending frames
	done     sync.Cond // writers wait for durable to pass their LSN
	pending  []byte
	spare    []byte
	next     uint64 // last LSN handed out
	durable  atomic.Uint64
	err      error // sticky write/fsync error: the engine stops accepting writes
	failedF  atomic.Bool
	closing  bool
	exited   bool
	f        *segment // only the committer goroutine touches f, seq and size
	seq      uint64
	size     atomic.Int64
	noSync   bool
	frames   atomic.Uint64
	batches  atomic.Uint64
	syncs    atomic.Uint64
	written  atomic.Uint64
	snapshot atomic.Uint64
}

func newWALWriter(f *segment, seq uint64, size int64, noSync bool) *walWriter {
	f.end = size
	w := &walWriter{f: f, seq: seq, noSync: noSync}
	w.size.Store(size)
	w.work.L = &w.mu
	w.done.L = &w.mu
	return w
}

// enqueue appends a finished frame and returns its LSN. The caller holds the
// engine's write lock.
func (w *walWriter) enqueue(frame []byte) uint64 {
	w.mu.Lock()
	w.pending = append(w.pending, frame...)
	w.next++
	lsn := w.next
	w.frames.Add(1)
	w.work.Signal()
	w.mu.Unlock()
	return lsn
}

// failed returns the sticky error, if any.
func (w *walWriter) failed() error {
	if !w.failedF.Load() {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return fmt.Errorf("%w: write-ahead log: %v", ErrUnavailable, w.err)
}

// wait blocks until lsn is durable. It deliberately ignores the caller's
// context: the mutation is already applied in memory and will be on disk
// within one fsync, and returning early would leave the caller unsure
// whether its write happened.
func (w *walWriter) wait(lsn uint64) error {
	if w.durable.Load() >= lsn {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.durable.Load() < lsn && w.err == nil && !w.exited {
		w.done.Wait()
	}
	switch {
	case w.durable.Load() >= lsn:
		return nil
	case w.err != nil:
		return fmt.Errorf("%w: write-ahead log: %v", ErrUnavailable, w.err)
	}
	return ErrClosed
}

// flush writes and syncs everything pending. Only the committer calls it.
func (w *walWriter) flush() {
	w.mu.Lock()
	buf, upto := w.pending, w.next
	w.pending, w.spare = w.spare[:0], nil
	failed := w.err != nil
	w.mu.Unlock()
	if len(buf) == 0 || failed {
		return
	}
	err := w.f.writeAt(buf, w.size.Load())
	if err == nil && !w.noSync {
		err = w.f.datasync()
		w.syncs.Add(1)
	}
	w.batches.Add(1)
	w.written.Add(uint64(len(buf)))
	w.size.Add(int64(len(buf)))
	w.mu.Lock()
	if err != nil {
		w.err = err
		w.failedF.Store(true)
	} else {
		w.durable.Store(upto)
	}
	if cap(buf) <= 8<<20 { // keep one buffer around, but not a huge one
		w.spare = buf[:0]
	}
	w.done.Broadcast()
	w.mu.Unlock()
}

// committer is the group-commit loop; it also triggers compaction.
func (e *Embedded) committer() {
	defer e.wg.Done()
	w := e.wal
	for {
		w.mu.Lock()
		for len(w.pending) == 0 && !w.closing {
			w.work.Wait()
		}
		if len(w.pending) == 0 {
			w.exited = true
			w.done.Broadcast()
			w.mu.Unlock()
			return
		}
		w.mu.Unlock()
		w.flush()
		if w.size.Load() >= e.compactAt && !e.snapshotting.Load() && w.failed() == nil {
			e.compact()
		}
	}
}

// compact rotates the WAL and snapshots the state. It holds the engine's
// write lock only while draining pending frames, opening the new segment and
// serializing state to memory; the snapshot file is written by a separate
// goroutine so commits continue meanwhile.
func (e *Embedded) compact() {
	w := e.wal
	e.mu.Lock()
	w.flush() // no new frames can arrive while we hold e.mu
	if w.failed() != nil {
		e.mu.Unlock()
		return
	}
	newSeq := w.seq + 1
	f, err := createSegment(e.dir, newSeq, !w.noSync)
	if err != nil {
		// Keep appending to the current segment; try again after another
		// threshold's worth of writes.
		e.compactAt = w.size.Load() + e.opts.CompactBytes
		e.mu.Unlock()
		e.logf("engine: embedded: cannot rotate WAL: %v", err)
		return
	}
	old := w.f
	w.f, w.seq = f, newSeq
	w.size.Store(0)
	e.compactAt = e.opts.CompactBytes
	var buf bytes.Buffer
	buf.WriteString(snapMagic)
	e.st.encodeSnapshot(time.Now().UnixNano(), &buf)
	e.snapshotting.Store(true)
	e.mu.Unlock()
	if err := old.Close(); err != nil {
		e.logf("engine: embedded: closing old WAL segment: %v", err)
	}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		defer e.snapshotting.Store(false)
		if err := writeSnapshot(e.dir, newSeq, buf.Bytes()); err != nil {
			// Older snapshot + all segments remain, so recovery still works.
			e.logf("engine: embedded: snapshot %d failed: %v", newSeq, err)
			return
		}
		w.snapshot.Add(1)
		removeOlder(e.dir, newSeq, e.logf)
	}()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func writeSnapshot(dir string, seq uint64, data []byte) error {
	final := filepath.Join(dir, snapName(seq))
	tmp := final + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, final)
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// removeOlder deletes segments and snapshots made obsolete by snapshot seq.
func removeOlder(dir string, seq uint64, logf func(string, ...any)) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		logf("engine: embedded: listing %s: %v", dir, err)
		return
	}
	for _, de := range ents {
		n := de.Name()
		s, ok := parseSeq(n, "wal-", ".log")
		if !ok {
			s, ok = parseSeq(n, "snap-", ".snap")
		}
		if ok && s < seq {
			if err := os.Remove(filepath.Join(dir, n)); err != nil {
				logf("engine: embedded: removing %s: %v", n, err)
			}
		}
	}
}

// recoverState loads the newest snapshot and replays the segments after it.
// A torn frame at the end of the last segment (a crash mid-write) is
// truncated away; damage anywhere else is reported as an error rather than
// silently losing acknowledged data.
func recoverState(dir string, st *state, logf func(string, ...any)) (seg uint64, size int64, err error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, 0, err
	}
	var snaps, wals []uint64
	for _, de := range ents {
		n := de.Name()
		if strings.HasSuffix(n, ".tmp") {
			os.Remove(filepath.Join(dir, n)) // unfinished snapshot from a crash
			continue
		}
		if s, ok := parseSeq(n, "wal-", ".log"); ok {
			wals = append(wals, s)
		} else if s, ok := parseSeq(n, "snap-", ".snap"); ok {
			snaps = append(snaps, s)
		}
	}
	sort.Slice(snaps, func(i, j int) bool { return snaps[i] < snaps[j] })
	sort.Slice(wals, func(i, j int) bool { return wals[i] < wals[j] })

	var base uint64
	if len(snaps) > 0 {
		base = snaps[len(snaps)-1]
		if err := loadSnapshot(filepath.Join(dir, snapName(base)), st); err != nil {
			return 0, 0, err
		}
	}
	if base > 0 {
		// Leftovers of a crash between a snapshot and its cleanup.
		removeOlder(dir, base, logf)
	}
	var replay []uint64
	for _, s := range wals {
		if s >= base {
			replay = append(replay, s)
		}
	}
	seg, size = base, 0
	if seg == 0 {
		seg = 1
	}
	for i, s := range replay {
		path := filepath.Join(dir, walName(s))
		data, err := os.ReadFile(path)
		if err != nil {
			return 0, 0, err
		}
		off := 0
		for off < len(data) {
			p, n, ok := nextFrame(data[off:])
			if !ok {
				break
			}
			if _, err := st.applyPayload(p); err != nil {
				return 0, 0, fmt.Errorf("engine: embedded: %s at offset %d: %w", path, off, err)
			}
			off += n
		}
		if off < len(data) && allZero(data[off:]) {
			// Zero-filled space after the last record (see segment).
		} else if off < len(data) {
			if i != len(replay)-1 {
				return 0, 0, fmt.Errorf("engine: embedded: %s: damaged record at offset %d in a non-final segment", path, off)
			}
			logf("engine: embedded: %s: dropping %d bytes of torn tail at offset %d", path, len(data)-off, off)
			if err := truncateFile(path, int64(off)); err != nil {
				return 0, 0, err
			}
		}
		seg, size = s, int64(off)
	}
	return seg, size, nil
}

func truncateFile(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return err
	}
	return f.Sync()
}

func loadSnapshot(path string, st *state) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(data, []byte(snapMagic)) {
		return fmt.Errorf("engine: embedded: %s: not a snapshot", path)
	}
	off := len(snapMagic)
	for off < len(data) {
		p, n, ok := nextFrame(data[off:])
		if !ok {
			break
		}
		end, err := st.applyPayload(p)
		if err != nil {
			return fmt.Errorf("engine: embedded: %s: %w", path, err)
		}
		if end {
			return nil
		}
		off += n
	}
	return fmt.Errorf("engine: embedded: %s: snapshot is incomplete", path)
}
