package app

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"kefu/conv"
	"kefu/engine"
)

// eventBuffer bounds events waiting for the log. Events are written off
// the answer path so a customer's reply never waits on reporting; when the
// buffer is full the event is counted as dropped rather than blocking.
const eventBuffer = 16384

// eventBatch bounds how many events go into one engine write.
const eventBatch = 512

// eventWriter appends domain events to the engine log in the background.
// One writer takes whatever has queued up while its previous write was
// being made durable and appends it in one AppendMany (one WAL record, one
// Redis round trip), so the log keeps the order events were emitted in and
// a busy second costs a few writes instead of one per event.
type eventWriter struct {
	eng     engine.Engine
	log     *slog.Logger
	ch      chan conv.Event
	dropped atomic.Int64
}

func newEventWriter(eng engine.Engine, log *slog.Logger) *eventWriter {
	return &eventWriter{eng: eng, log: log.With("component", "events"), ch: make(chan conv.Event, eventBuffer)}
}

func (w *eventWriter) emit(ev conv.Event) {
	if ev.At.IsZero() {
		ev.At = time.Now()
	}
	select {
	case w.ch <- ev:
	default:
		if w.dropped.Add(1)%1000 == 1 {
			w.log.Error("event buffer full; dropping events", "dropped", w.dropped.Load())
		}
	}
}

// run writes events until ctx ends, then flushes what is buffered.
func (w *eventWriter) run(ctx context.Context) error {
	var buf []byte
	var recs [][]byte
	for {
		var ev conv.Event
		select {
		case ev = <-w.ch:
		case <-ctx.Done():
			for {
				buf, recs = w.take(buf[:0], recs[:0], nil)
				if len(recs) == 0 {
					return nil
				}
				w.write(recs)
			}
		}
		buf, recs = w.take(buf[:0], recs[:0], &ev)
		w.write(recs)
	}
}

// take encodes first (if any) and the events already queued behind it, up
// to eventBatch, into buf and returns one slice of buf per event.
func (w *eventWriter) take(buf []byte, recs [][]byte, first *conv.Event) ([]byte, [][]byte) {
	var ends [eventBatch]int
	n := 0
	if first != nil {
		buf = first.AppendJSON(buf)
		ends[n] = len(buf)
		n++
	}
	for n < eventBatch {
		select {
		case ev := <-w.ch:
			buf = ev.AppendJSON(buf)
			ends[n] = len(buf)
			n++
			continue
		default:
		}
		break
	}
	start := 0
	for _, end := range ends[:n] {
		recs = append(recs, buf[start:end:end])
		start = end
	}
	return buf, recs
}

func (w *eventWriter) write(recs [][]byte) {
	if len(recs) == 0 {
		return
	}
	for attempt := 0; attempt < 3; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := w.eng.AppendMany(ctx, eventLog, recs...)
		cancel()
		if err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	w.log.Error("events lost after retries", "count", len(recs))
}

// journalRetention bounds the bot's curation journal (every decision is
// journaled): records older than this are trimmed hourly.
const journalRetention = 90 * 24 * time.Hour

// trimJournal keeps the bot's curation journal bounded.
func trimJournal(ctx context.Context, eng engine.Engine, log *slog.Logger) error {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if err := eng.TrimLog(ctx, "bot:journal", time.Now().Add(-journalRetention)); err != nil && ctx.Err() == nil {
			log.Warn("bot journal trim failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
