package engine

import (
	"context"
	"hash/maphash"
	"sync"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// Prefetcher is implemented by engines whose every read is a network round
// trip (Redis). The gateway reads, in one round trip, the message's dedupe
// record together with the keys the router will read next (handoff, survey
// and bot state of the customer), instead of paying one round trip after
// another before the passive reply. The embedded engine reads memory and
// does not implement it.
type Prefetcher interface {
	// Prefetch reads keys' string values in one round trip (one pipeline;
	// keys may live in different cluster slots). It never fails as a
	// whole: each key's outcome, error included, is in the result.
	Prefetch(ctx context.Context, keys ...string) *Prefetched
}

// Prefetched holds values read ahead by Prefetch. Carried in a context
// (WithPrefetched), it answers the engine's Get of each key once: the
// first Get of a prefetched key through that context returns the value
// read ahead, later Gets go to the engine.
//
// A value is only served if this engine instance has not written the key
// since the prefetch began, so a message's own writes (and those of its
// process, such as the bot's write-behind flush) are always seen. A write
// by another process that lands between the prefetch and the Get is not
// seen — no different from a Get that ran a moment earlier, which is all a
// read outside a transaction promises anyway. Use Update for
// read-modify-write.
type Prefetched struct {
	vers *writeVersions

	mu    sync.Mutex
	items []prefetchedItem
}

type prefetchedItem struct {
	key   string
	val   []byte
	err   error
	ver   uint64 // the key's write version before the read was sent
	taken bool
}

// Take returns key's prefetched value (err ErrNotFound when it was absent,
// or the read's error) and ok=true, once; ok=false when key was not
// prefetched, was already taken, or was written through this engine since.
func (p *Prefetched) Take(key string) (val []byte, err error, ok bool) {
	if p == nil {
		return nil, nil, false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range p.items {
		it := &p.items[i]
		if it.key != key || it.taken {
			continue
		}
		it.taken = true
		if p.vers.at(key) != it.ver {
			return nil, nil, false
		}
		return it.val, it.err, true
	}
	return nil, nil, false
}

type prefetchedCtxKey struct{}

// WithPrefetched returns ctx carrying p, so that the engine that made p
// serves Gets of p's keys from it (see Prefetched).
func WithPrefetched(ctx context.Context, p *Prefetched) context.Context {
	if p == nil {
		return ctx
	}
	return context.WithValue(ctx, prefetchedCtxKey{}, p)
}

// prefetchedFor returns the Prefetched in ctx made by the engine owning
// vers, nil when there is none.
func prefetchedFor(ctx context.Context, vers *writeVersions) *Prefetched {
	p, _ := ctx.Value(prefetchedCtxKey{}).(*Prefetched)
	if p == nil || p.vers != vers {
		return nil
	}
	return p
}

// writeVersions counts, per stripe of the keyspace, the writes this engine
// instance completed. A prefetched value is stale if its key's stripe
// moved since the read was sent. Stripes (not keys) keep it bounded; a
// write to another key of the same stripe only costs a needless re-read.
type writeVersions struct {
	seed    maphash.Seed
	stripes [1 << 16]atomic.Uint64 // 512 KiB: a false "written" is rare
}

func newWriteVersions() *writeVersions { return &writeVersions{seed: maphash.MakeSeed()} }

func (v *writeVersions) stripe(key string) *atomic.Uint64 {
	return &v.stripes[maphash.String(v.seed, key)%uint64(len(v.stripes))]
}

func (v *writeVersions) at(key string) uint64 { return v.stripe(key).Load() }

// bump marks keys written. Callers bump after the write's reply (or
// failure: it may have applied), so that a read sent before the write
// reached the server is never served after the write returned.
func (v *writeVersions) bump(keys ...string) {
	for _, k := range keys {
		v.stripe(k).Add(1)
	}
}

var _ Prefetcher = (*Redis)(nil)

// Prefetch implements Prefetcher with GETs sent together in one pipeline
// (shared with other callers' commands, see batcher; go-redis splits it by
// node on Cluster).
func (r *Redis) Prefetch(ctx context.Context, keys ...string) *Prefetched {
	p := &Prefetched{vers: r.vers, items: make([]prefetchedItem, len(keys))}
	for i, k := range keys {
		p.items[i] = prefetchedItem{key: k, ver: r.vers.at(k)}
	}
	if err := r.begin(ctx); err != nil {
		for i := range p.items {
			p.items[i].err = err
		}
		return p
	}
	cmds := make([]*redis.StringCmd, len(keys))
	err := r.batch.do(ctx, func(pipe redis.Pipeliner) {
		for i, k := range keys {
			cmds[i] = pipe.Get(ctx, r.k(k))
		}
	})
	if err != nil {
		for i := range p.items {
			p.items[i].err = err
		}
		return p
	}
	for i, c := range cmds {
		v, err := c.Bytes()
		if err != nil {
			p.items[i].err = r.wrap(err)
			continue
		}
		p.items[i].val = v
	}
	return p
}
