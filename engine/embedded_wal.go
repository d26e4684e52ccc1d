package engine

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
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
//	cold-<n>.seg    older log records, referred to by position (embedded_cold.go)
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
// the waiters of that batch. While one fsync runs the next batch
// accumulates, so N concurrent writers cost ~1 fsync instead of N.
//
// Each batch has a channel closed when it is durable (or failed): a waiter
// sleeps on its own batch's channel and wakes once, when its write is
// done. (A condition variable broadcast woke every waiter at every fsync,
// the next batch's too, and each took the mutex to go back to sleep: at
// full load the most common reason a goroutine sat runnable.)
type walWriter struct {
	mu   sync.Mutex
	work sync.Cond // committer waits for pending frames
	// pendingCh is closed when the frames now pending are durable,
	// inflightCh when the batch being flushed is (each made by its first
	// waiter).
	pendingCh, inflightCh chan struct{}
	pending               []byte
	spare                 []byte
	next                  uint64 // last LSN handed out
	flushed               uint64 // last LSN taken by a flush (committer only)
	// lastBatch is how many frames the last flush carried (committer only).
	lastBatch uint64
	durable   atomic.Uint64
	err       error // sticky write/fsync error: the engine stops accepting writes
	failedF   atomic.Bool
	closing   bool
	exited    bool
	f         *segment // only the committer goroutine touches f, seq and size
	seq       uint64
	size      atomic.Int64
	noSync    bool
	frames    atomic.Uint64
	batches   atomic.Uint64
	syncs     atomic.Uint64
	// commits counts group commits (write + fsync) by duration, bucket i
	// up to CommitBounds[i], the last one beyond; commitNanos sums them.
	commits     [len(CommitBounds) + 1]atomic.Uint64
	commitNanos atomic.Uint64
	written     atomic.Uint64
	snapshot    atomic.Uint64
}

func newWALWriter(f *segment, seq uint64, size int64, noSync bool) *walWriter {
	f.end = size
	w := &walWriter{f: f, seq: seq, noSync: noSync}
	w.size.Store(size)
	w.work.L = &w.mu
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
		// Channels are made by the first waiter of a batch, so a batch
		// nobody waits for costs none.
		var ch chan struct{}
		if lsn > w.flushed { // still pending: wait for the next batch
			if w.pendingCh == nil {
				w.pendingCh = make(chan struct{})
			}
			ch = w.pendingCh
		} else { // in the batch being flushed
			if w.inflightCh == nil {
				w.inflightCh = make(chan struct{})
			}
			ch = w.inflightCh
		}
		w.mu.Unlock()
		<-ch
		w.mu.Lock()
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
	w.lastBatch = upto - w.flushed
	w.flushed = upto
	w.pending, w.spare = w.spare[:0], nil
	ch := w.pendingCh
	w.pendingCh, w.inflightCh = nil, ch
	failed := w.err != nil
	if len(buf) == 0 || failed {
		w.wake()
		w.mu.Unlock()
		return
	}
	w.mu.Unlock()
	start := time.Now()
	err := w.f.writeAt(buf, w.size.Load())
	if err == nil && !w.noSync {
		err = w.f.datasync()
		w.syncs.Add(1)
	}
	w.noteCommit(time.Since(start))
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
	// Keep one buffer around, but not one a stall (a slow disk, a
	// snapshot's writes) grew: a normal batch is tens of KiB, and a kept
	// 8 MiB buffer was ≈5 % of the live heap at full load.
	if cap(buf) <= 256<<10 {
		w.spare = buf[:0]
	}
	w.wake()
	w.mu.Unlock()
}

// CommitBounds are the upper bounds of the group-commit duration buckets
// (EmbeddedStats.Commits): every passive reply on the embedded engine
// waits for one commit, so a slow disk shows here before it shows in
// the ack latency.
var CommitBounds = [...]time.Duration{
	250 * time.Microsecond, 500 * time.Microsecond, time.Millisecond, 2 * time.Millisecond,
	4 * time.Millisecond, 8 * time.Millisecond, 16 * time.Millisecond, 32 * time.Millisecond,
	64 * time.Millisecond, 128 * time.Millisecond, 256 * time.Millisecond,
}

func (w *walWriter) noteCommit(d time.Duration) {
	i := 0
	for i < len(CommitBounds) && d > CommitBounds[i] {
		i++
	}
	w.commits[i].Add(1)
	w.commitNanos.Add(uint64(max(d, 0)))
}

// wake releases the waiters of the batch just flushed. Called with mu held.
func (w *walWriter) wake() {
	if w.inflightCh != nil {
		close(w.inflightCh)
		w.inflightCh = nil
	}
}

// gather lets more frames join the next fsync when writers are concurrent
// (the last flush carried several): it waits until as many frames as last
// time are pending, or at most d. Committer only.
func (w *walWriter) gather(d time.Duration) {
	if d <= 0 || w.lastBatch <= 1 {
		return
	}
	deadline := time.Now().Add(d)
	for {
		w.mu.Lock()
		n := w.next - w.flushed
		w.mu.Unlock()
		if n >= w.lastBatch || !time.Now().Before(deadline) {
			return
		}
		time.Sleep(gatherPoll)
	}
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
			w.wake()
			if w.pendingCh != nil { // nothing pending: only a waiter that lost the race to exit
				close(w.pendingCh)
				w.pendingCh = nil
			}
			w.mu.Unlock()
			return
		}
		w.mu.Unlock()
		w.gather(e.opts.CommitGather)
		w.flush()
		if e.spilling.Load() || w.failed() != nil {
			continue
		}
		if !e.maint.Load() && w.size.Load() >= e.compactThreshold() {
			e.compact()
		} else if e.st.spillDue.Load() {
			e.st.spillDue.Store(false)
			e.startSpill()
		}
	}
}

// DefaultCommitGather is EmbeddedOptions.CommitGather's default: at full
// load waiting for as many frames as the last group commit carried halves
// the fsyncs and raises throughput ≈8 %, while a small closed loop, which
// reaches that count quickly, loses nothing (docs/BENCHMARKS.md).
const DefaultCommitGather = 300 * time.Microsecond

// gatherPoll is how often a gathering committer looks at the pending
// frames.
const gatherPoll = 50 * time.Microsecond

// compactRatio lets the WAL grow to this multiple of the last snapshot
// before the next compaction. A compaction costs time proportional to the
// whole state, so a fixed threshold would make a large state pay that cost
// again every CompactBytes of writes; scaling with the snapshot keeps the
// cost per WAL byte constant, and recovery still replays at most twice the
// state.
const compactRatio = 2

// compactThreshold is the WAL size that triggers the next compaction.
// Committer goroutine only.
func (e *Embedded) compactThreshold() int64 {
	return max(e.compactAt, compactRatio*e.snapBytes.Load())
}

// compact rotates the WAL and snapshots the state. It holds the engine's
// write lock only while draining pending frames, opening the new segment and
// freezing the state (a walk over the keys, sharing the values); the
// snapshot is encoded and streamed to its file by a separate goroutine, so
// commits continue meanwhile and no in-memory copy of the encoded state is
// ever built.
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
	fr := e.st.freeze(time.Now().UnixNano())
	coldUpTo := e.coldNext
	e.maint.Store(true)
	e.mu.Unlock()
	if err := old.Close(); err != nil {
		e.logf("engine: embedded: closing old WAL segment: %v", err)
	}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		defer e.maint.Store(false)
		n, err := writeSnapshot(e.dir, newSeq, fr)
		if err != nil {
			// Older snapshot + all segments remain, so recovery still works.
			e.logf("engine: embedded: snapshot %d failed: %v", newSeq, err)
			return
		}
		e.snapBytes.Store(n)
		w.snapshot.Add(1)
		removeOlder(e.dir, newSeq, e.logf)
		e.dropCold(fr, coldUpTo)
		e.collectColdStrings(fr)
	}()
}

// writeSnapshot streams fr to snap-<seq> (tmp, fsync, rename, fsync dir)
// and returns the file's size.
func writeSnapshot(dir string, seq uint64, fr *frozen) (int64, error) {
	return writeDurable(filepath.Join(dir, snapName(seq)), replaceViaTmp, func(w io.Writer) error {
		if _, err := io.WriteString(w, snapMagic); err != nil {
			return err
		}
		return fr.encode(w)
	})
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
func recoverState(dir string, st *state, logf func(string, ...any)) (seg uint64, size, snapSize int64, err error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, 0, 0, err
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
		path := filepath.Join(dir, snapName(base))
		if err := loadSnapshot(path, st); err != nil {
			return 0, 0, 0, err
		}
		if fi, err := os.Stat(path); err == nil {
			snapSize = fi.Size()
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
		off, total, err := replayFile(path, 0, func(p []byte) (bool, error) {
			_, err := st.applyPayload(p)
			return false, err
		})
		if err != nil {
			return 0, 0, 0, err
		}
		zeros := false
		if off < total {
			if zeros, err = zeroTail(path, off); err != nil {
				return 0, 0, 0, err
			}
		}
		if off < total && !zeros { // a zero tail is space filled ahead (see segment)
			if i != len(replay)-1 {
				return 0, 0, 0, fmt.Errorf("engine: embedded: %s: damaged record at offset %d in a non-final segment", path, off)
			}
			logf("engine: embedded: %s: dropping %d bytes of torn tail at offset %d", path, total-off, off)
			if err := truncateFile(path, off); err != nil {
				return 0, 0, 0, err
			}
		}
		seg, size = s, off
	}
	return seg, size, snapSize, nil
}

// replayFile reads the frames of path from offset start and hands each
// payload to apply until apply says stop, the file ends or a frame is torn.
// It streams (one frame in memory at a time, not the whole file) and
// returns the offset after the last good frame and the file's size.
func replayFile(path string, start int64, apply func(payload []byte) (stop bool, err error)) (off, total int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, 0, err
	}
	total = fi.Size()
	if _, err := f.Seek(start, io.SeekStart); err != nil {
		return 0, 0, err
	}
	r := bufio.NewReaderSize(f, 1<<20)
	var hdr [frameHeader]byte
	var buf []byte
	for off = start; off < total; {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return off, total, nil // short header: torn
		}
		n := binary.LittleEndian.Uint32(hdr[0:4])
		if n > maxFrame || int64(n) > total-off-frameHeader {
			return off, total, nil // a length past the end: torn
		}
		if cap(buf) < int(n) {
			buf = make([]byte, n)
		}
		p := buf[:n]
		if _, err := io.ReadFull(r, p); err != nil {
			return off, total, fmt.Errorf("engine: embedded: reading %s: %w", path, err)
		}
		if crc32.Checksum(p, crcTable) != binary.LittleEndian.Uint32(hdr[4:8]) {
			return off, total, nil
		}
		// apply copies what it keeps (dec.bytes, dec.str), so buf is reused.
		stop, err := apply(p)
		if err != nil {
			return off, total, fmt.Errorf("engine: embedded: %s at offset %d: %w", path, off, err)
		}
		off += frameHeader + int64(n)
		if stop {
			return off, total, nil
		}
	}
	return off, total, nil
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
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	magic := make([]byte, len(snapMagic))
	_, err = io.ReadFull(f, magic)
	f.Close()
	if err != nil || string(magic) != snapMagic {
		return fmt.Errorf("engine: embedded: %s: not a snapshot", path)
	}
	complete := false
	_, _, err = replayFile(path, int64(len(snapMagic)), func(p []byte) (bool, error) {
		end, err := st.applyPayload(p)
		complete = end
		return end, err
	})
	if err != nil {
		return err
	}
	if !complete {
		return fmt.Errorf("engine: embedded: %s: snapshot is incomplete", path)
	}
	return nil
}
