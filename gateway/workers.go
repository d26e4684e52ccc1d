package gateway

import "time"

// workers runs message handling on long-lived goroutines. A fresh goroutine
// per message starts with a small stack and grows it, copy by copy, to the
// tens of KiB that decryption, the router and the bot need: at full load
// that copying was ≈3.5 % of the gateway's CPU. A worker keeps its grown
// stack for the next message. Idle workers exit after idle, so a burst
// does not leave thousands of goroutines behind.
type workers struct {
	jobs chan func()
	idle time.Duration
}

func newWorkers(idle time.Duration) *workers {
	return &workers{jobs: make(chan func()), idle: idle}
}

// Go runs f on an idle worker, or on a new one when none is waiting; it
// never blocks and never queues, so a slow handler cannot delay the next
// message's start.
func (w *workers) Go(f func()) {
	select {
	case w.jobs <- f:
	default:
		go w.run(f)
	}
}

func (w *workers) run(f func()) {
	t := time.NewTimer(w.idle)
	defer t.Stop()
	for {
		f()
		f = nil // let the finished job's closure go before waiting
		t.Reset(w.idle)
		select {
		case f = <-w.jobs:
		case <-t.C:
			return
		}
	}
}
