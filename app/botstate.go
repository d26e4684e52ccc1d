package app

import (
	"context"
	"log/slog"
	"reflect"
	"sync"
	"time"

	"kefu/bot"
	"kefu/conv"
)

// writeBehind wraps the bot's engine-backed state and journal so that the
// answer does not wait for their durable writes. The bot's per-customer
// memory is soft (a pending numbered choice, a miss counter, a rating
// prompt) and the journal feeds curation, not the customer, so a crash
// losing the last few milliseconds of either costs a re-asked question at
// worst. The latest memory is served from this process until it is
// written, so a customer's next message sees it even before the engine does.
type writeBehind struct {
	inner   bot.State
	journal bot.Journal
	log     *slog.Logger

	mu      sync.Mutex
	dirty   map[conv.CustomerID]memWrite
	records []bot.Record
	// spare is the records slice of the last flush, emptied, for the next
	// one: swapping two slices instead of growing a new one from nil each
	// flush saved ≈0.5 KB of allocation per answered message.
	spare []bot.Record
	wake  chan struct{}
	// flushMu serialises flushes: Records flushes before reading, and must
	// wait for a flush already under way to finish writing what it took
	// from the queue — else a suggestion an agent just made could be
	// missing from the list (and from Approve) for a moment.
	flushMu sync.Mutex
}

type memWrite struct {
	mem bot.Memory
	ttl time.Duration
}

var (
	_ bot.State   = (*writeBehind)(nil)
	_ bot.Journal = (*writeBehind)(nil)
)

func newWriteBehind(inner bot.State, log *slog.Logger) *writeBehind {
	w := &writeBehind{inner: inner, log: log.With("component", "bot-state"), dirty: map[conv.CustomerID]memWrite{}, wake: make(chan struct{}, 1)}
	w.journal, _ = inner.(bot.Journal)
	return w
}

// Load returns the memory not yet written, else the engine's.
func (w *writeBehind) Load(ctx context.Context, c conv.CustomerID) (bot.Memory, error) {
	w.mu.Lock()
	d, ok := w.dirty[c]
	w.mu.Unlock()
	if ok {
		return d.mem, nil
	}
	return w.inner.Load(ctx, c)
}

// Keys implements bot.KeyedState: none while c's memory is still queued
// here (Load answers from memory), else the engine's.
func (w *writeBehind) Keys(c conv.CustomerID) []string {
	w.mu.Lock()
	_, ok := w.dirty[c]
	w.mu.Unlock()
	if k, isKeyed := w.inner.(bot.KeyedState); isKeyed && !ok {
		return k.Keys(c)
	}
	return nil
}

// Save queues m for writing (a repeat of a still-queued value is skipped;
// no engine read here: this runs on the answer path).
func (w *writeBehind) Save(ctx context.Context, c conv.CustomerID, m bot.Memory, ttl time.Duration) error {
	w.mu.Lock()
	if d, ok := w.dirty[c]; ok && reflect.DeepEqual(d.mem, m) {
		w.mu.Unlock()
		return nil
	}
	w.dirty[c] = memWrite{mem: m, ttl: ttl}
	w.mu.Unlock()
	w.nudge()
	return nil
}

// Append queues a journal record.
func (w *writeBehind) Append(ctx context.Context, r bot.Record) error {
	if w.journal == nil {
		return nil
	}
	w.mu.Lock()
	w.records = append(w.records, r)
	w.mu.Unlock()
	w.nudge()
	return nil
}

// Records reads the journal (after writing what is queued).
func (w *writeBehind) Records(ctx context.Context) ([]bot.Record, error) {
	w.flush(ctx)
	if w.journal == nil {
		return nil, nil
	}
	return w.journal.Records(ctx)
}

func (w *writeBehind) nudge() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// run writes queued state until ctx ends, then flushes.
func (w *writeBehind) run(ctx context.Context) error {
	for {
		select {
		case <-w.wake:
			w.flush(context.WithoutCancel(ctx))
		case <-ctx.Done():
			w.flush(context.Background())
			return nil
		}
	}
}

func (w *writeBehind) flush(ctx context.Context) {
	w.flushMu.Lock()
	defer w.flushMu.Unlock()
	w.mu.Lock()
	dirty := make(map[conv.CustomerID]memWrite, len(w.dirty))
	for c, d := range w.dirty {
		dirty[c] = d
	}
	recs := w.records
	w.records, w.spare = w.spare[:0], nil
	w.mu.Unlock()
	defer w.recycle(recs)
	if b, ok := w.inner.(batchState); ok && len(dirty) > 0 {
		w.saveBatched(ctx, b, dirty)
		dirty = nil
	}
	var wg sync.WaitGroup
	// Parallel writes share group commits. The bound must stay well above
	// what arrives per fsync: with 16, a disk slowed to a few ms per fsync
	// made a flush last longer than the traffic it drained, and the dirty
	// map and queued journal records (with their candidates) kept growing.
	sem := make(chan struct{}, 256)
	for c, d := range dirty {
		wg.Add(1)
		sem <- struct{}{}
		go func(c conv.CustomerID, d memWrite) {
			defer func() { <-sem; wg.Done() }()
			if err := w.inner.Save(ctx, c, d.mem, d.ttl); err != nil {
				w.log.Warn("bot state write failed; will retry", "err", err)
				return // stays dirty: served from here and written next time
			}
			w.mu.Lock()
			// Forget it only if no newer memory arrived meanwhile.
			if cur, ok := w.dirty[c]; ok && reflect.DeepEqual(cur, d) {
				delete(w.dirty, c)
			}
			w.mu.Unlock()
		}(c, d)
	}
	if b, ok := w.journal.(batchJournal); ok {
		// One engine write per batch instead of one per record.
		for len(recs) > 0 {
			n := min(len(recs), journalBatch)
			if err := b.AppendRecords(ctx, recs[:n]); err != nil {
				w.log.Warn("bot journal write failed", "err", err, "records", n)
			}
			recs = recs[n:]
		}
	}
	for _, r := range recs {
		wg.Add(1)
		sem <- struct{}{}
		go func(r bot.Record) {
			defer func() { <-sem; wg.Done() }()
			if err := w.journal.Append(ctx, r); err != nil {
				w.log.Warn("bot journal write failed", "err", err)
			}
		}(r)
	}
	wg.Wait()
}

// recycle keeps recs, written, as the spare records slice. Its records are
// cleared first so that their strings and candidates can be collected; a
// slice grown by a burst is dropped rather than kept.
func (w *writeBehind) recycle(recs []bot.Record) {
	if cap(recs) == 0 || cap(recs) > maxSpareRecords {
		return
	}
	clear(recs)
	w.mu.Lock()
	if w.spare == nil {
		w.spare = recs[:0]
	}
	w.mu.Unlock()
}

// maxSpareRecords bounds the spare slice (≈250 B a record).
const maxSpareRecords = 8192

// saveBatched writes dirty memories in batches of one engine write each:
// as a flush drains everything queued since the last one, its cost does
// not grow with the traffic, and neither does the backlog.
func (w *writeBehind) saveBatched(ctx context.Context, b batchState, dirty map[conv.CustomerID]memWrite) {
	batch := make([]bot.Saved, 0, min(len(dirty), stateBatch))
	write := func() {
		if len(batch) == 0 {
			return
		}
		if err := b.SaveMany(ctx, batch); err != nil {
			w.log.Warn("bot state write failed; will retry", "err", err, "customers", len(batch))
			batch = batch[:0]
			return // they stay dirty: served from here and written next time
		}
		w.mu.Lock()
		for _, s := range batch {
			// Forget it only if no newer memory arrived meanwhile.
			if cur, ok := w.dirty[s.Customer]; ok && cur.ttl == s.TTL && reflect.DeepEqual(cur.mem, s.Memory) {
				delete(w.dirty, s.Customer)
			}
		}
		w.mu.Unlock()
		batch = batch[:0]
	}
	for c, d := range dirty {
		batch = append(batch, bot.Saved{Customer: c, Memory: d.mem, TTL: d.ttl})
		if len(batch) == stateBatch {
			write()
		}
	}
	write()
}

// batchState is a bot state that can save several customers in one write
// (bot.EngineState's).
type batchState interface {
	SaveMany(ctx context.Context, items []bot.Saved) error
}

// stateBatch bounds the customers of one batched state write.
const stateBatch = 512

// batchJournal is a journal that can append several records in one write
// (bot.EngineState's).
type batchJournal interface {
	AppendRecords(ctx context.Context, rs []bot.Record) error
}

// journalBatch bounds the records of one batched journal write.
const journalBatch = 512
