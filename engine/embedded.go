package engine

import (
	"context"
	"encoding/binary"
	"fmt"
	"log"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// EmbeddedOptions tunes the embedded engine. The zero value is the
// production setting: fsync on every group commit, 64 MiB compaction
// threshold, 1 s expiry sweep.
type EmbeddedOptions struct {
	// NoSync skips fsync. Writes still reach the OS before calls return, so
	// a process crash loses nothing, but a machine crash may. Tests and
	// benchmarks only.
	NoSync bool
	// CompactBytes is the WAL size that triggers a snapshot and a new
	// segment, or twice the last snapshot's size when that is larger.
	// Default 64 MiB.
	CompactBytes int64
	// SweepInterval is how often expired keys are purged from memory (reads
	// already ignore them). Default 1 s.
	SweepInterval time.Duration
	// LogMemoryBytes is how much record data one log (Append) keeps in
	// memory; beyond it the oldest records move to cold segment files and
	// are read back from disk. Default 2 MiB; negative: keep everything in
	// memory.
	LogMemoryBytes int64
	// StringSpillBytes is how many bytes of string values are written
	// between two scans that move strings nobody wrote or read since the
	// scan before to cold segment files (embedded_coldstr.go), so memory
	// holds about two such intervals of strings however long they are
	// kept. Default 4 MiB; negative: keep every string in memory.
	StringSpillBytes int64
	// CommitGather bounds how long the committer lets frames gather before
	// a write+fsync when the previous group commit carried more than one
	// frame (writers are concurrent, so a short wait batches more of them
	// into one fsync); it stops waiting as soon as as many frames as last
	// time are pending. A lone writer is never delayed. Default 300 µs;
	// negative: never wait.
	CommitGather time.Duration
	// Logf receives rare operational events (torn WAL tail dropped, snapshot
	// failure). Default log.Printf.
	Logf func(format string, args ...any)
}

// EmbeddedStats are counters for metrics and for checking that group commit
// batches writers (Frames/Syncs > 1 under concurrency).
type EmbeddedStats struct {
	Frames    uint64 // records appended to the WAL
	Batches   uint64 // WAL writes (one per group commit)
	Syncs     uint64 // fsyncs issued
	WALBytes  uint64 // bytes written to the WAL since open
	Snapshots uint64 // snapshots completed since open
	Spills    uint64 // moves of old log records or strings to cold segment files
	// ColdStrings counts string values (or appended tails) moved to disk.
	ColdStrings uint64
	// ColdRewrites counts mostly-dead cold string segments rewritten (their
	// live parts copied, the files deleted after the next snapshot).
	ColdRewrites uint64
	// ColdKeys is how many strings are held now as cold keys: on disk,
	// known in memory only by a hash of their key (embedded_coldkey.go).
	ColdKeys uint64
	// Commits counts WAL group commits (write + fsync) by duration:
	// Commits[i] those up to CommitBounds[i], the last those beyond.
	// CommitTime is their total duration.
	Commits    [len(CommitBounds) + 1]uint64
	CommitTime time.Duration
}

// Embedded is the single-process engine: state in memory (except the older
// records of logs, kept in cold segment files: embedded_cold.go), every
// mutation in a write-ahead log (group-committed) before the call returns,
// snapshots to bound the log. Open it with OpenEmbedded.
//
// Reads wait until the state they observed is durable, so a caller can never
// act on a write that a crash could still undo (e.g. answer "duplicate" for
// a ClaimAndEnqueue whose winner has not been fsynced yet). Without pending
// writes this costs one atomic load.
type Embedded struct {
	dir  string
	opts EmbeddedOptions
	logf func(string, ...any)

	mu  sync.RWMutex // guards st and lsn
	st  *state
	lsn uint64 // LSN of the last frame applied to st
	// pending maps keys to the LSN of their last write while it may not be
	// durable yet (guarded by mu).
	pending map[string]uint64
	// touched collects the keys of the frame being applied (guarded by mu;
	// touch is its method value, made once so applying allocates nothing).
	touched []string
	touch   func(key string)
	closed  atomic.Bool // set under mu so mutators see it consistently

	wal       *walWriter
	compactAt int64        // committer goroutine only
	snapBytes atomic.Int64 // size of the last snapshot written or loaded
	// maint is set while a compaction runs, spilling while a spill runs.
	// A spill may start during a compaction, never the other way round
	// (embedded_cold.go).
	maint        atomic.Bool
	spilling     atomic.Bool
	spills       atomic.Uint64
	coldStrings  atomic.Uint64
	coldRewrites atomic.Uint64
	spillAfter   atomic.Int64 // unix ns before which no spill starts (after a failure)
	// coldSegs are the cold log segment files in use (guarded by mu);
	// coldNext is the last segment number handed out (guarded by mu).
	coldSegs map[uint32]bool
	coldNext uint32
	// segMu lets a read of a cold string go on after e.mu is released (a
	// disk read must not hold up every writer): the reader takes segMu's
	// read side before releasing e.mu, and dropCold takes its write side
	// before deleting files.
	segMu sync.RWMutex
	// files keeps cold segment files open for reads (embedded_coldfiles.go).
	files *coldFiles

	hub     hub
	txLocks [64]sync.Mutex // Update serializes per hash-tag stripe
	stop    chan struct{}
	wg      sync.WaitGroup
	unlock  func()
}

var _ Engine = (*Embedded)(nil)

// OpenEmbedded opens (creating if needed) the engine stored in dir: it loads
// the newest snapshot, replays the WAL after it (dropping a torn final
// record) and starts the committer and expiry sweeper. dir is locked for the
// lifetime of the engine.
func OpenEmbedded(dir string, opts EmbeddedOptions) (*Embedded, error) {
	if opts.CompactBytes <= 0 {
		opts.CompactBytes = 64 << 20
	}
	if opts.SweepInterval <= 0 {
		opts.SweepInterval = time.Second
	}
	if opts.Logf == nil {
		opts.Logf = log.Printf
	}
	if opts.CommitGather == 0 {
		opts.CommitGather = DefaultCommitGather
	}
	if opts.LogMemoryBytes == 0 {
		opts.LogMemoryBytes = defaultLogMemory
	}
	if opts.StringSpillBytes == 0 {
		opts.StringSpillBytes = defaultStringSpill
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("engine: embedded: %w", err)
	}
	unlock, err := lockDir(filepath.Join(dir, "LOCK"))
	if err != nil {
		return nil, fmt.Errorf("engine: embedded: %s is in use: %w", dir, err)
	}
	st := newState()
	st.hotLimit = max(opts.LogMemoryBytes, 0)
	st.strSpillEvery = max(opts.StringSpillBytes, 0)
	seg, size, snapSize, err := recoverState(dir, st, opts.Logf)
	if err != nil {
		unlock()
		return nil, err
	}
	f, err := createSegment(dir, seg, !opts.NoSync)
	if err != nil {
		unlock()
		return nil, fmt.Errorf("engine: embedded: %w", err)
	}
	e := &Embedded{
		dir:       dir,
		opts:      opts,
		logf:      opts.Logf,
		st:        st,
		wal:       newWALWriter(f, seg, size, opts.NoSync),
		compactAt: opts.CompactBytes,
		stop:      make(chan struct{}),
		unlock:    unlock,
		files:     newColdFiles(dir),
	}
	e.touch = func(k string) { e.touched = append(e.touched, k) }
	e.snapBytes.Store(snapSize)
	e.coldSegs = map[uint32]bool{}
	if err := e.openCold(); err != nil {
		f.Close()
		unlock()
		return nil, err
	}
	e.hub.init()
	e.wg.Add(2)
	go e.committer()
	go e.sweeper()
	return e, nil
}

// Name returns "embedded".
func (e *Embedded) Name() string { return "embedded" }

// Ping fails once the engine is closed or the WAL cannot be written.
func (e *Embedded) Ping(ctx context.Context) error { return e.begin(ctx) }

// Stats returns WAL counters.
func (e *Embedded) Stats() EmbeddedStats {
	w := e.wal
	e.mu.RLock()
	coldKeys := len(e.st.coldKeys)
	e.mu.RUnlock()
	st := EmbeddedStats{
		ColdKeys:     uint64(coldKeys),
		Frames:       w.frames.Load(),
		Batches:      w.batches.Load(),
		Syncs:        w.syncs.Load(),
		WALBytes:     w.written.Load(),
		Snapshots:    w.snapshot.Load(),
		Spills:       e.spills.Load(),
		ColdStrings:  e.coldStrings.Load(),
		ColdRewrites: e.coldRewrites.Load(),
		CommitTime:   time.Duration(w.commitNanos.Load()),
	}
	for i := range st.Commits {
		st.Commits[i] = w.commits[i].Load()
	}
	return st
}

// Close flushes pending writes, stops background work, closes subscriber
// channels and releases the directory. Calls after Close return ErrClosed.
func (e *Embedded) Close() error {
	e.mu.Lock()
	if e.closed.Load() {
		e.mu.Unlock()
		return nil
	}
	e.closed.Store(true)
	e.mu.Unlock()
	close(e.stop)
	e.hub.closeAll()
	w := e.wal
	w.mu.Lock()
	w.closing = true
	w.work.Broadcast()
	w.mu.Unlock()
	e.wg.Wait()
	err := w.f.Close()
	e.segMu.Lock() // cold reads that began before Close end first
	e.files.closeAll()
	e.segMu.Unlock()
	e.unlock()
	if werr := w.failed(); werr != nil {
		return werr
	}
	return err
}

func (e *Embedded) begin(ctx context.Context) error {
	if e.closed.Load() {
		return ErrClosed
	}
	if err := e.wal.failed(); err != nil {
		return err
	}
	return ctx.Err()
}

// mutate runs fn under the write lock. fn inspects state and returns the
// frame describing its change (nil: no change). The frame is applied to
// memory and queued for the WAL before the lock is released (so WAL order is
// apply order); the call then waits for the group commit covering it. A
// call that changed nothing waits like a read of every key (nil keys).
func (e *Embedded) mutate(ctx context.Context, fn func(now int64) (*enc, error)) error {
	return e.mutateKeys(ctx, nil, fn)
}

// mutateKeys is mutate for a call that only looks at keys: when it changes
// nothing, it waits only for pending writes to those keys.
func (e *Embedded) mutateKeys(ctx context.Context, keys []string, fn func(now int64) (*enc, error)) error {
	if err := e.begin(ctx); err != nil {
		return err
	}
	e.mu.Lock()
	if e.closed.Load() {
		e.mu.Unlock()
		return ErrClosed
	}
	f, err := fn(time.Now().UnixNano())
	var lsn uint64
	if err == nil && f != nil && !f.empty() {
		frame := f.finish()
		e.touched = e.touched[:0]
		if _, aerr := e.st.applyPayloadKeys(f.payload(), e.touch); aerr != nil {
			e.mu.Unlock()
			panic(fmt.Sprintf("engine: embedded: invalid frame built by a live call: %v", aerr))
		}
		e.lsn = e.wal.enqueue(frame)
		lsn = e.lsn
		e.markPending(e.touched, lsn)
	} else {
		lsn = e.pendingLSN(keys)
	}
	e.mu.Unlock()
	freeFrame(f) // the WAL buffer and the state hold copies
	if werr := e.wal.wait(lsn); werr != nil {
		return werr
	}
	return err
}

// readKeys runs fn, which looks only at keys, under the read lock, then
// waits until the writes to those keys it could have observed are durable.
// Reads of keys with no write in flight return at once instead of waiting
// for the next group commit — on the answer path most reads are such.
func (e *Embedded) readKeys(ctx context.Context, keys []string, fn func(now int64) error) error {
	if err := e.begin(ctx); err != nil {
		return err
	}
	e.mu.RLock()
	err := fn(time.Now().UnixNano())
	lsn := e.pendingLSN(keys)
	e.mu.RUnlock()
	if werr := e.wal.wait(lsn); werr != nil {
		return werr
	}
	return err
}

// markPending records that keys were changed by the frame at lsn. Called
// with the write lock held; entries already durable are pruned as the map
// grows, so it holds roughly the keys of the frames in flight.
func (e *Embedded) markPending(keys []string, lsn uint64) {
	if e.pending == nil {
		e.pending = map[string]uint64{}
	}
	if len(e.pending) > 4096 {
		durable := e.wal.durable.Load()
		for k, l := range e.pending {
			if l <= durable {
				delete(e.pending, k)
			}
		}
	}
	for _, k := range keys {
		e.pending[k] = lsn
	}
}

// pendingLSN is the LSN a call that looked at keys must wait for: the last
// write to any of them (0 when none is in flight), or every write so far
// when keys is nil. Called with the lock held (read or write).
func (e *Embedded) pendingLSN(keys []string) uint64 {
	if keys == nil {
		return e.lsn
	}
	var max uint64
	for _, k := range keys {
		if l := e.pending[k]; l > max {
			max = l
		}
	}
	return max
}

func expireAt(now int64, ttl time.Duration) int64 {
	if ttl <= 0 {
		return 0
	}
	return now + int64(ttl)
}

func clone(b []byte) []byte { return append(make([]byte, 0, len(b)), b...) }

func (e *Embedded) str(key string, now int64) (*entry, error) {
	ent := e.st.live(key, now)
	if ent == nil {
		return nil, ErrNotFound
	}
	if ent.kind != kindString {
		return nil, fmt.Errorf("%w: %q is not a string", ErrWrongType, key)
	}
	return ent, nil
}

func setOp(f *enc, key string, val []byte, exp int64) {
	f.op(opSet)
	f.str(key)
	f.bytes(val)
	f.sv(exp)
}

// Get returns key's value or ErrNotFound. A cold value is read from disk
// after the engine lock is released.
func (e *Embedded) Get(ctx context.Context, key string) ([]byte, error) {
	var out []byte
	var later coldRead
	err := e.readKeys(ctx, []string{key}, func(now int64) error {
		ent, err := e.str(key, now)
		if err == nil {
			out = e.strValueLater(ent, &later)
		}
		return err
	})
	if later.cold != nil {
		v, rerr := later.read(e)
		if err == nil {
			out, err = v, rerr
		}
	}
	return out, err
}

// Set stores val (any previous value of any type is replaced) with ttl.
func (e *Embedded) Set(ctx context.Context, key string, val []byte, ttl time.Duration) error {
	return e.mutate(ctx, func(now int64) (*enc, error) {
		f := newFrame(len(key) + len(val) + 16)
		setOp(f, key, val, expireAt(now, ttl))
		return f, nil
	})
}

// SetNX sets key only if absent.
func (e *Embedded) SetNX(ctx context.Context, key string, val []byte, ttl time.Duration) (bool, error) {
	var ok bool
	err := e.mutateKeys(ctx, []string{key}, func(now int64) (*enc, error) {
		if e.st.live(key, now) != nil {
			return nil, nil
		}
		ok = true
		f := newFrame(len(key) + len(val) + 16)
		setOp(f, key, val, expireAt(now, ttl))
		return f, nil
	})
	return ok && err == nil, err
}

// StrAppend appends data to the string at key.
func (e *Embedded) StrAppend(ctx context.Context, key string, data []byte, ttl time.Duration) (int64, error) {
	var n int64
	err := e.mutate(ctx, func(now int64) (*enc, error) {
		ent := e.st.live(key, now)
		if ent != nil && ent.kind != kindString {
			return nil, fmt.Errorf("%w: %q is not a string", ErrWrongType, key)
		}
		fresh := byte(1)
		n = int64(len(data))
		if ent != nil {
			fresh, n = 0, n+ent.strLen()
		}
		f := newFrame(len(key) + len(data) + 16)
		f.op(opSApp)
		f.str(key)
		f.bytes(data)
		f.sv(expireAt(now, ttl))
		f.op(fresh)
		return f, nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// SetMany applies writes in one frame.
func (e *Embedded) SetMany(ctx context.Context, writes ...Write) error {
	if len(writes) == 0 {
		return e.begin(ctx)
	}
	return e.mutate(ctx, func(now int64) (*enc, error) {
		size := 0
		for _, w := range writes {
			size += len(w.Key) + len(w.Val) + 16
		}
		f := newFrame(size)
		for _, w := range writes {
			if !w.Del {
				setOp(f, w.Key, w.Val, expireAt(now, w.TTL))
			} else if e.st.has(w.Key) {
				f.op(opDel)
				f.str(w.Key)
			}
		}
		return f, nil
	})
}

// Del removes keys of any type; absent keys are ignored.
func (e *Embedded) Del(ctx context.Context, keys ...string) error {
	return e.mutate(ctx, func(now int64) (*enc, error) {
		f := newFrame(64)
		for _, k := range keys {
			if e.st.has(k) {
				f.op(opDel)
				f.str(k)
			}
		}
		return f, nil
	})
}

// CompareAndSwap replaces key's value if it equals old (old == nil: key
// must be absent; a non-nil empty old matches an empty value).
func (e *Embedded) CompareAndSwap(ctx context.Context, key string, old, val []byte, ttl time.Duration) (bool, error) {
	var ok bool
	pre := e.preReadCold(key, old)
	err := e.mutateKeys(ctx, []string{key}, func(now int64) (*enc, error) {
		ent := e.st.live(key, now)
		if old == nil {
			if ent != nil {
				return nil, nil
			}
		} else {
			if ent == nil {
				return nil, nil
			}
			if ent.kind != kindString {
				return nil, fmt.Errorf("%w: %q is not a string", ErrWrongType, key)
			}
			if eq, err := pre.equal(e, ent, old); err != nil || !eq {
				return nil, err
			}
		}
		ok = true
		f := newFrame(len(key) + len(val) + 16)
		setOp(f, key, val, expireAt(now, ttl))
		return f, nil
	})
	return ok && err == nil, err
}

// CompareAndDelete deletes key if its value equals old (nil matches "").
func (e *Embedded) CompareAndDelete(ctx context.Context, key string, old []byte) (bool, error) {
	var ok bool
	pre := e.preReadCold(key, old)
	err := e.mutateKeys(ctx, []string{key}, func(now int64) (*enc, error) {
		ent := e.st.live(key, now)
		if ent == nil {
			return nil, nil
		}
		if ent.kind != kindString {
			return nil, fmt.Errorf("%w: %q is not a string", ErrWrongType, key)
		}
		if eq, err := pre.equal(e, ent, old); err != nil || !eq {
			return nil, err
		}
		ok = true
		f := newFrame(len(key) + 4)
		f.op(opDel)
		f.str(key)
		return f, nil
	})
	return ok && err == nil, err
}

func addInt(cur, delta int64) (int64, error) {
	n := cur + delta
	if (delta > 0 && n < cur) || (delta < 0 && n > cur) {
		return 0, fmt.Errorf("%w: increment would overflow", ErrWrongType)
	}
	return n, nil
}

// IncrBy adds delta to the decimal integer at key (stored as text, like
// Redis); ttl applies only when this call creates the key.
func (e *Embedded) IncrBy(ctx context.Context, key string, delta int64, ttl time.Duration) (int64, error) {
	var n int64
	err := e.mutate(ctx, func(now int64) (*enc, error) {
		var cur, exp int64
		if ent := e.st.live(key, now); ent != nil {
			if ent.kind != kindString {
				return nil, fmt.Errorf("%w: %q is not a string", ErrWrongType, key)
			}
			raw, err := e.strValue(ent)
			if err != nil {
				return nil, err
			}
			v, err := strconv.ParseInt(string(raw), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%w: %q is not an integer", ErrWrongType, key)
			}
			cur, exp = v, ent.expireAt
		} else {
			exp = expireAt(now, ttl)
		}
		v, err := addInt(cur, delta)
		if err != nil {
			return nil, err
		}
		n = v
		f := newFrame(len(key) + 32)
		setOp(f, key, strconv.AppendInt(nil, v, 10), exp)
		return f, nil
	})
	return n, err
}

// TTL returns the remaining time to live (0: none) or ErrNotFound.
func (e *Embedded) TTL(ctx context.Context, key string) (time.Duration, error) {
	var d time.Duration
	err := e.readKeys(ctx, []string{key}, func(now int64) error {
		ent := e.st.live(key, now)
		if ent == nil {
			return ErrNotFound
		}
		if ent.expireAt != 0 {
			d = time.Duration(ent.expireAt - now)
		}
		return nil
	})
	return d, err
}

func (e *Embedded) hash(key string, now int64) (*entry, error) {
	ent := e.st.live(key, now)
	if ent != nil && ent.kind != kindHash {
		return nil, fmt.Errorf("%w: %q is not a hash", ErrWrongType, key)
	}
	return ent, nil
}

// HSet sets fields of the hash at key.
func (e *Embedded) HSet(ctx context.Context, key string, fields map[string][]byte) error {
	if len(fields) == 0 {
		return e.begin(ctx)
	}
	// Sized up front: the report's flush sets ~10 000 fields at once, and
	// growing the frame by doubling allocated twice its size. Built before
	// the write lock is taken, as it depends on the arguments only. (A
	// mutex profile at 3 000 msg/s charges 13–17 % of the lock waits to
	// the report's HSet; with the encoding moved out it was 14 % and 2 % in
	// two runs: applying the fields, which must stay under the lock, is
	// most of the hold.)
	size := 2*binary.MaxVarintLen64 + len(key)
	for k, v := range fields {
		size += 2*binary.MaxVarintLen64 + len(k) + len(v)
	}
	f := newFrame(size)
	f.op(opHSet)
	f.str(key)
	f.uv(uint64(len(fields)))
	for k, v := range fields {
		f.str(k)
		f.bytes(v)
	}
	return e.mutate(ctx, func(now int64) (*enc, error) {
		if _, err := e.hash(key, now); err != nil {
			freeFrame(f)
			return nil, err
		}
		return f, nil
	})
}

// HGet returns one field; ErrNotFound if the key or field is absent.
func (e *Embedded) HGet(ctx context.Context, key, field string) ([]byte, error) {
	var out []byte
	err := e.readKeys(ctx, []string{key}, func(now int64) error {
		ent, err := e.hash(key, now)
		if err != nil {
			return err
		}
		if ent == nil {
			return ErrNotFound
		}
		v, ok := ent.hash[field]
		if !ok {
			return ErrNotFound
		}
		out = clone(v)
		return nil
	})
	return out, err
}

// HGetAll returns all fields; ErrNotFound if the hash is absent (an empty
// hash does not exist, as in Redis).
func (e *Embedded) HGetAll(ctx context.Context, key string) (map[string][]byte, error) {
	var out map[string][]byte
	err := e.readKeys(ctx, []string{key}, func(now int64) error {
		ent, err := e.hash(key, now)
		if err != nil {
			return err
		}
		if ent == nil {
			return ErrNotFound
		}
		out = make(map[string][]byte, len(ent.hash))
		for k, v := range ent.hash {
			out[k] = clone(v)
		}
		return nil
	})
	return out, err
}

// HDel removes fields; the hash disappears with its last field.
func (e *Embedded) HDel(ctx context.Context, key string, fields ...string) error {
	return e.mutate(ctx, func(now int64) (*enc, error) {
		ent, err := e.hash(key, now)
		if err != nil || ent == nil {
			return nil, err
		}
		var present []string
		for _, fl := range fields {
			if _, ok := ent.hash[fl]; ok {
				present = append(present, fl)
			}
		}
		if len(present) == 0 {
			return nil, nil
		}
		f := newFrame(64)
		f.op(opHDel)
		f.str(key)
		f.uv(uint64(len(present)))
		for _, fl := range present {
			f.str(fl)
		}
		return f, nil
	})
}

// HIncrBy adds delta to the integer in field (absent = 0).
func (e *Embedded) HIncrBy(ctx context.Context, key, field string, delta int64) (int64, error) {
	var n int64
	err := e.mutate(ctx, func(now int64) (*enc, error) {
		ent, err := e.hash(key, now)
		if err != nil {
			return nil, err
		}
		var cur int64
		if ent != nil {
			if v, ok := ent.hash[field]; ok {
				cur, err = strconv.ParseInt(string(v), 10, 64)
				if err != nil {
					return nil, fmt.Errorf("%w: field %q of %q is not an integer", ErrWrongType, field, key)
				}
			}
		}
		if n, err = addInt(cur, delta); err != nil {
			return nil, err
		}
		f := newFrame(64)
		f.op(opHSet)
		f.str(key)
		f.uv(1)
		f.str(field)
		f.bytes(strconv.AppendInt(nil, n, 10))
		return f, nil
	})
	return n, err
}

func (e *Embedded) zset(key string, now int64) (*entry, error) {
	ent := e.st.live(key, now)
	if ent != nil && ent.kind != kindZSet {
		return nil, fmt.Errorf("%w: %q is not a sorted set", ErrWrongType, key)
	}
	return ent, nil
}

var errNaNScore = fmt.Errorf("%w: score is NaN", ErrWrongType)

// ZAdd adds members or updates their scores.
func (e *Embedded) ZAdd(ctx context.Context, key string, items ...ZItem) error {
	for _, it := range items {
		if math.IsNaN(it.Score) {
			return errNaNScore
		}
	}
	if len(items) == 0 {
		return e.begin(ctx)
	}
	return e.mutate(ctx, func(now int64) (*enc, error) {
		if _, err := e.zset(key, now); err != nil {
			return nil, err
		}
		f := newFrame(64)
		f.op(opZAdd)
		f.str(key)
		f.uv(uint64(len(items)))
		for _, it := range items {
			f.str(it.Member)
			f.f64(it.Score)
		}
		return f, nil
	})
}

// ZRem removes members and returns how many were present.
func (e *Embedded) ZRem(ctx context.Context, key string, members ...string) (int, error) {
	var n int
	err := e.mutate(ctx, func(now int64) (*enc, error) {
		ent, err := e.zset(key, now)
		if err != nil || ent == nil {
			return nil, err
		}
		seen := map[string]bool{}
		var present []string
		for _, m := range members {
			if _, ok := ent.zset.scores[m]; ok && !seen[m] {
				seen[m] = true
				present = append(present, m)
			}
		}
		n = len(present)
		if n == 0 {
			return nil, nil
		}
		f := newFrame(64)
		f.op(opZRem)
		f.str(key)
		f.uv(uint64(n))
		for _, m := range present {
			f.str(m)
		}
		return f, nil
	})
	return n, err
}

// ZRangeByScore returns members with min <= score <= max ordered by score,
// then member; at most limit (0 = all).
func (e *Embedded) ZRangeByScore(ctx context.Context, key string, min, max float64, limit int) ([]ZItem, error) {
	var out []ZItem
	err := e.readKeys(ctx, []string{key}, func(now int64) error {
		ent, err := e.zset(key, now)
		if err != nil || ent == nil {
			return err
		}
		for n := ent.zset.order.seekGE(zkey{min, ""}); n != nil && n.key.score <= max; n = n.next[0] {
			if limit > 0 && len(out) >= limit {
				break
			}
			out = append(out, ZItem{Member: n.key.member, Score: n.key.score})
		}
		return nil
	})
	return out, err
}

// ZScore returns member's score or ErrNotFound.
func (e *Embedded) ZScore(ctx context.Context, key, member string) (float64, error) {
	var sc float64
	err := e.readKeys(ctx, []string{key}, func(now int64) error {
		ent, err := e.zset(key, now)
		if err != nil {
			return err
		}
		if ent == nil {
			return ErrNotFound
		}
		v, ok := ent.zset.scores[member]
		if !ok {
			return ErrNotFound
		}
		sc = v
		return nil
	})
	return sc, err
}

// ZCard counts members (0 when absent).
func (e *Embedded) ZCard(ctx context.Context, key string) (int64, error) {
	var n int64
	err := e.readKeys(ctx, []string{key}, func(now int64) error {
		ent, err := e.zset(key, now)
		if ent != nil {
			n = int64(len(ent.zset.scores))
		}
		return err
	})
	return n, err
}

func qputOp(f *enc, queue string, job Job) {
	f.op(opQPut)
	f.str(queue)
	f.str(job.ID)
	f.bytes(job.Data)
	f.sv(job.Due.UnixMilli())
}

// Enqueue adds or replaces a job (Due has millisecond precision). Replacing
// keeps the job's Attempts so retry counts survive re-scheduling.
func (e *Embedded) Enqueue(ctx context.Context, queue string, job Job) error {
	if job.ID == "" {
		return errEmptyJobID
	}
	return e.mutate(ctx, func(now int64) (*enc, error) {
		f := newFrame(len(queue) + len(job.ID) + len(job.Data) + 16)
		qputOp(f, queue, job)
		return f, nil
	})
}

// Claim leases up to max due jobs until now+lease.
func (e *Embedded) Claim(ctx context.Context, queue string, now time.Time, lease time.Duration, max int) ([]Job, error) {
	if max <= 0 {
		return nil, e.begin(ctx)
	}
	nowMs := now.UnixMilli()
	due := now.Add(lease).UnixMilli()
	var out []Job
	err := e.mutateKeys(ctx, []string{queue}, func(int64) (*enc, error) {
		out = out[:0]
		q := e.st.queues[queue]
		if q == nil {
			return nil, nil
		}
		for n := q.due.first(); n != nil && n.key.due <= nowMs && len(out) < max; n = n.next[0] {
			j := q.jobs[n.key.id]
			out = append(out, Job{ID: n.key.id, Data: clone(j.data), Due: time.UnixMilli(due), Attempts: j.attempts + 1})
		}
		if len(out) == 0 {
			return nil, nil
		}
		f := newFrame(64)
		f.op(opQClaim)
		f.str(queue)
		f.sv(due)
		f.uv(uint64(len(out)))
		for _, j := range out {
			f.str(j.ID)
			f.uv(uint64(j.Attempts))
		}
		return f, nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Ack removes a job; absent jobs are ignored.
func (e *Embedded) Ack(ctx context.Context, queue, id string) error {
	return e.mutate(ctx, func(int64) (*enc, error) {
		q := e.st.queues[queue]
		if q == nil || q.jobs[id] == nil {
			return nil, nil
		}
		return jobDelFrame(queue, id), nil
	})
}

// jobDelFrame logs the removal of a queued job.
func jobDelFrame(queue, id string) *enc {
	f := newFrame(len(queue) + len(id) + 4)
	f.op(opQDel)
	f.str(queue)
	f.str(id)
	return f
}

// AckClaimed implements Engine.
func (e *Embedded) AckClaimed(ctx context.Context, queue string, job Job) (bool, error) {
	acked := false
	err := e.mutate(ctx, func(int64) (*enc, error) {
		acked = false
		q := e.st.queues[queue]
		if q == nil || q.jobs[job.ID] == nil || q.jobs[job.ID].due != job.Due.UnixMilli() {
			return nil, nil
		}
		acked = true
		return jobDelFrame(queue, job.ID), nil
	})
	return acked && err == nil, err
}

// QueueLen counts jobs, due or not.
func (e *Embedded) QueueLen(ctx context.Context, queue string) (int64, error) {
	var n int64
	err := e.readKeys(ctx, []string{queue}, func(int64) error {
		if q := e.st.queues[queue]; q != nil {
			n = int64(len(q.jobs))
		}
		return nil
	})
	return n, err
}

// QueueOldest returns the earliest Due, or the zero time when empty.
func (e *Embedded) QueueOldest(ctx context.Context, queue string) (time.Time, error) {
	var t time.Time
	err := e.readKeys(ctx, []string{queue}, func(int64) error {
		if q := e.st.queues[queue]; q != nil {
			if n := q.due.first(); n != nil {
				t = time.UnixMilli(n.key.due)
			}
		}
		return nil
	})
	return t, err
}

// ClaimAndEnqueue sets claimKey and enqueues job in one WAL frame, unless
// claimKey exists. claimKey and queue must share a hash tag (checked here
// too, so code that passes on the embedded engine also runs on Cluster).
func (e *Embedded) ClaimAndEnqueue(ctx context.Context, claimKey string, claimVal []byte, ttl time.Duration, queue string, job Job) (bool, []byte, error) {
	if job.ID == "" {
		return false, nil, errEmptyJobID
	}
	if err := checkSameSlot(claimKey, queueBase("", queue)); err != nil {
		return false, nil, err
	}
	var claimed bool
	var cur []byte
	var later coldRead // a cold claim (a late retry) is read after the lock
	err := e.mutateKeys(ctx, []string{claimKey, queue}, func(now int64) (*enc, error) {
		if ent := e.st.live(claimKey, now); ent != nil {
			if ent.kind != kindString {
				return nil, fmt.Errorf("%w: %q is not a string", ErrWrongType, claimKey)
			}
			cur = e.strValueLater(ent, &later)
			return nil, nil
		}
		claimed = true
		f := newFrame(len(claimKey) + len(claimVal) + len(queue) + len(job.ID) + len(job.Data) + 32)
		setOp(f, claimKey, claimVal, expireAt(now, ttl))
		qputOp(f, queue, job)
		return f, nil
	})
	if later.cold != nil {
		v, rerr := later.read(e)
		if err == nil {
			cur, err = v, rerr
		}
	}
	if err != nil {
		return false, nil, err
	}
	return claimed, cur, nil
}

func (e *Embedded) logEntry(key string, now int64) (*entry, error) {
	ent := e.st.live(key, now)
	if ent != nil && ent.kind != kindLog {
		return nil, fmt.Errorf("%w: %q is not a log", ErrWrongType, key)
	}
	return ent, nil
}

// Append adds a record with a new "<unixms>-<seq>" ID, greater than every
// ID the log has issued (even after trims), and returns it.
func (e *Embedded) Append(ctx context.Context, log string, data []byte) (string, error) {
	ids, err := e.AppendMany(ctx, log, data)
	if err != nil {
		return "", err
	}
	return ids[0], nil
}

// AppendMany adds records in order in one frame; their IDs share the
// millisecond and count up the sequence.
func (e *Embedded) AppendMany(ctx context.Context, log string, data ...[]byte) ([]string, error) {
	if len(data) == 0 {
		return nil, nil
	}
	ids := make([]string, len(data))
	err := e.mutate(ctx, func(now int64) (*enc, error) {
		ent, err := e.logEntry(log, now)
		if err != nil {
			return nil, err
		}
		ms, seq := uint64(now/int64(time.Millisecond)), uint64(0)
		if ent != nil && ms <= ent.log.lastMs {
			ms, seq = ent.log.lastMs, ent.log.lastSeq+1
		}
		size := 0
		for _, d := range data {
			size += len(log) + len(d) + 24
		}
		f := newFrame(size)
		for i, d := range data {
			ids[i] = formatID(ms, seq)
			f.op(opXAdd)
			f.str(log)
			f.uv(ms)
			f.uv(seq)
			f.bytes(d)
			seq++
		}
		return f, nil
	})
	if err != nil {
		return nil, err
	}
	return ids, nil
}

// ReadLog returns up to count (<= 0: all) records with ID > afterID.
func (e *Embedded) ReadLog(ctx context.Context, log, afterID string, count int) ([]Record, error) {
	var out []Record
	err := e.scanLog(ctx, log, afterID, count, func(n int) {
		// Sized up front: a reader paging through a long log otherwise
		// grows the slice by doubling, which was a third of what it
		// allocated.
		out = make([]Record, 0, n)
	}, func(n int) []byte {
		return make([]byte, n) // records borrow from it: no copy each
	}, func(ms, seq uint64, data []byte, owned bool) {
		if !owned {
			data = clone(data)
		}
		out = append(out, Record{ID: formatID(ms, seq), Data: data})
	})
	return out, err
}

// ReadLogPage is ReadLog into p, whose memory is reused from one call to
// the next: a reader paging through a long log (the report's fold) then
// allocates nothing per record. Cold data is read through one scratch
// buffer and copied into p.
func (e *Embedded) ReadLogPage(ctx context.Context, log, afterID string, count int, p *LogPage) error {
	p.reset()
	return e.scanLog(ctx, log, afterID, count, func(n int) { p.grow(n) }, func(n int) []byte {
		if cap(p.scratch) < n {
			p.scratch = make([]byte, n)
		}
		return p.scratch[:n]
	}, func(ms, seq uint64, data []byte, _ bool) { p.add(ms, seq, data) })
}

// scanLog hands emit up to count (<= 0: all) records of log with ID >
// afterID, in order, under the read lock. sized is told how many records
// at most will come (when count > 0); cold data is read into buffers from
// buf. emit's data is owned when it lies in such a buffer, and borrowed
// from the engine's state (copy it to keep it) otherwise.
func (e *Embedded) scanLog(ctx context.Context, log, afterID string, count int, sized func(n int), buf func(n int) []byte, emit func(ms, seq uint64, data []byte, owned bool)) error {
	var am, as uint64
	if afterID != "" {
		var ok bool
		if am, as, ok = parseID(afterID); !ok {
			return fmt.Errorf("engine: invalid log ID %q", afterID)
		}
	}
	return e.readKeys(ctx, []string{log}, func(now int64) error {
		ent, err := e.logEntry(log, now)
		if err != nil || ent == nil {
			return err
		}
		l := ent.log
		ci, bi, i := 0, 0, 0
		if afterID != "" {
			ci = searchAfterCold(l.cold, am, as)
			bi = sort.Search(len(l.blocks), func(k int) bool { return idAfter(l.blocks[k].lastMs, l.blocks[k].lastSeq, am, as) })
			i = searchAfter(l.recs, am, as)
		}
		left := count // records still wanted (count > 0)
		if count > 0 {
			n := len(l.cold) - ci + len(l.recs) - i
			for _, b := range l.blocks[bi:] {
				n += int(b.count)
			}
			sized(min(count, n))
		}
		if ci < len(l.cold) {
			end := len(l.cold)
			if count > 0 {
				end = min(end, ci+count)
				left -= end - ci
			}
			if err := e.readCold(l.cold[ci:end], buf, emit); err != nil {
				return err
			}
		}
		for ; bi < len(l.blocks) && (count <= 0 || left > 0); bi++ {
			n, err := e.readBlock(&l.blocks[bi], am, as, afterID == "", left, buf, emit)
			if err != nil {
				return err
			}
			left -= n
		}
		for ; i < len(l.recs) && (count <= 0 || left > 0); i++ {
			r := l.recs[i]
			emit(r.ms, r.seq, r.data, false)
			left--
		}
		return nil
	})
}

// searchAfter returns the index of the first record with ID > (ms, seq).
func searchAfter(recs []logRec, ms, seq uint64) int {
	return sort.Search(len(recs), func(i int) bool { return idAfter(recs[i].ms, recs[i].seq, ms, seq) })
}

// searchAfterCold is searchAfter for cold records.
func searchAfterCold(recs []coldRec, ms, seq uint64) int {
	return sort.Search(len(recs), func(i int) bool { return idAfter(recs[i].ms, recs[i].seq, ms, seq) })
}

// idAfter reports whether record ID (ms, seq) comes after (ams, aseq).
func idAfter(ms, seq, ams, aseq uint64) bool { return ms > ams || (ms == ams && seq > aseq) }

// LogLen counts records (0 when absent).
func (e *Embedded) LogLen(ctx context.Context, log string) (int64, error) {
	var n int64
	err := e.readKeys(ctx, []string{log}, func(now int64) error {
		ent, err := e.logEntry(log, now)
		if ent != nil {
			n = int64(ent.log.len())
		}
		return err
	})
	return n, err
}

// TrimLog drops records whose ID time is before before.
func (e *Embedded) TrimLog(ctx context.Context, log string, before time.Time) error {
	minMs := before.UnixMilli()
	return e.mutate(ctx, func(now int64) (*enc, error) {
		ent, err := e.logEntry(log, now)
		if err != nil || ent == nil || minMs <= 0 {
			return nil, err
		}
		if first, ok := ent.log.firstMs(); !ok || first >= uint64(minMs) {
			return nil, nil
		}
		f := newFrame(len(log) + 12)
		f.op(opXTrim)
		f.str(log)
		f.uv(uint64(minMs))
		return f, nil
	})
}

// sweeper purges expired keys so memory does not grow with dead sessions.
// Expiry needs no WAL record: expiry times are absolute, so replay drops
// the same keys.
func (e *Embedded) sweeper() {
	defer e.wg.Done()
	t := time.NewTicker(e.opts.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-t.C:
			e.sweep()
			e.sweepColdKeys()
		}
	}
}

// sweepBatch is how many entries one locked sweep step looks at.
const sweepBatch = 1000

// sweepBatches runs batch with the write lock held, releasing it in
// between, and keeps going while a batch was full and at least a quarter
// of it expired, like Redis's active expiry (map iteration starts at a
// random place, so each batch is a sample).
func (e *Embedded) sweepBatches(batch func(now int64) (checked, removed int)) {
	for round := 0; round < 64; round++ {
		e.mu.Lock()
		checked, removed := batch(time.Now().UnixNano())
		e.mu.Unlock()
		if checked < sweepBatch || removed*4 < checked {
			return
		}
	}
}

// sweep drops expired keys with a TTL.
func (e *Embedded) sweep() {
	e.sweepBatches(func(now int64) (checked, removed int) {
		for k := range e.st.expiring {
			checked++
			ent := e.st.keys[k]
			switch {
			case ent == nil || ent.expireAt == 0:
				delete(e.st.expiring, k)
			case ent.expireAt <= now:
				e.st.del(k)
				removed++
			}
			if checked >= sweepBatch {
				break
			}
		}
		return checked, removed
	})
}
