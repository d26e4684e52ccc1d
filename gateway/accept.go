package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"kefu/conv"
	"kefu/engine"
)

// dedupeState is the value of a message's dedupe key. It is the
// idempotency record: whoever moves it from "processing by me" to "done"
// owns the answer, so a message is answered at most once even when a
// recovery worker and the original worker race.
type dedupeState struct {
	// S is "p" (processing) or "d" (done).
	S string `json:"s"`
	// O is the owner processing the message ("p" only).
	O string `json:"o,omitempty"`
	// A is set by a retry that gave up waiting: the answer must go through
	// the send API, because the connection that would carry the passive
	// reply is gone.
	A bool `json:"a,omitempty"`
	// R is the passive reply, kept so a retry gets the same answer.
	R *conv.Reply `json:"r,omitempty"`
	// At is when the state was written (unix ms).
	At int64 `json:"t"`
}

func (s dedupeState) bytes() []byte {
	b, _ := json.Marshal(s)
	return b
}

func parseState(b []byte) (dedupeState, error) {
	var s dedupeState
	err := json.Unmarshal(b, &s)
	return s, err
}

// acceptResult is what the HTTP handler learns from accept.
type acceptResult struct {
	// passive is the reply to put in the HTTP response (nil: ack only).
	passive *conv.Reply
	dup     bool
}

// handover connects the HTTP handler waiting for a passive reply with the
// worker computing it. Whoever moves it out of "waiting" first decides:
// the worker (the reply goes back passively) or the handler's timer (the
// reply goes through the send API).
type handover struct {
	mu      sync.Mutex
	state   int // 0 waiting, 1 worker committing, 2 timed out
	done    chan struct{}
	passive *conv.Reply
	failed  bool // commit failed: answer 503 so WeChat retries
	// claimed is the dedupe state this worker wrote; the commit tries a
	// compare-and-swap against it first and saves a read.
	claimed []byte
}

func newHandover() *handover { return &handover{done: make(chan struct{})} }

// workerClaim is called by the worker with a reply ready; it reports
// whether the handler is still waiting for it.
func (h *handover) workerClaim() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.state != 0 {
		return false
	}
	h.state = 1
	return true
}

// finish publishes the worker's outcome to the waiting handler(s).
func (h *handover) finish(passive *conv.Reply, failed bool) {
	h.mu.Lock()
	h.passive, h.failed = passive, failed
	h.mu.Unlock()
	close(h.done)
}

// ack tells a still-waiting handler to answer with a plain ack (no
// passive reply); it does nothing once the handler has timed out.
func (h *handover) ack() {
	if h.workerClaim() {
		h.finish(nil, false)
	}
}

// timeout is called by the handler when the passive budget ends. It
// reports whether the worker is already committing (then the handler
// should wait a little longer for the outcome).
func (h *handover) timeout() (committing bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.state == 0 {
		h.state = 2
		return false
	}
	return h.state == 1
}

// claimed names what claim wrote for one message.
type claimed struct {
	key, queue, owner string
	state             []byte // the dedupe state written
}

// claim claims msg's dedupe key and durably enqueues it in its inbox shard
// in one engine call; async marks it for delivery through the send API.
func (g *Gateway) claim(ctx context.Context, msg conv.Message, ttl time.Duration, async bool) (claimed, bool, []byte, error) {
	shard := g.shard(msg.Customer)
	c := claimed{
		key:   fmt.Sprintf("in:{%d}:d:%s", shard, msg.ID),
		queue: fmt.Sprintf("in:{%d}", shard),
		owner: g.newOwner(),
	}
	data, err := json.Marshal(msg)
	if err != nil {
		return c, false, nil, err
	}
	now := g.now()
	c.state = dedupeState{S: "p", O: c.owner, A: async, At: now.UnixMilli()}.bytes()
	job := engine.Job{ID: msg.ID, Data: data, Due: now.Add(g.cfg.RecoveryAfter)}
	ok, cur, err := g.eng.ClaimAndEnqueue(ctx, c.key, c.state, ttl, c.queue, job)
	return c, ok, cur, err
}

// commitGrace bounds how long a handler waits for a commit already under
// way once its budget is spent; the budget plus this stays under 5 s.
const commitGrace = 1200 * time.Millisecond

// accept claims the dedupe key and durably enqueues msg in one engine call,
// then (for a new message) starts processing and waits up to the passive
// budget for the answer. ttl is the dedupe TTL. passiveOK says whether the
// channel can carry a passive reply.
func (g *Gateway) accept(ctx context.Context, msg conv.Message, ttl time.Duration, passiveOK bool) (acceptResult, error) {
	start := g.now()
	c, claimed, cur, err := g.claim(ctx, msg, ttl, false)
	if err != nil {
		// Not durably accepted: answer non-200 so WeChat retries. Never
		// ack what we could lose.
		return acceptResult{}, errStatus(503, "cannot accept message now", err)
	}
	claimKey, queue, owner, st := c.key, c.queue, c.owner, c.state
	if !claimed {
		g.metrics.dedupeHits.WithLabelValues(msg.Channel).Inc()
		return g.duplicate(ctx, msg, claimKey, cur, passiveOK, start)
	}
	h := newHandover()
	h.claimed = st
	if passiveOK {
		g.inflight.Store(msg.ID, h)
	}
	g.work.Add(1)
	go func() {
		defer g.work.Done()
		defer g.inflight.Delete(msg.ID)
		g.process(msg, claimKey, queue, owner, h, passiveOK)
	}()
	if !passiveOK {
		return acceptResult{}, nil
	}
	return g.wait(h, start)
}

// wait blocks until the worker hands over a passive reply or the budget ends.
func (g *Gateway) wait(h *handover, start time.Time) (acceptResult, error) {
	budget := g.cfg.PassiveBudget - g.now().Sub(start)
	if budget < 0 {
		budget = 0
	}
	t := time.NewTimer(budget)
	defer t.Stop()
	select {
	case <-h.done:
	case <-t.C:
		if !h.timeout() {
			select {
			case <-h.done:
			default:
				return acceptResult{}, nil // ack now; the answer goes via the API
			}
		} else {
			grace := time.NewTimer(commitGrace)
			defer grace.Stop()
			select {
			case <-h.done:
			case <-grace.C:
				// The reply is being stored as passive but we cannot wait
				// longer: make WeChat retry, the retry returns it.
				return acceptResult{}, errStatus(503, "reply commit slow", nil)
			}
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.failed {
		return acceptResult{}, errStatus(503, "reply commit failed", nil)
	}
	return acceptResult{passive: h.passive}, nil
}

// duplicate answers a retry of an accepted message without processing it
// again: the stored passive reply if there is one, an ack otherwise.
func (g *Gateway) duplicate(ctx context.Context, msg conv.Message, claimKey string, cur []byte, passiveOK bool, start time.Time) (acceptResult, error) {
	if !passiveOK {
		return acceptResult{dup: true}, nil
	}
	if v, ok := g.inflight.Load(msg.ID); ok {
		// The first delivery is still being answered here: share its result.
		res, err := g.wait(v.(*handover), start)
		res.dup = true
		return res, err
	}
	deadline := start.Add(g.cfg.PassiveBudget)
	for {
		st, err := parseState(cur)
		if err != nil {
			return acceptResult{dup: true}, nil
		}
		if st.S == "d" {
			return acceptResult{passive: st.R, dup: true}, nil
		}
		if g.now().After(deadline) {
			// Still processing elsewhere: ask the owner to send through
			// the API (our connection is the live one now), then ack.
			if !st.A {
				st.A = true
				ok, err := g.eng.CompareAndSwap(ctx, claimKey, cur, st.bytes(), g.cfg.DedupeTTL)
				if err != nil {
					return acceptResult{}, errStatus(503, "cannot update message state", err)
				}
				if !ok {
					if cur, err = g.eng.Get(ctx, claimKey); err != nil {
						return acceptResult{dup: true}, nil
					}
					continue
				}
			}
			return acceptResult{dup: true}, nil
		}
		time.Sleep(20 * time.Millisecond)
		if cur, err = g.eng.Get(ctx, claimKey); err != nil {
			return acceptResult{dup: true}, nil
		}
	}
}

// process runs the handler for an accepted message and delivers its
// replies exactly once: passively through h when the HTTP handler is still
// waiting, otherwise through the outbound sender.
func (g *Gateway) process(msg conv.Message, claimKey, queue, owner string, h *handover, passiveOK bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	log := g.log.With("msg_id", msg.ID, "channel", msg.Channel)
	defer func() {
		// A handler bug must not take the process down (and, since the
		// message stays in the inbox, crash-loop it on every restart):
		// leave the message to recovery, which gives up after a few tries.
		if r := recover(); r != nil {
			log.Error("handler panicked; message left for recovery", "panic", fmt.Sprint(r))
			h.ack()
		}
	}()
	var replies []conv.Reply
	var after func(context.Context)
	var err error
	if d, ok := g.handler.(Deferrer); ok {
		replies, after, err = d.HandleDeferred(ctx, msg)
	} else {
		replies, err = g.handler.Handle(ctx, msg)
	}
	// The deferred work runs once the answer is out and before the inbox
	// ack (a crash in between loses only this bookkeeping, never the
	// answer); on paths that leave the message for recovery it still runs.
	runAfter := func() {
		if after != nil {
			a := after
			after = nil
			a(ctx)
		}
	}
	defer runAfter()
	if err != nil {
		// Leave the job in the inbox: recovery retries it after
		// RecoveryAfter. The HTTP handler acks (the message is safe).
		log.Error("handler failed; message left for recovery", "err", err)
		h.ack()
		return
	}
	var passive *conv.Reply
	async := replies
	if passiveOK && len(replies) > 0 && passiveCapable(replies[0]) && h.workerClaim() {
		passive = &replies[0]
		async = replies[1:]
		if err := g.commit(ctx, claimKey, owner, h.claimed, passive, async, msg); err != nil {
			if errors.Is(err, errNotOwner) {
				log.Info("message taken over by another worker; dropping this answer")
				h.finish(nil, false)
				return
			}
			if errors.Is(err, errAsyncRequested) {
				h.finish(nil, false)
				runAfter()
				g.ackInbox(ctx, queue, msg.ID, log)
				return
			}
			log.Error("cannot store answer", "err", err)
			h.finish(nil, true)
			return
		}
		h.finish(passive, false)
	} else {
		err := g.commit(ctx, claimKey, owner, h.claimed, nil, async, msg)
		h.ack()
		if err != nil {
			if !errors.Is(err, errNotOwner) {
				log.Error("cannot store answer; message left for recovery", "err", err)
			}
			return
		}
	}
	runAfter()
	g.ackInbox(ctx, queue, msg.ID, log)
}

func (g *Gateway) ackInbox(ctx context.Context, queue, id string, log interface{ Error(string, ...any) }) {
	if err := g.eng.Ack(ctx, queue, id); err != nil {
		// The dedupe state says done, so recovery will only ack it.
		log.Error("inbox ack failed", "err", err)
	}
}

var (
	errNotOwner       = errors.New("not the owner of this message any more")
	errAsyncRequested = errors.New("a retry asked for the answer through the API")
)

// commit moves the dedupe state from "processing by owner" to "done" and
// enqueues the replies that go through the API. If a retry asked for async
// delivery meanwhile, the passive reply is sent through the API too.
func (g *Gateway) commit(ctx context.Context, claimKey, owner string, known []byte, passive *conv.Reply, async []conv.Reply, msg conv.Message) error {
	cur := known
	for attempt := 0; attempt < 10; attempt++ {
		if cur == nil {
			var err error
			if cur, err = g.eng.Get(ctx, claimKey); err != nil {
				return err
			}
		}
		st, err := parseState(cur)
		if err != nil {
			return err
		}
		if st.S != "p" || st.O != owner {
			return errNotOwner
		}
		next := dedupeState{S: "d", R: passive, At: g.now().UnixMilli()}
		sendAll, first := async, 0
		if passive != nil {
			first = 1 // outbox IDs keep the reply's position in the answer
		}
		if st.A && passive != nil {
			next.R = nil
			sendAll, first = append([]conv.Reply{*passive}, async...), 0
		}
		// Enqueue API sends before flipping the state: if we crash in
		// between, recovery re-processes and the outbox IDs (msg ID + index)
		// replace rather than duplicate the jobs.
		if err := g.Sender.enqueueReplies(ctx, msg, sendAll, first); err != nil {
			return err
		}
		ok, err := g.eng.CompareAndSwap(ctx, claimKey, cur, next.bytes(), g.ttlFor(msg))
		if err != nil {
			return err
		}
		if ok {
			if st.A && passive != nil {
				return errAsyncRequested
			}
			return nil
		}
		cur = nil // changed under us (a retry asked for async): re-read
	}
	return engine.ErrTxConflict
}

func (g *Gateway) ttlFor(msg conv.Message) time.Duration {
	if msg.ChannelType == conv.ChannelWeComKF {
		return g.cfg.KFDedupeTTL
	}
	return g.cfg.DedupeTTL
}

// passiveCapable reports whether a reply kind can be a passive XML reply.
func passiveCapable(r conv.Reply) bool {
	switch r.Kind {
	case conv.ReplyText, conv.ReplyImage, conv.ReplyNews, conv.ReplyTransfer:
		return true
	}
	return false
}
