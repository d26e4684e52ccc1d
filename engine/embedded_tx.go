package engine

import (
	"context"
	"fmt"
	"hash/fnv"
	"time"
)

// maxTxAttempts bounds optimistic retries in Update for both engines.
const maxTxAttempts = 100

// txWrite is one buffered write of an Update attempt.
type txWrite struct {
	del bool
	val []byte
	ttl time.Duration
}

// txBuffer implements Tx for both engines: it serves reads from a per-attempt
// cache (loaded through load) overlaid with the attempt's own writes, and
// restricts access to the declared keys, because on Redis only those are
// WATCHed and guaranteed to share a slot.
type txBuffer struct {
	declared map[string]bool
	load     func(key string) ([]byte, error) // returns ErrNotFound when absent
	reads    map[string]txRead
	writes   map[string]txWrite
	order    []string // keys in first-write order, for deterministic output
	err      error    // first misuse or backend error; fails the Update
}

type txRead struct {
	val []byte
	err error
}

func newTxBuffer(keys []string, load func(string) ([]byte, error)) *txBuffer {
	d := make(map[string]bool, len(keys))
	for _, k := range keys {
		d[k] = true
	}
	return &txBuffer{declared: d, load: load, reads: map[string]txRead{}, writes: map[string]txWrite{}}
}

func (t *txBuffer) check(key string) error {
	if t.declared[key] {
		return nil
	}
	err := fmt.Errorf("engine: Update: key %q was not declared in keys", key)
	if t.err == nil {
		t.err = err
	}
	return err
}

// Get reads key as of the attempt's start plus the attempt's own writes.
func (t *txBuffer) Get(key string) ([]byte, error) {
	if err := t.check(key); err != nil {
		return nil, err
	}
	if w, ok := t.writes[key]; ok {
		if w.del {
			return nil, ErrNotFound
		}
		return clone(w.val), nil
	}
	r, ok := t.reads[key]
	if !ok {
		v, err := t.load(key)
		if err != nil && err != ErrNotFound && t.err == nil {
			t.err = err
		}
		r = txRead{val: v, err: err}
		t.reads[key] = r
	}
	if r.err != nil {
		return nil, r.err
	}
	return clone(r.val), nil
}

// Set buffers a write applied when fn returns nil.
func (t *txBuffer) Set(key string, val []byte, ttl time.Duration) {
	if t.check(key) != nil {
		return
	}
	t.put(key, txWrite{val: clone(val), ttl: ttl})
}

// Del buffers a delete applied when fn returns nil.
func (t *txBuffer) Del(key string) {
	if t.check(key) != nil {
		return
	}
	t.put(key, txWrite{del: true})
}

func (t *txBuffer) put(key string, w txWrite) {
	if _, ok := t.writes[key]; !ok {
		t.order = append(t.order, key)
	}
	t.writes[key] = w
}

func dedupe(keys []string) []string {
	seen := make(map[string]bool, len(keys))
	out := keys[:0:0]
	for _, k := range keys {
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	return out
}

// Update runs fn over keys. Updates sharing a hash-tag stripe are serialized
// by a mutex, so they never conflict with each other; fn runs without the
// engine lock (it may even read through the engine) against a copy of the
// keys, and the commit re-checks those keys under the write lock in case a
// plain Set/Del changed them meanwhile (then fn runs again). fn must not
// call Update itself: the nested call could wait on the stripe fn holds.
func (e *Embedded) Update(ctx context.Context, keys []string, fn func(tx Tx) error) error {
	if err := e.begin(ctx); err != nil {
		return err
	}
	keys = dedupe(keys)
	if len(keys) == 0 {
		return fmt.Errorf("engine: Update needs at least one key")
	}
	if err := checkSameSlot(keys...); err != nil {
		return err
	}
	h := fnv.New32a()
	h.Write([]byte(slotTag(keys[0])))
	stripe := &e.txLocks[h.Sum32()%uint32(len(e.txLocks))]
	stripe.Lock()
	locked := true
	defer func() {
		if locked {
			stripe.Unlock()
		}
	}()

	type snap struct {
		present bool
		kind    kind
		val     []byte
	}
	for attempt := 0; attempt < maxTxAttempts; attempt++ {
		// Snapshot the declared keys under the read lock.
		snaps := make(map[string]snap, len(keys))
		if err := e.readKeys(ctx, keys, func(now int64) error {
			for _, k := range keys {
				if ent := e.st.live(k, now); ent != nil {
					s := snap{present: true, kind: ent.kind}
					if ent.kind == kindString {
						v, err := e.strValue(ent)
						if err != nil {
							return err
						}
						s.val = v
					}
					snaps[k] = s
				}
			}
			return nil
		}); err != nil {
			return err
		}
		tx := newTxBuffer(keys, func(k string) ([]byte, error) {
			s := snaps[k]
			switch {
			case !s.present:
				return nil, ErrNotFound
			case s.kind != kindString:
				return nil, fmt.Errorf("%w: %q is not a string", ErrWrongType, k)
			}
			return s.val, nil
		})
		if err := fn(tx); err != nil {
			return err
		}
		if tx.err != nil {
			return tx.err
		}
		if len(tx.writes) == 0 {
			return nil
		}
		conflict := false
		err := e.mutateKeys(ctx, keys, func(now int64) (*enc, error) {
			for _, k := range keys {
				s := snaps[k]
				ent := e.st.live(k, now)
				if (ent != nil) != s.present || (ent != nil && ent.kind != s.kind) {
					conflict = true
					return nil, nil
				}
				if ent != nil && ent.kind == kindString {
					eq, err := e.strEqual(ent, s.val)
					if err != nil {
						return nil, err
					}
					if !eq {
						conflict = true
						return nil, nil
					}
				}
			}
			f := newFrame(128)
			for _, k := range tx.order {
				w := tx.writes[k]
				if w.del {
					if e.st.has(k) {
						f.op(opDel)
						f.str(k)
					}
					continue
				}
				setOp(f, k, w.val, expireAt(now, w.ttl))
			}
			return f, nil
		})
		if err != nil || !conflict {
			return err
		}
	}
	return ErrTxConflict
}
