package engine

import (
	"context"
	"sync"

	"github.com/redis/go-redis/v9"
)

// batcher sends the commands that many goroutines issue at the same time in
// shared pipelines ("auto-pipelining"). Under load most of the gateway's
// Redis time was system calls — one write and one read per command on
// each side — for commands that each wait for Redis anyway; queued
// together they share those calls (and, with appendfsync always, the fsync
// of one event-loop turn, which they shared already).
//
// There is no timer: a request waits only while a pipeline is being sent
// by every sender, so an idle engine sends each command at once and a busy
// one sends bigger pipelines. Each caller's commands keep their order, and
// a caller's next call starts after its previous one returned, so the
// order one goroutine sees is unchanged.
type batcher struct {
	c    redis.UniversalClient
	reqs chan *batchReq
	stop chan struct{}
	wg   sync.WaitGroup
}

// batchReq is one caller's commands: queue adds them to the pipeline, and
// done is signalled once their replies are in (requests are pooled, so it
// is a buffered channel that is reused, not closed).
type batchReq struct {
	queue func(p redis.Pipeliner)
	done  chan struct{}
}

var batchReqs = sync.Pool{New: func() any { return &batchReq{done: make(chan struct{}, 1)} }}

const (
	batchSenders = 4   // pipelines in flight at once
	batchMaxReqs = 128 // callers per pipeline
)

func newBatcher(c redis.UniversalClient) *batcher {
	b := &batcher{c: c, reqs: make(chan *batchReq), stop: make(chan struct{})}
	for range batchSenders {
		b.wg.Add(1)
		go b.send()
	}
	return b
}

// do queues commands through queue in the next pipeline and returns once
// their replies are in; the caller reads them from its own Cmd values. It
// returns ErrClosed when the batcher has stopped and ctx's error when ctx
// ends before the commands were handed to a sender (nothing was sent).
func (b *batcher) do(ctx context.Context, queue func(p redis.Pipeliner)) error {
	req := batchReqs.Get().(*batchReq)
	req.queue = queue
	select {
	case b.reqs <- req:
	case <-ctx.Done():
		req.queue = nil
		batchReqs.Put(req)
		return ctx.Err()
	case <-b.stop:
		req.queue = nil
		batchReqs.Put(req)
		return ErrClosed
	}
	// Once handed over the commands are sent whatever ctx does: wait for
	// their replies (the client's read timeout bounds the wait).
	<-req.done
	req.queue = nil
	batchReqs.Put(req)
	return nil
}

func (b *batcher) send() {
	defer b.wg.Done()
	batch := make([]*batchReq, 0, batchMaxReqs)
	for {
		var first *batchReq
		select {
		case first = <-b.reqs:
		case <-b.stop:
			return
		}
		batch = append(batch[:0], first)
	more:
		for len(batch) < batchMaxReqs {
			select {
			case r := <-b.reqs:
				batch = append(batch, r)
			default:
				break more
			}
		}
		pipe := b.c.Pipeline()
		for _, r := range batch {
			r.queue(pipe)
		}
		// Each command carries its own reply or error; Exec's error only
		// repeats the first of them.
		_, _ = pipe.Exec(context.Background())
		for _, r := range batch {
			r.done <- struct{}{}
		}
		clear(batch)
	}
}

// close stops the senders; requests not yet handed over get ErrClosed.
func (b *batcher) close() {
	close(b.stop)
	b.wg.Wait()
}
