package engine

import (
	"context"
	"sync"
)

// subBuffer is each subscriber's channel capacity. Publish never blocks: a
// subscriber that falls this far behind loses messages (pub/sub is for live
// updates, and a slow browser tab must not stall the publisher).
const subBuffer = 256

type subscriber struct {
	ch chan []byte
}

// hub is the embedded engine's in-process pub/sub.
type hub struct {
	mu     sync.RWMutex
	subs   map[string]map[*subscriber]struct{}
	closed bool
	done   chan struct{}
}

func (h *hub) init() {
	h.subs = map[string]map[*subscriber]struct{}{}
	h.done = make(chan struct{})
}

func (h *hub) closeAll() {
	h.mu.Lock()
	if !h.closed {
		h.closed = true
		close(h.done)
	}
	h.mu.Unlock()
}

// Publish delivers msg to current subscribers of channel without blocking;
// subscribers whose buffer is full miss it.
func (e *Embedded) Publish(ctx context.Context, channel string, msg []byte) error {
	if err := e.begin(ctx); err != nil {
		return err
	}
	h := &e.hub
	h.mu.RLock()
	defer h.mu.RUnlock()
	for s := range h.subs[channel] {
		select {
		case s.ch <- clone(msg):
		default:
		}
	}
	return nil
}

// Subscribe returns a channel receiving messages published on channel from
// now on. It is closed when ctx ends or the engine closes.
func (e *Embedded) Subscribe(ctx context.Context, channel string) (<-chan []byte, error) {
	if err := e.begin(ctx); err != nil {
		return nil, err
	}
	h := &e.hub
	s := &subscriber{ch: make(chan []byte, subBuffer)}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, ErrClosed
	}
	m := h.subs[channel]
	if m == nil {
		m = map[*subscriber]struct{}{}
		h.subs[channel] = m
	}
	m[s] = struct{}{}
	h.mu.Unlock()
	go func() {
		select {
		case <-ctx.Done():
		case <-h.done:
		}
		// Unregister under the write lock before closing so Publish (which
		// sends under the read lock) never sends on a closed channel.
		h.mu.Lock()
		delete(m, s)
		if len(h.subs[channel]) == 0 {
			delete(h.subs, channel)
		}
		h.mu.Unlock()
		close(s.ch)
	}()
	return s.ch, nil
}
