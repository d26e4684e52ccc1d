// Package engine is kefu's state layer: a small set of durable primitives
// (keys with TTL, counters, hashes, sorted sets, leased job queues, append-only
// logs, optimistic transactions, pub/sub) with two implementations:
//
//   - Embedded (default): one process, state in memory, every mutation written
//     to a local write-ahead log with group commit (fsync batched across
//     concurrent writers) before the call returns; durable across restart.
//   - Redis: many gateway instances share one Redis (standalone, Sentinel or
//     Cluster). Multi-key operations only touch keys that share a hash tag,
//     so they work on Redis Cluster.
//
// Domain packages (gateway, handoff, surveys, …) build their own small stores
// on these primitives; one contract test suite (engine/enginetest) runs on
// both implementations.
//
// Key discipline for Redis Cluster: keys used together in one call (Update,
// ClaimAndEnqueue, a queue's internals) must share a hash tag, written as
// "{tag}" inside the key, e.g. "in:{3}:d:abc" and queue "in:{3}".
package engine

import (
	"context"
	"errors"
	"time"
)

// Errors returned by engines. Implementations wrap backend errors with
// ErrUnavailable so callers can answer "retry later" (e.g. HTTP 503).
var (
	ErrNotFound    = errors.New("engine: not found")
	ErrUnavailable = errors.New("engine: unavailable")
	// ErrTxConflict is returned by Update when optimistic retries are exhausted.
	ErrTxConflict = errors.New("engine: transaction conflict")
	ErrClosed     = errors.New("engine: closed")
)

// Job is one item of a leased queue.
type Job struct {
	ID   string // unique within the queue; enqueueing an existing ID replaces data and due time
	Data []byte
	// Due is when the job becomes claimable.
	Due time.Time
	// Attempts counts how many times the job was claimed (1 on first claim).
	Attempts int
}

// Record is one entry of an append-only log.
type Record struct {
	ID   string // monotonically increasing within a log; compare with CompareIDs
	Data []byte
}

// ZItem is a sorted-set member with its score.
type ZItem struct {
	Member string
	Score  float64
}

// Write is one key change of SetMany: Val with TTL, or a delete.
type Write struct {
	Key string
	Val []byte
	TTL time.Duration
	Del bool
}

// Tx is the view of keys inside Update. Reads see the state at the start of
// the attempt plus the attempt's own writes; writes apply atomically when fn
// returns nil.
type Tx interface {
	Get(key string) ([]byte, error) // ErrNotFound when absent
	Set(key string, val []byte, ttl time.Duration)
	Del(key string)
}

// Engine is the set of state primitives kefu needs. All methods are safe for
// concurrent use. A TTL of 0 means no expiry. Every mutating call is durable
// when it returns nil.
//
// Common semantics (pinned by engine/enginetest): keys of all kinds share
// one keyspace, as in Redis; using a key as the wrong kind (HGet on a
// string, IncrBy on non-numeric text) returns ErrWrongType; values are
// copied in and out (binary-safe); calls after Close return ErrClosed.
type Engine interface {
	// Name is "embedded" or "redis".
	Name() string
	// Ping reports whether the engine can serve requests (readiness).
	Ping(ctx context.Context) error
	Close() error

	// Keys.
	Get(ctx context.Context, key string) ([]byte, error)
	Set(ctx context.Context, key string, val []byte, ttl time.Duration) error
	// SetNX sets key only if absent and reports whether it did.
	SetNX(ctx context.Context, key string, val []byte, ttl time.Duration) (bool, error)
	// Del removes keys; keys may live in different hash slots.
	Del(ctx context.Context, keys ...string) error
	// StrAppend appends data to the string at key (absent: empty) and sets
	// ttl as Set does (0: no expiry); it returns the new length. A record
	// that only grows (a transcript) costs the bytes added, not the whole
	// value.
	StrAppend(ctx context.Context, key string, data []byte, ttl time.Duration) (int64, error)
	// SetMany applies writes in order as one durable write (one WAL
	// record; one pipelined round trip on Redis). Keys may live in
	// different hash slots, so on Redis the batch is not atomic: use it
	// for independent keys, such as a write-behind buffer's.
	SetMany(ctx context.Context, writes ...Write) error
	// CompareAndSwap replaces key's value with val if the current value equals
	// old (old == nil: key must be absent), setting ttl. Reports success.
	CompareAndSwap(ctx context.Context, key string, old, val []byte, ttl time.Duration) (bool, error)
	// CompareAndDelete deletes key if its value equals old (nil matches "").
	CompareAndDelete(ctx context.Context, key string, old []byte) (bool, error)
	// IncrBy adds delta to the integer at key (absent = 0); ttl is applied
	// only when the key is created by this call.
	IncrBy(ctx context.Context, key string, delta int64, ttl time.Duration) (int64, error)
	// TTL returns the remaining time to live; 0 when the key has none;
	// ErrNotFound when absent.
	TTL(ctx context.Context, key string) (time.Duration, error)

	// Hashes.
	HSet(ctx context.Context, key string, fields map[string][]byte) error
	// HGet returns ErrNotFound when the key or the field is absent.
	HGet(ctx context.Context, key, field string) ([]byte, error)
	// HGetAll returns ErrNotFound when the hash is absent (a hash with no
	// fields does not exist).
	HGetAll(ctx context.Context, key string) (map[string][]byte, error)
	// HDel removes fields; the hash disappears with its last field.
	HDel(ctx context.Context, key string, fields ...string) error
	HIncrBy(ctx context.Context, key, field string, delta int64) (int64, error)

	// Sorted sets.
	ZAdd(ctx context.Context, key string, items ...ZItem) error
	ZRem(ctx context.Context, key string, members ...string) (int, error)
	// ZRangeByScore returns members with min <= score <= max, lowest first, at most limit (0 = all).
	ZRangeByScore(ctx context.Context, key string, min, max float64, limit int) ([]ZItem, error)
	// ZScore returns ErrNotFound when the key or member is absent.
	ZScore(ctx context.Context, key, member string) (float64, error)
	ZCard(ctx context.Context, key string) (int64, error)

	// Leased job queues: durable timers, inbox recovery, outbox retries.
	// Enqueue adds or replaces job (by ID), claimable at job.Due. Due is
	// kept with millisecond precision; the ID must not be empty; job.Attempts
	// is ignored and a replaced job keeps its attempt count (so a worker
	// re-enqueueing with backoff sees Attempts keep growing; after Ack the ID
	// starts from zero again). A queue name is its own namespace (not a key).
	Enqueue(ctx context.Context, queue string, job Job) error
	// Claim atomically takes up to max jobs whose Due <= now, making each
	// invisible until now+lease (its Due moves there and Attempts grows).
	// A job claimed and not acked before its lease ends is claimable again,
	// so a crashed worker loses nothing.
	Claim(ctx context.Context, queue string, now time.Time, lease time.Duration, max int) ([]Job, error)
	// Ack removes a job; acking an absent job is not an error.
	Ack(ctx context.Context, queue, id string) error
	// AckClaimed removes job (as returned by Claim) only if nobody
	// re-enqueued or re-claimed it since: its Due is still the lease end
	// job.Due. A worker that coalesces work under one job ID (one per KF
	// account) uses it so that a re-enqueue arriving while it works is not
	// deleted with the job it finished. It reports whether it removed it.
	AckClaimed(ctx context.Context, queue string, job Job) (bool, error)
	// QueueLen counts jobs (due or not); QueueOldest returns the earliest Due
	// (zero time when empty).
	QueueLen(ctx context.Context, queue string) (int64, error)
	QueueOldest(ctx context.Context, queue string) (time.Time, error)
	// ClaimAndEnqueue is the gateway's accept step in one atomic call: if
	// claimKey is absent it is set to claimVal with ttl and job is enqueued
	// (claimed=true); otherwise nothing changes and the current value is
	// returned (claimed=false). claimKey and queue must share a hash tag
	// (ErrCrossSlot otherwise, on every engine). current is nil when claimed.
	ClaimAndEnqueue(ctx context.Context, claimKey string, claimVal []byte, ttl time.Duration, queue string, job Job) (claimed bool, current []byte, err error)

	// Append-only logs (Redis streams).
	Append(ctx context.Context, log string, data []byte) (string, error)
	// AppendMany appends records in order in one atomic write (one WAL
	// record, one round trip) and returns their IDs; a writer with many
	// small records (the event log) batches them instead of paying a
	// durable write each. No data: nothing happens.
	AppendMany(ctx context.Context, log string, data ...[]byte) ([]string, error)
	// ReadLog returns up to count (<= 0: all) records with ID greater than
	// afterID ("" = from the start); an absent log reads as empty.
	ReadLog(ctx context.Context, log, afterID string, count int) ([]Record, error)
	LogLen(ctx context.Context, log string) (int64, error)
	// TrimLog drops records older than before (retention).
	TrimLog(ctx context.Context, log string, before time.Time) error

	// Update runs fn as an optimistic transaction over keys (which must share
	// a hash tag: ErrCrossSlot otherwise). fn may run several times; it must
	// not have side effects beyond tx. Returning an error from fn aborts
	// without writing and Update returns that error. tx may only touch the
	// listed keys (string values); anything else fails the Update.
	Update(ctx context.Context, keys []string, fn func(tx Tx) error) error

	// Publish sends msg to current subscribers of channel (fire and forget,
	// not durable: use it for live updates, not for work).
	Publish(ctx context.Context, channel string, msg []byte) error
	// Subscribe delivers messages published on channel until ctx ends (then
	// the channel is closed). Delivery never blocks publishers: a subscriber
	// that falls far behind (a few hundred messages) misses messages.
	Subscribe(ctx context.Context, channel string) (<-chan []byte, error)
}
