package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"testing"

	"kefu/conv"
	"kefu/engine"
)

// Every emitted event reaches the log once, decodable as conv.Event, in
// the order each emitter emitted them, including those still buffered
// when the writer is told to stop.
func TestEventWriter_WritesEveryEventInOrder(t *testing.T) {
	eng, err := engine.OpenEmbedded(t.TempDir(), engine.EmbeddedOptions{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	w := newEventWriter(eng, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.run(ctx) }()
	const emitters, each = 8, 300
	var wg sync.WaitGroup
	for i := 0; i < emitters; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for j := 0; j < each; j++ {
				w.emit(conv.Event{Type: conv.EvMessageReceived, Customer: conv.CustomerID(fmt.Sprint("demo:c", i)),
					Data: map[string]string{"n": strconv.Itoa(j), "text": "<营业时间>"}})
			}
		}(i)
	}
	wg.Wait()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	recs, err := eng.ReadLog(context.Background(), eventLog, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != emitters*each || w.dropped.Load() != 0 {
		t.Fatalf("%d events in the log, %d dropped; want %d", len(recs), w.dropped.Load(), emitters*each)
	}
	next := map[conv.CustomerID]int{}
	for _, r := range recs {
		var ev conv.Event
		if err := json.Unmarshal(r.Data, &ev); err != nil {
			t.Fatalf("record %s: %v", r.ID, err)
		}
		if ev.Data["n"] != strconv.Itoa(next[ev.Customer]) || ev.Data["text"] != "<营业时间>" || ev.At.IsZero() {
			t.Fatalf("%s: event %+v out of order (want n=%d)", ev.Customer, ev, next[ev.Customer])
		}
		next[ev.Customer]++
	}
}
