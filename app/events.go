package app

import (
	"context"
	"encoding/json"
	"hash/fnv"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"kefu/conv"
	"kefu/engine"
)

// eventBuffer bounds events waiting for the log. Events are written off
// the answer path so a customer's reply never waits on reporting; when the
// buffer is full the event is counted as dropped rather than blocking.
const eventBuffer = 16384

// eventWriters is how many appends run at once. One writer would manage
// one event per group commit; several let the engine batch them. Events of
// one customer always go to the same writer, so they stay in order.
const eventWriters = 64

// eventWriter appends domain events to the engine log in the background.
type eventWriter struct {
	eng     engine.Engine
	log     *slog.Logger
	ch      chan conv.Event
	lanes   [eventWriters]chan conv.Event
	dropped atomic.Int64
}

func newEventWriter(eng engine.Engine, log *slog.Logger) *eventWriter {
	w := &eventWriter{eng: eng, log: log.With("component", "events"), ch: make(chan conv.Event, eventBuffer)}
	for i := range w.lanes {
		w.lanes[i] = make(chan conv.Event, 256)
	}
	return w
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
	var wg sync.WaitGroup
	for i := range w.lanes {
		wg.Add(1)
		go func(lane chan conv.Event) {
			defer wg.Done()
			for ev := range lane {
				w.write(ev)
			}
		}(w.lanes[i])
	}
	dispatch := func(ev conv.Event) {
		h := fnv.New32a()
		_, _ = h.Write([]byte(ev.Customer))
		w.lanes[h.Sum32()%eventWriters] <- ev
	}
	defer func() {
		for _, l := range w.lanes {
			close(l)
		}
		wg.Wait()
	}()
	for {
		select {
		case ev := <-w.ch:
			dispatch(ev)
		case <-ctx.Done():
			for {
				select {
				case ev := <-w.ch:
					dispatch(ev)
				default:
					return nil
				}
			}
		}
	}
}

func (w *eventWriter) write(ev conv.Event) {
	b, _ := json.Marshal(ev)
	for attempt := 0; attempt < 3; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := w.eng.Append(ctx, eventLog, b)
		cancel()
		if err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	w.log.Error("event lost after retries", "type", ev.Type)
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
