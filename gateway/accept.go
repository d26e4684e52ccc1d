package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"kefu/conv"
	"kefu/engine"
	"kefu/internal/bufpool"
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

// bytes encodes s as JSON. The states written for every message (no
// reply, or a text reply) are encoded by hand — byte for byte what
// json.Marshal writes (dedupe_test.go) — since reflection was a visible
// share of the answer path; anything else goes through json.Marshal.
func (s dedupeState) bytes() []byte {
	return s.appendTo(make([]byte, 0, 48+len(s.O)+replyLen(s.R)))
}

// appendTo appends s encoded as bytes does to b.
func (s dedupeState) appendTo(b []byte) []byte {
	if s.R != nil && !textOnly(*s.R) {
		j, _ := json.Marshal(s)
		return append(b, j...)
	}
	b = append(b, `{"s":`...)
	b = conv.AppendJSONString(b, s.S)
	if s.O != "" {
		b = append(b, `,"o":`...)
		b = conv.AppendJSONString(b, s.O)
	}
	if s.A {
		b = append(b, `,"a":true`...)
	}
	if s.R != nil {
		b = append(b, `,"r":{"kind":`...)
		b = conv.AppendJSONString(b, string(s.R.Kind))
		if s.R.Text != "" {
			b = append(b, `,"text":`...)
			b = conv.AppendJSONString(b, s.R.Text)
		}
		b = append(b, '}')
	}
	b = append(b, `,"t":`...)
	b = strconv.AppendInt(b, s.At, 10)
	return append(b, '}')
}

// stateBufs holds buffers for the dedupe record written with each answer.
var stateBufs = bufpool.New(512, 16<<10)

// textOnly reports whether r has no fields beyond Kind and Text.
func textOnly(r conv.Reply) bool {
	return r.MediaID == "" && r.Head == "" && r.Menu == nil && r.Tail == "" && r.Articles == nil && r.KFAccount == ""
}

func replyLen(r *conv.Reply) int {
	if r == nil {
		return 0
	}
	return 32 + len(r.Text)*2
}

func parseState(b []byte) (dedupeState, error) {
	var s dedupeState
	err := json.Unmarshal(b, &s)
	return s, err
}

// acceptResult is what the HTTP handler learns from accept.
// acceptResult is what the HTTP handler learns from accept.
type acceptResult struct {
	// passive is the reply to put in the HTTP response (nil: ack only).
	passive *conv.Reply
	dup     bool
}

// handover connects the HTTP handler waiting for a passive reply with the
// worker computing it (see acceptPassive). Whoever moves it out of
// "waiting" first decides: the worker (the answer is stored and goes back
// passively) or the handler's timer (the message is claimed durably and
// the answer goes through the send API).
type handover struct {
	msg   conv.Message
	key   string        // the message's dedupe key
	ttl   time.Duration // its TTL
	owner string        // the owner name a claim of this message writes
	// ahead holds the keys read ahead with the dedupe record for the
	// handler (nil when the engine or the handler does not read ahead).
	ahead *engine.Prefetched

	mu       sync.Mutex
	state    int // 0 waiting, 1 worker storing its answer, 2 timed out
	done     chan struct{}
	finished bool
	passive  *conv.Reply
	failed   bool // nothing durable: answer 503 so WeChat retries
	// dupOf is set when the worker found the message already accepted
	// by another worker, whose dedupe state it holds: the handler answers
	// as for a duplicate.
	dupOf []byte

	// claimDone is closed once the timed-out handler has tried to claim
	// the message (state 2); claim, claimOK, claimCur, claimErr say how.
	claimDone chan struct{}
	claim     claimed
	claimOK   bool
	claimCur  []byte
	claimErr  error
}

func newHandover() *handover { return &handover{done: make(chan struct{})} }

// workerClaim is called by the worker with an outcome ready; it reports
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

// finish publishes the worker's outcome to the waiting handler(s). Only
// the first call counts.
func (h *handover) finish(passive *conv.Reply, failed bool, dupOf []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.finished {
		return
	}
	h.finished = true
	h.passive, h.failed, h.dupOf = passive, failed, dupOf
	close(h.done)
}

// claimed names what claim wrote for one message.
type claimed struct {
	key, queue, owner string
	state             []byte // the dedupe state written
}

// claim claims msg's dedupe key and durably enqueues it in its inbox shard
// in one engine call; async marks it for delivery through the send API.
func (g *Gateway) claim(ctx context.Context, msg conv.Message, ttl time.Duration, async bool) (claimed, bool, []byte, error) {
	return g.claimAs(ctx, msg, g.newOwner(), ttl, async)
}

// dedupeKey and inboxQueue name msg's dedupe key and inbox shard; they
// share a hash tag so one script can write both on Redis Cluster.
func (g *Gateway) dedupeKey(msg conv.Message) string {
	return dedupeKeyIn(g.shard(msg.Customer), msg.ID)
}

func (g *Gateway) inboxQueue(msg conv.Message) string { return inboxQueueOf(g.shard(msg.Customer)) }

func dedupeKeyIn(shard int, id string) string { return fmt.Sprintf("in:{%d}:d:%s", shard, id) }

func inboxQueueOf(shard int) string { return fmt.Sprintf("in:{%d}", shard) }

// claimAs is claim with a given owner name.
func (g *Gateway) claimAs(ctx context.Context, msg conv.Message, owner string, ttl time.Duration, async bool) (claimed, bool, []byte, error) {
	c := claimed{key: g.dedupeKey(msg), queue: g.inboxQueue(msg), owner: owner}
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

// commitGrace bounds how long a handler waits for a worker already storing
// its answer once the budget is spent; the budget plus this stays under 5 s.
const commitGrace = 1200 * time.Millisecond

// accept takes msg in and answers it at most once; ttl is the dedupe TTL.
// passiveOK says whether the channel can carry a passive reply in the HTTP
// response (acceptPassive); otherwise the message is claimed and durably
// enqueued before the ack and answered through the send API afterwards
// (acceptQueued).
func (g *Gateway) accept(ctx context.Context, msg conv.Message, ttl time.Duration, passiveOK bool) (acceptResult, error) {
	if passiveOK {
		return g.acceptPassive(ctx, msg, ttl)
	}
	return g.acceptQueued(ctx, msg, ttl)
}

// acceptQueued claims the dedupe key and durably enqueues msg in one engine
// call, acks, and processes it in the background.
func (g *Gateway) acceptQueued(ctx context.Context, msg conv.Message, ttl time.Duration) (acceptResult, error) {
	c, ok, _, err := g.claim(ctx, msg, ttl, false)
	if err != nil {
		// Not durably accepted: answer non-200 so WeChat retries. Never
		// ack what we could lose.
		return acceptResult{}, errStatus(503, "cannot accept message now", err)
	}
	if !ok {
		g.metrics.dedupeHits.WithLabelValues(msg.Channel).Inc()
		return acceptResult{dup: true}, nil
	}
	g.work.Add(1)
	g.workers.Go(func() {
		defer g.work.Done()
		g.process(msg, c)
	})
	return acceptResult{}, nil
}

// acceptPassive answers msg with one durable write in the common case: the
// handler runs first, then the outcome (the passive reply) is stored as the
// message's "done" dedupe state with a set-if-absent, and only then does the
// HTTP response carry it. So an ack always follows a durable record of what
// was answered — a crash before that write loses nothing WeChat will not
// retry — and a message costs one durable write and one wait for the disk
// (or Redis) instead of three writes (claim+enqueue, commit, inbox ack) and
// two waits.
//
// The message is claimed and durably enqueued in its inbox, as
// acceptQueued does up front, only when that write alone cannot carry the
// outcome: the answer is not ready within the passive budget (the handler
// claims it, acks, and the answer goes through the send API), the handler
// fails (recovery retries it), or part of the answer must go through the
// send API.
//
// Retries that arrive while the first delivery is being answered here
// share its outcome; later ones find the dedupe state.
func (g *Gateway) acceptPassive(ctx context.Context, msg conv.Message, ttl time.Duration) (acceptResult, error) {
	start := g.now()
	h := newHandover()
	h.msg, h.key, h.ttl, h.owner = msg, g.dedupeKey(msg), ttl, g.newOwner()
	if v, loaded := g.inflight.LoadOrStore(msg.ID, h); loaded {
		g.metrics.dedupeHits.WithLabelValues(msg.Channel).Inc()
		res, err := g.wait(ctx, v.(*handover), start)
		res.dup = true
		return res, err
	}
	// Registered first, read second: a delivery that finishes between the
	// two has already stored its state, so the read sees it.
	cur, err := g.readDedupe(ctx, h)
	switch {
	case err == nil:
		g.inflight.CompareAndDelete(msg.ID, h)
		g.metrics.dedupeHits.WithLabelValues(msg.Channel).Inc()
		return g.duplicate(ctx, msg, h.key, cur, start)
	case !errors.Is(err, engine.ErrNotFound):
		g.inflight.CompareAndDelete(msg.ID, h)
		return acceptResult{}, errStatus(503, "cannot accept message now", err)
	}
	g.work.Add(1)
	g.workers.Go(func() {
		defer g.work.Done()
		// h.msg, not msg: capturing the parameter moved every message to
		// the heap a second time (≈0.4 KB a request).
		defer g.inflight.CompareAndDelete(h.msg.ID, h)
		g.processPassive(h)
	})
	return g.wait(ctx, h, start)
}

// readDedupe reads h's dedupe record and, when the engine and the handler
// can, the keys the handler will read, in the same round trip (ReadAhead).
func (g *Gateway) readDedupe(ctx context.Context, h *handover) ([]byte, error) {
	if g.prefetch == nil {
		return g.eng.Get(ctx, h.key)
	}
	more := g.readAhead.ReadAheadKeys(h.msg)
	keys := make([]string, 0, 1+len(more))
	keys = append(append(keys, h.key), more...)
	h.ahead = g.prefetch.Prefetch(ctx, keys...)
	if v, err, ok := h.ahead.Take(h.key); ok {
		return v, err
	}
	return g.eng.Get(ctx, h.key)
}

// wait blocks until the worker hands over its outcome or the budget ends.
func (g *Gateway) wait(ctx context.Context, h *handover, start time.Time) (acceptResult, error) {
	budget := g.cfg.PassiveBudget - g.now().Sub(start)
	if budget < 0 {
		budget = 0
	}
	t := budgetTimer(budget)
	defer putBudgetTimer(t)
	select {
	case <-h.done:
		return g.outcome(ctx, h, start)
	case <-t.C:
	}
	h.mu.Lock()
	switch h.state {
	case 0: // the worker is still busy: accept the message durably, then ack
		h.state = 2
		h.claimDone = make(chan struct{})
		h.mu.Unlock()
		c, ok, cur, err := g.claimAs(ctx, h.msg, h.owner, h.ttl, true)
		h.mu.Lock()
		h.claim, h.claimOK, h.claimCur, h.claimErr = c, ok, cur, err
		h.mu.Unlock()
		close(h.claimDone)
	case 1: // the worker is storing its answer: wait a little for it
		h.mu.Unlock()
		grace := time.NewTimer(commitGrace)
		defer grace.Stop()
		select {
		case <-h.done:
			return g.outcome(ctx, h, start)
		case <-grace.C:
			// The answer may yet be stored as passive: make WeChat retry,
			// the retry returns it.
			return acceptResult{}, errStatus(503, "reply commit slow", nil)
		}
	default: // another waiter (a retry) is claiming it
		ch := h.claimDone
		h.mu.Unlock()
		<-ch
	}
	h.mu.Lock()
	ok, cur, err := h.claimOK, h.claimCur, h.claimErr
	h.mu.Unlock()
	switch {
	case err != nil:
		// Not durably accepted: never ack what we could lose.
		return acceptResult{}, errStatus(503, "cannot accept message now", err)
	case !ok:
		return g.duplicate(ctx, h.msg, h.key, cur, start)
	}
	return acceptResult{}, nil // ack now; the answer goes via the API
}

// outcome turns a finished handover into the HTTP handler's result.
func (g *Gateway) outcome(ctx context.Context, h *handover, start time.Time) (acceptResult, error) {
	h.mu.Lock()
	passive, failed, dupOf := h.passive, h.failed, h.dupOf
	h.mu.Unlock()
	switch {
	case failed:
		return acceptResult{}, errStatus(503, "reply commit failed", nil)
	case dupOf != nil:
		return g.duplicate(ctx, h.msg, h.key, dupOf, start)
	}
	return acceptResult{passive: passive}, nil
}

// duplicate answers a retry of a message accepted by another worker (cur is
// its dedupe state) without processing it again: the stored passive reply
// once there is one, an ack otherwise.
func (g *Gateway) duplicate(ctx context.Context, msg conv.Message, claimKey string, cur []byte, start time.Time) (acceptResult, error) {
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

// handle runs the handler for msg; after is the handler's bookkeeping to
// run once the answer is out (nil when the handler has none).
func (g *Gateway) handle(ctx context.Context, msg conv.Message) (replies []conv.Reply, after func(context.Context), err error) {
	if d, ok := g.handler.(Deferrer); ok {
		return d.HandleDeferred(ctx, msg)
	}
	replies, err = g.handler.Handle(ctx, msg)
	return replies, nil, err
}

// msgLog logs about one message. Unlike slog's With it builds the
// message's attributes only when a line is written, which on the answer
// path is almost never.
type msgLog struct {
	l           *slog.Logger
	id, channel string
}

func (m msgLog) Error(msg string, args ...any) {
	m.l.Error(msg, append([]any{"msg_id", m.id, "channel", m.channel}, args...)...)
}

func (m msgLog) Info(msg string, args ...any) {
	m.l.Info(msg, append([]any{"msg_id", m.id, "channel", m.channel}, args...)...)
}

// budgetTimers recycles the passive-budget timers, one per message. Since
// Go 1.23 a stopped timer's channel holds no stale value, so a recycled
// timer only fires for its new Reset.
var budgetTimers sync.Pool

func budgetTimer(d time.Duration) *time.Timer {
	if t, ok := budgetTimers.Get().(*time.Timer); ok {
		t.Reset(d)
		return t
	}
	return time.NewTimer(d)
}

func putBudgetTimer(t *time.Timer) {
	t.Stop()
	budgetTimers.Put(t)
}

// processPassive runs the handler for a message taken in by acceptPassive
// (nothing written yet) and stores its outcome, see acceptPassive.
func (g *Gateway) processPassive(h *handover) {
	msg := h.msg
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ctx = engine.WithPrefetched(ctx, h.ahead)
	log := msgLog{g.log, msg.ID, msg.Channel}
	var after func(context.Context)
	defer func() {
		// A handler bug must not take the process down: queue the message
		// for recovery (which gives up after a few tries) and ack, or let
		// WeChat retry if even that fails.
		if r := recover(); r != nil {
			log.Error("handler panicked; message queued for recovery", "panic", fmt.Sprint(r))
			g.queueForRecovery(ctx, h, log)
			// A panic after the worker took the handover (while storing
			// the answer): nothing was acked, let WeChat retry.
			h.finish(nil, true, nil)
		}
		// The bookkeeping runs once the answer is out; a crash before it
		// loses only this bookkeeping, never the answer.
		if after != nil {
			after(ctx)
		}
	}()
	replies, after, err := g.handle(ctx, msg)
	if err != nil {
		log.Error("handler failed; message queued for recovery", "err", err)
		g.queueForRecovery(ctx, h, log)
		return
	}
	if !h.workerClaim() {
		// The handler's budget ran out and it claimed the message (or is
		// claiming it): the answer goes through the send API.
		h.mu.Lock()
		ch := h.claimDone
		h.mu.Unlock()
		<-ch
		h.mu.Lock()
		c, ok := h.claim, h.claimOK
		h.mu.Unlock()
		if !ok {
			log.Info("message accepted by another worker; dropping this answer")
			return
		}
		if err := g.commit(ctx, c.key, c.owner, c.state, nil, replies, msg); err != nil {
			if !errors.Is(err, errNotOwner) {
				log.Error("cannot store answer; message left for recovery", "err", err)
			}
			return
		}
		g.ackInbox(ctx, c.queue, msg.ID, log)
		return
	}
	if len(replies) > 1 || len(replies) == 1 && !passiveCapable(replies[0]) {
		g.commitQueued(ctx, h, replies, log)
		return
	}
	var passive *conv.Reply
	if len(replies) == 1 {
		passive = &replies[0]
	}
	// Encoded into a pooled buffer: engines copy values in, and this
	// record is written for every answered message.
	bp := stateBufs.Get()
	done := dedupeState{S: "d", R: passive, At: g.now().UnixMilli()}.appendTo(*bp)
	ok, err := g.eng.SetNX(ctx, h.key, done, h.ttl)
	stateBufs.Put(bp, done)
	if err != nil {
		// Nothing is acked: WeChat retries and the retry is answered anew.
		log.Error("cannot store answer", "err", err)
		h.finish(nil, true, nil)
		return
	}
	if !ok {
		cur, err := g.eng.Get(ctx, h.key)
		if err != nil {
			h.finish(nil, true, nil)
			return
		}
		log.Info("message accepted by another worker; dropping this answer")
		h.finish(nil, false, cur)
		return
	}
	h.finish(passive, false, nil)
}

// commitQueued stores an answer that is partly sent through the API: the
// message is claimed and enqueued, the API sends are enqueued by the commit
// (exactly once, see commit), and the first reply still goes back
// passively when it can.
func (g *Gateway) commitQueued(ctx context.Context, h *handover, replies []conv.Reply, log msgLog) {
	c, ok, cur, err := g.claimAs(ctx, h.msg, h.owner, h.ttl, false)
	if err != nil {
		log.Error("cannot accept message", "err", err)
		h.finish(nil, true, nil)
		return
	}
	if !ok {
		h.finish(nil, false, cur)
		return
	}
	var passive *conv.Reply
	async := replies
	if passiveCapable(replies[0]) {
		passive, async = &replies[0], replies[1:]
	}
	switch err := g.commit(ctx, c.key, c.owner, c.state, passive, async, h.msg); {
	case errors.Is(err, errNotOwner):
		log.Info("message taken over by another worker; dropping this answer")
		h.finish(nil, false, nil)
		return
	case errors.Is(err, errAsyncRequested):
		h.finish(nil, false, nil)
	case err != nil:
		// The job stays in the inbox: recovery answers it through the API.
		log.Error("cannot store answer; message left for recovery", "err", err)
		h.finish(nil, false, nil)
		return
	default:
		h.finish(passive, false, nil)
	}
	g.ackInbox(ctx, c.queue, h.msg.ID, log)
}

// queueForRecovery claims and enqueues a message whose handler failed so
// recovery runs it again after RecoveryAfter, then lets the handler ack. If
// the handler has already claimed it (budget spent), it is queued already.
func (g *Gateway) queueForRecovery(ctx context.Context, h *handover, log msgLog) {
	if !h.workerClaim() {
		return
	}
	_, ok, cur, err := g.claimAs(ctx, h.msg, h.owner, h.ttl, true)
	switch {
	case err != nil:
		log.Error("cannot queue message for recovery; WeChat will retry", "err", err)
		h.finish(nil, true, nil)
	case !ok:
		h.finish(nil, false, cur)
	default:
		h.finish(nil, false, nil)
	}
}

// process runs the handler for a message already claimed and enqueued (by
// acceptQueued, the KF puller or recovery) and delivers its replies exactly
// once through the outbound sender. On failure the job stays in the inbox
// and recovery retries it.
func (g *Gateway) process(msg conv.Message, c claimed) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if g.prefetch != nil {
		// No dedupe read to share here (the claim was it), but the
		// handler's reads still take one round trip instead of several.
		if keys := g.readAhead.ReadAheadKeys(msg); len(keys) > 0 {
			ctx = engine.WithPrefetched(ctx, g.prefetch.Prefetch(ctx, keys...))
		}
	}
	log := msgLog{g.log, msg.ID, msg.Channel}
	var after func(context.Context)
	defer func() {
		// A handler bug must not take the process down (and, since the
		// message stays in the inbox, crash-loop it on every restart):
		// leave the message to recovery, which gives up after a few tries.
		if r := recover(); r != nil {
			log.Error("handler panicked; message left for recovery", "panic", fmt.Sprint(r))
		}
		// The deferred work runs once the answer is out and before the
		// inbox ack; on paths that leave the message for recovery it still
		// runs.
		if after != nil {
			after(ctx)
		}
	}()
	replies, after, err := g.handle(ctx, msg)
	if err != nil {
		log.Error("handler failed; message left for recovery", "err", err)
		return
	}
	if err := g.commit(ctx, c.key, c.owner, c.state, nil, replies, msg); err != nil {
		if !errors.Is(err, errNotOwner) {
			log.Error("cannot store answer; message left for recovery", "err", err)
		}
		return
	}
	a := after
	after = nil
	if a != nil {
		a(ctx)
	}
	g.ackInbox(ctx, c.queue, msg.ID, log)
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
