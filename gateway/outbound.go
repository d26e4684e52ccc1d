package gateway

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"kefu/conv"
	"kefu/engine"
)

// Outbox keys.
const (
	outQueue    = "out"
	outDead     = "out:dead"
	outSentPfx  = "out:sent:"
	outSentTTL  = 7 * 24 * time.Hour
	quotaPrefix = "quota:"
)

// Per-customer send quotas (WECHAT.md §2.1, §4.4): 5 messages within 48 h
// of a customer message on OA and KF.
const (
	QuotaPerMessage = 5
	QuotaWindow     = 48 * time.Hour
)

// DeadLetter is an outbound message the sender gave up on, with why.
type DeadLetter struct {
	Job      conv.Outbound `json:"job"`
	Reason   string        `json:"reason"`
	ErrCode  int           `json:"errcode,omitempty"`
	Attempts int           `json:"attempts"`
	At       time.Time     `json:"at"`
}

// Sender delivers conv.Outbound messages durably: enqueue → claim → send →
// ack, with per-customer quota bookkeeping, token refresh, retries with
// exponential backoff and jitter, and a dead-letter list an operator can
// list and replay. Nothing is dropped silently.
type Sender struct {
	g    *Gateway
	api  *wxClient
	http *http.Client
	log  *slog.Logger
	wake chan struct{}
	// OnResult, if set, is told about every final outcome (sent or dead);
	// the app appends it to the event log.
	OnResult func(job conv.Outbound, err error)
}

func newSender(g *Gateway) *Sender {
	h := &http.Client{Timeout: g.cfg.HTTPTimeout}
	return &Sender{
		g:    g,
		api:  &wxClient{tokens: g.Tokens, http: h},
		http: h,
		log:  g.log.With("component", "sender"),
		wake: make(chan struct{}, 1),
	}
}

// Send durably enqueues one outbound message. Sending the same ID twice
// delivers it once.
func (s *Sender) Send(ctx context.Context, job conv.Outbound) error {
	if job.ID == "" {
		return fmt.Errorf("%w: outbound message needs an ID (it makes sending idempotent)", conv.ErrBadInput)
	}
	if job.Kind == "" {
		job.Kind = conv.OutCustomer
	}
	if job.Kind != conv.OutRobot {
		if _, ok := s.g.byName[job.Channel]; !ok {
			return fmt.Errorf("%w: unknown channel %q", conv.ErrBadInput, job.Channel)
		}
	}
	data, err := json.Marshal(job)
	if err != nil {
		return err
	}
	held := s.quotaBound(job)
	if held {
		if err := s.holdQuota(ctx, job); err != nil {
			return err
		}
	}
	if err := s.g.eng.Enqueue(ctx, outQueue, engine.Job{ID: job.ID, Data: data, Due: s.g.now()}); err != nil {
		if held {
			s.dropHold(ctx, job)
		}
		return err
	}
	s.nudge()
	return nil
}

// quotaBound reports whether job counts against a per-customer allowance
// (customer messages on OA and KF).
func (s *Sender) quotaBound(job conv.Outbound) bool {
	if job.Kind != conv.OutCustomer {
		return false
	}
	ch, ok := s.g.byName[job.Channel]
	return ok && (ch.cfg.Type == conv.ChannelWeChatOA || ch.cfg.Type == conv.ChannelWeComKF)
}

func (s *Sender) nudge() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// enqueueReplies turns a message's API-bound replies into outbox jobs with
// IDs derived from the message, so re-processing replaces, not duplicates.
func (s *Sender) enqueueReplies(ctx context.Context, msg conv.Message, replies []conv.Reply, first int) error {
	trigger, short := quotaTrigger(msg)
	for i, r := range replies {
		job := conv.Outbound{
			ID:           fmt.Sprintf("r:%s:%d", msg.ID, first+i),
			Kind:         conv.OutCustomer,
			Channel:      msg.Channel,
			To:           msg.ExternalUser,
			Account:      msg.Account,
			Reply:        r,
			TriggerAt:    trigger,
			TriggerShort: short,
			Source:       "reply",
		}
		if err := s.Send(ctx, job); err != nil {
			return err
		}
	}
	return nil
}

// Run claims and sends due outbound messages until ctx ends.
func (s *Sender) Run(ctx context.Context) error {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		for s.SendDue(ctx) > 0 {
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-s.wake:
		}
	}
}

// SendDue sends one batch of due messages and returns how many it handled.
func (s *Sender) SendDue(ctx context.Context) int {
	jobs, err := s.g.eng.Claim(ctx, outQueue, s.g.now(), s.lease(), 64)
	if err != nil {
		s.log.Warn("outbox claim failed", "err", err)
		return 0
	}
	// Claimed jobs are finished even when ctx ends (shutdown): a send cut
	// off mid-flight would wait out its lease before anyone retried it.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.lease()/2)
	defer cancel()
	// One recipient's messages go out in order; different recipients in
	// parallel, so one slow API call does not hold up everyone.
	groups := map[string][]engine.Job{}
	var order []string
	for _, j := range jobs {
		var head struct {
			Channel string `json:"channel"`
			To      string `json:"to"`
		}
		_ = json.Unmarshal(j.Data, &head)
		k := head.Channel + "\x00" + head.To
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], j)
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, sendParallelism)
	for _, k := range order {
		wg.Add(1)
		sem <- struct{}{}
		go func(js []engine.Job) {
			defer func() { <-sem; wg.Done() }()
			for _, j := range js {
				s.handle(ctx, j)
			}
		}(groups[k])
	}
	wg.Wait()
	return len(jobs)
}

// lease is how long a claimed send stays invisible to other workers: long
// enough for a token refresh plus the call and its retry (each bounded by
// http_timeout), short so a crashed worker's sends resume quickly.
func (s *Sender) lease() time.Duration { return 4 * s.g.cfg.HTTPTimeout }

// sendParallelism bounds concurrent API calls per instance.
const sendParallelism = 16

func (s *Sender) handle(ctx context.Context, j engine.Job) {
	var job conv.Outbound
	if err := json.Unmarshal(j.Data, &job); err != nil {
		s.dead(ctx, conv.Outbound{ID: j.ID}, "unreadable job: "+err.Error(), 0, j.Attempts)
		return
	}
	// At most once per ID: a job re-delivered after a crash between send
	// and ack is recognised here.
	if _, err := s.g.eng.Get(ctx, outSentPfx+job.ID); err == nil {
		_ = s.g.eng.Ack(ctx, outQueue, job.ID)
		if s.quotaBound(job) {
			s.dropHold(ctx, job)
		}
		return
	}
	err := s.deliver(ctx, job)
	var ae *APIError
	errors.As(err, &ae)
	switch {
	case err == nil:
		if err := s.g.eng.Set(ctx, outSentPfx+job.ID, []byte("1"), outSentTTL); err != nil {
			s.log.Error("cannot mark message sent", "id", job.ID, "err", err)
		}
		_ = s.g.eng.Ack(ctx, outQueue, job.ID)
		s.g.metrics.outbound.WithLabelValues(job.Channel, "sent", "0").Inc()
		if s.OnResult != nil {
			s.OnResult(job, nil)
		}
	case errors.Is(err, conv.ErrWindowClosed):
		s.dead(ctx, job, "window_expired", errcodeOf(ae), j.Attempts)
	case errors.Is(err, conv.ErrQuotaExhausted):
		s.dead(ctx, job, "quota_exhausted", errcodeOf(ae), j.Attempts)
	case ae != nil && ae.Code == codeNoPermission:
		s.dead(ctx, job, "no_permission (48001: the account lacks this API)", ae.Code, j.Attempts)
	case ae != nil && ae.Code == codeAccountType:
		s.dead(ctx, job, "account_type (40200: e.g. test accounts cannot send msgmenu)", ae.Code, j.Attempts)
	case errors.Is(err, conv.ErrBadInput):
		s.dead(ctx, job, "bad_input: "+err.Error(), errcodeOf(ae), j.Attempts)
	case ae != nil && !retryable(ae.Code):
		s.dead(ctx, job, fmt.Sprintf("send_failed:%d %s", ae.Code, ae.Msg), ae.Code, j.Attempts)
	case errors.As(err, new(errRateLimited)):
		var rl errRateLimited
		errors.As(err, &rl)
		_ = s.g.eng.Enqueue(ctx, outQueue, engine.Job{ID: job.ID, Data: j.Data, Due: rl.until, Attempts: j.Attempts - 1})
	default:
		if j.Attempts >= s.g.cfg.Outbound.MaxAttempts {
			s.dead(ctx, job, "max_attempts: "+err.Error(), errcodeOf(ae), j.Attempts)
			return
		}
		delay := s.backoff(j.Attempts, ae)
		s.log.Warn("send failed; will retry", "id", job.ID, "channel", job.Channel, "attempt", j.Attempts, "in", delay, "err", err)
		s.g.metrics.outbound.WithLabelValues(job.Channel, "retry", strconv.Itoa(errcodeOf(ae))).Inc()
		// Re-enqueue under the same ID with a later due time; Claim's
		// attempt counter carries over because the job keeps its ID.
		if err := s.g.eng.Enqueue(ctx, outQueue, engine.Job{ID: job.ID, Data: j.Data, Due: s.g.now().Add(delay), Attempts: j.Attempts}); err != nil {
			s.log.Error("cannot reschedule; the lease will bring it back", "id", job.ID, "err", err)
		}
	}
}

func errcodeOf(ae *APIError) int {
	if ae == nil {
		return 0
	}
	return ae.Code
}

// retryable reports whether an errcode is worth retrying later.
func retryable(code int) bool {
	switch code {
	case -1, codeFreqLimit, codeInvalidCredential, codeInvalidToken, codeTokenExpired:
		return true
	}
	return false
}

// backoff is exponential with full jitter; rate limits (45009) wait longer.
func (s *Sender) backoff(attempt int, ae *APIError) time.Duration {
	base := s.g.cfg.Outbound.BaseBackoff
	if ae != nil && ae.Code == codeFreqLimit {
		base *= 10
	}
	d := base << min(attempt, 20)
	if d <= 0 || d > s.g.cfg.Outbound.MaxBackoff {
		d = s.g.cfg.Outbound.MaxBackoff
	}
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

func (s *Sender) dead(ctx context.Context, job conv.Outbound, reason string, code, attempts int) {
	s.log.Warn("outbound message dead-lettered", "id", job.ID, "channel", job.Channel, "reason", reason)
	d := DeadLetter{Job: job, Reason: reason, ErrCode: code, Attempts: attempts, At: s.g.now()}
	b, _ := json.Marshal(d)
	if err := s.g.eng.HSet(ctx, outDead, map[string][]byte{job.ID: b}); err != nil {
		// Keep it in the queue rather than lose it; the lease retries.
		s.log.Error("cannot dead-letter; leaving in the outbox", "id", job.ID, "err", err)
		return
	}
	_ = s.g.eng.Ack(ctx, outQueue, job.ID)
	if s.quotaBound(job) {
		s.dropHold(ctx, job)
	}
	s.g.metrics.outbound.WithLabelValues(job.Channel, "dead", strconv.Itoa(code)).Inc()
	if s.OnResult != nil {
		s.OnResult(job, errors.New(reason))
	}
}

// DeadLetters lists the dead-letter list.
func (s *Sender) DeadLetters(ctx context.Context) ([]DeadLetter, error) {
	m, err := s.g.eng.HGetAll(ctx, outDead)
	if err != nil && !errors.Is(err, engine.ErrNotFound) {
		return nil, err
	}
	out := make([]DeadLetter, 0, len(m))
	for _, v := range m {
		var d DeadLetter
		if json.Unmarshal(v, &d) == nil {
			out = append(out, d)
		}
	}
	sortDead(out)
	return out, nil
}

// Replay moves dead letters back into the outbox (all when ids is empty)
// and returns how many it moved. The quota book is not reset: a message
// that died of an exhausted quota dies again until the customer writes.
func (s *Sender) Replay(ctx context.Context, ids ...string) (int, error) {
	all, err := s.DeadLetters(ctx)
	if err != nil {
		return 0, err
	}
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	n := 0
	for _, d := range all {
		if len(ids) > 0 && !want[d.Job.ID] {
			continue
		}
		// A replay is a new delivery: forget the sent marker's absence check
		// is enough, the job was never sent.
		if err := s.Send(ctx, d.Job); err != nil {
			return n, err
		}
		if err := s.g.eng.HDel(ctx, outDead, d.Job.ID); err != nil {
			return n, err
		}
		n++
	}
	if len(ids) > 0 && n < len(ids) {
		return n, fmt.Errorf("%w: %d of %d ids are not in the dead-letter list", conv.ErrNotFound, len(ids)-n, len(ids))
	}
	return n, nil
}

// quotaState is the per-customer send book of one channel.
type quotaState struct {
	WindowStart int64 `json:"w"` // unix ms of the triggering customer message
	Used        int   `json:"u"`
	Limit       int   `json:"l"`
	WindowMS    int64 `json:"d"`
	// Pending holds the sends queued but not yet delivered (job ID → unix
	// ms queued). They will use the allowance, so Quota and refusing sends
	// count them; delivery moves one to Used, a dead letter drops it.
	Pending map[string]int64 `json:"p,omitempty"`
}

// pendingMaxAge is how long a queued send counts as pending. Sends go out
// within seconds; one still retrying after this (or lost to a crash
// between holding and queueing) stops holding a slot.
const pendingMaxAge = 30 * time.Minute

// prune drops pending sends older than pendingMaxAge.
func (q *quotaState) prune(now time.Time) {
	for id, at := range q.Pending {
		if now.UnixMilli()-at > pendingMaxAge.Milliseconds() {
			delete(q.Pending, id)
		}
	}
}

// open reports whether the book's window is open at now.
func (q quotaState) open(now time.Time) bool {
	return q.Limit > 0 && now.UnixMilli() <= q.WindowStart+q.WindowMS
}

// left is the allowance not yet used or held by queued sends.
func (q quotaState) left() int { return max(q.Limit-q.Used-len(q.Pending), 0) }

func quotaKey(channel, user string) string { return quotaPrefix + "{" + channel + ":" + user + "}" }

// quotaFor returns the allowance a trigger gives. Menu clicks, follows and
// scans give 3 messages within a minute on OA; customer messages 5 in 48 h.
func quotaFor(short bool) (int, time.Duration) {
	if short {
		return 3, time.Minute
	}
	return QuotaPerMessage, QuotaWindow
}

// ttl keeps the book an hour past its window, then lets it expire.
func (q quotaState) ttl() time.Duration {
	if q.WindowMS <= 0 {
		return QuotaWindow + time.Hour
	}
	return time.Duration(q.WindowMS)*time.Millisecond + time.Hour
}

// renewed returns the book after a trigger at t: a newer trigger resets it
// to that trigger's allowance (quotas do not accumulate); a zero or older
// one leaves it as it is.
func (q quotaState) renewed(t time.Time, short bool) quotaState {
	if t.IsZero() || t.UnixMilli() <= q.WindowStart {
		return q
	}
	limit, window := quotaFor(short)
	// Sends still queued will be delivered under the new book.
	return quotaState{WindowStart: t.UnixMilli(), Limit: limit, WindowMS: window.Milliseconds(), Pending: q.Pending}
}

// quotaTrigger says which allowance an inbound message opens (WECHAT.md
// §2.1): a customer message opens 5 in 48 h; a follow, custom-menu click or
// QR scan opens 3 in a minute; a msgmenu click and other events open
// nothing (zero time: the existing book applies).
func quotaTrigger(msg conv.Message) (time.Time, bool) {
	if msg.ChannelType != conv.ChannelWeChatOA {
		return msg.CreatedAt, false
	}
	if msg.MenuID != "" {
		return time.Time{}, false
	}
	if msg.Kind == conv.MsgEvent {
		switch msg.Event {
		case "subscribe", "SCAN", "CLICK", "scancode_push", "scancode_waitmsg":
			return msg.CreatedAt, true
		}
		return time.Time{}, false
	}
	return msg.CreatedAt, false
}

// updateQuota edits the customer's send book in one engine transaction:
// change gets the book (the zero book when none is stored; exists says
// which) and reports whether to write it back.
func (s *Sender) updateQuota(ctx context.Context, channel, user string, change func(q *quotaState, exists bool) (bool, error)) error {
	key := quotaKey(channel, user)
	return s.g.eng.Update(ctx, []string{key}, func(tx engine.Tx) error {
		var q quotaState
		b, err := tx.Get(key)
		exists := err == nil
		if exists {
			_ = json.Unmarshal(b, &q)
		}
		write, err := change(&q, exists)
		if err != nil || !write {
			return err
		}
		b, _ = json.Marshal(q)
		tx.Set(key, b, q.ttl())
		return nil
	})
}

// hold marks the send id as pending since now.
func (q *quotaState) hold(id string, now time.Time) {
	if q.Pending == nil {
		q.Pending = map[string]int64{}
	}
	q.Pending[id] = now.UnixMilli()
}

// holdQuota reserves a slot of the customer's allowance for a customer
// message being queued (pending in the book), so Quota and later sends see
// it before it is delivered, and sends queued after it cannot take its
// slot. With job.RefuseOverQuota a closed window or a used-up allowance
// refuses the send; otherwise the send is queued without a slot and
// delivery decides (a dead letter unless a slot frees up). Holding the
// same ID twice counts once.
func (s *Sender) holdQuota(ctx context.Context, job conv.Outbound) error {
	now := s.g.now()
	return s.updateQuota(ctx, job.Channel, job.To, func(q *quotaState, _ bool) (bool, error) {
		*q = q.renewed(job.TriggerAt, job.TriggerShort)
		q.prune(now)
		if _, ok := q.Pending[job.ID]; ok {
			return false, nil
		}
		switch {
		case !q.open(now) && job.RefuseOverQuota:
			return false, fmt.Errorf("%w: no customer message in the last %s", conv.ErrWindowClosed, time.Duration(q.WindowMS)*time.Millisecond)
		case !q.open(now):
			return false, nil // delivery dead-letters it as window_expired
		case q.left() == 0 && job.RefuseOverQuota:
			return false, fmt.Errorf("%w: %d of %d messages for the customer's last message are sent or queued", conv.ErrQuotaExhausted, q.Used+len(q.Pending), q.Limit)
		case q.left() == 0:
			return false, nil // queued without a slot: sent only if one frees up
		}
		q.hold(job.ID, now)
		return true, nil
	})
}

// dropHold removes job from the pending sends of its customer's book (it
// was not queued after all, or it died without being delivered).
func (s *Sender) dropHold(ctx context.Context, job conv.Outbound) {
	err := s.updateQuota(ctx, job.Channel, job.To, func(q *quotaState, _ bool) (bool, error) {
		if _, ok := q.Pending[job.ID]; !ok {
			return false, nil
		}
		delete(q.Pending, job.ID)
		return true, nil
	})
	if err != nil {
		// The hold lapses after pendingMaxAge.
		s.log.Warn("cannot release a held quota slot", "id", job.ID, "err", err)
	}
}

// takeQuota books one customer-facing send. A newer trigger resets the
// book (quotas do not accumulate); an exhausted or expired book refuses
// without calling the API.
func (s *Sender) takeQuota(ctx context.Context, job conv.Outbound) error {
	now := s.g.now()
	return s.updateQuota(ctx, job.Channel, job.To, func(q *quotaState, _ bool) (bool, error) {
		// A zero trigger (msgmenu click, agent follow-up without one) uses
		// the book as it is; no book means no open window.
		*q = q.renewed(job.TriggerAt, job.TriggerShort)
		// A held send moves from pending to used; one queued without a
		// slot may only use what no held send is waiting for. (A refusal
		// here is dead-lettered, which drops the hold.)
		q.prune(now)
		_, held := q.Pending[job.ID]
		delete(q.Pending, job.ID)
		if !q.open(now) {
			return false, conv.ErrWindowClosed
		}
		if q.Used >= q.Limit || (!held && q.left() == 0) {
			return false, conv.ErrQuotaExhausted
		}
		q.Used++
		return true, nil
	})
}

// settleQuota gives the booked send back when the message did not go out
// (a transient failure will retry and book again), so failures never eat
// the customer's quota; the retry holds its slot meanwhile. Window and
// quota errors keep the book as corrected.
func (s *Sender) settleQuota(ctx context.Context, job conv.Outbound, err error) error {
	if err == nil || errors.Is(err, conv.ErrWindowClosed) || errors.Is(err, conv.ErrQuotaExhausted) {
		return err
	}
	now := s.g.now()
	_ = s.updateQuota(ctx, job.Channel, job.To, func(q *quotaState, exists bool) (bool, error) {
		if !exists {
			return false, nil
		}
		if q.Used > 0 {
			q.Used--
		}
		q.hold(job.ID, now) // the retry keeps its slot: held again, not freed
		return true, nil
	})
	return err
}

// exhaustQuota records what the platform told us (45047 / fail_type 6).
func (s *Sender) exhaustQuota(ctx context.Context, channel, user string) {
	_ = s.updateQuota(ctx, channel, user, func(q *quotaState, _ bool) (bool, error) {
		q.Used = q.Limit
		return true, nil
	})
}

// Quota tells how many customer messages may still be sent to user on
// channel given their last message at lastMsg, and until when: the
// allowance less what was delivered and what is queued. The agent console
// shows it next to the reply box.
func (s *Sender) Quota(ctx context.Context, channel, user string, lastMsg time.Time) (remaining int, until time.Time, err error) {
	ch, ok := s.g.byName[channel]
	if !ok {
		return 0, time.Time{}, fmt.Errorf("%w: unknown channel %q", conv.ErrBadInput, channel)
	}
	if ch.cfg.Type == conv.ChannelJSON || ch.cfg.Type == conv.ChannelWeComApp {
		return -1, time.Time{}, nil // no per-customer limit
	}
	var q quotaState
	b, err := s.g.eng.Get(ctx, quotaKey(channel, user))
	if err == nil {
		_ = json.Unmarshal(b, &q)
	} else if !errors.Is(err, engine.ErrNotFound) {
		return 0, time.Time{}, err
	}
	q = q.renewed(lastMsg, false)
	until = time.UnixMilli(q.WindowStart + q.WindowMS)
	if s.g.now().After(until) {
		return 0, until, nil
	}
	q.prune(s.g.now())
	return q.left(), until, nil
}

// deliver sends one message through the right API.
func (s *Sender) deliver(ctx context.Context, job conv.Outbound) error {
	if job.Kind == conv.OutRobot {
		return s.sendRobot(ctx, job)
	}
	ch, ok := s.g.byName[job.Channel]
	if !ok {
		return fmt.Errorf("%w: channel %q is no longer configured", conv.ErrBadInput, job.Channel)
	}
	switch job.Kind {
	case conv.OutTemplate:
		return s.sendTemplate(ctx, ch, job)
	case conv.OutWeComApp:
		return s.sendWeComApp(ctx, ch, job)
	case conv.OutKFEvent:
		return s.sendKFEvent(ctx, ch, job)
	}
	switch ch.cfg.Type {
	case conv.ChannelWeChatOA:
		if err := s.takeQuota(ctx, job); err != nil {
			return err
		}
		err := s.api.call(ctx, oaApp(ch), s.g.cfg.APIBase, "/cgi-bin/message/custom/send", oaCustomBody(job), nil)
		return s.settleQuota(ctx, job, s.mapWindowErr(ctx, job, err))
	case conv.ChannelWeComKF:
		if err := s.takeQuota(ctx, job); err != nil {
			return err
		}
		body := kfBody(job)
		body["touser"], body["open_kfid"] = job.To, job.Account
		body["msgid"] = kfMsgID(job.ID)
		err := s.api.call(ctx, kfApp(ch), s.g.cfg.WeComAPIBase, "/cgi-bin/kf/send_msg", body, nil)
		return s.settleQuota(ctx, job, s.mapWindowErr(ctx, job, err))
	case conv.ChannelWeComApp:
		return s.sendWeComApp(ctx, ch, job)
	case conv.ChannelJSON:
		return s.sendJSONCallback(ctx, ch, job)
	}
	return fmt.Errorf("%w: cannot send on channel type %s", conv.ErrBadInput, ch.cfg.Type)
}

// mapWindowErr turns the platform's window/quota errcodes into the
// sentinels and corrects the local book.
func (s *Sender) mapWindowErr(ctx context.Context, job conv.Outbound, err error) error {
	var ae *APIError
	if !errors.As(err, &ae) {
		return err
	}
	switch ae.Code {
	case codeOutOfWindow:
		return fmt.Errorf("%w: %v", conv.ErrWindowClosed, err)
	case codeOutOfCount, 95001:
		s.exhaustQuota(ctx, job.Channel, job.To)
		return fmt.Errorf("%w: %v", conv.ErrQuotaExhausted, err)
	}
	return err
}

func oaApp(ch *channel) tokenApp {
	return tokenApp{kind: "oa", id: ch.cfg.AppID, secret: ch.cfg.AppSecret}
}

func kfApp(ch *channel) tokenApp {
	return tokenApp{kind: "kf", id: ch.cfg.AppID, secret: ch.cfg.AppSecret, agent: "kf"}
}

func wecomApp(ch *channel) tokenApp {
	return tokenApp{kind: "wecom", id: ch.cfg.AppID, secret: ch.cfg.AppSecret, agent: strconv.Itoa(ch.cfg.AgentID)}
}

// kfMsgID derives the ≤32-byte [0-9a-zA-Z_-] msgid KF accepts, used to
// correlate msg_send_fail events with our jobs.
func kfMsgID(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:16])
}

func oaCustomBody(job conv.Outbound) map[string]any {
	r := job.Reply
	body := map[string]any{"touser": job.To}
	switch r.Kind {
	case conv.ReplyImage:
		body["msgtype"], body["image"] = "image", map[string]any{"media_id": r.MediaID}
	case conv.ReplyNews:
		arts := make([]map[string]string, 0, len(r.Articles))
		for _, a := range r.Articles {
			arts = append(arts, map[string]string{"title": a.Title, "description": a.Description, "url": a.URL, "picurl": a.PicURL})
		}
		body["msgtype"], body["news"] = "news", map[string]any{"articles": arts}
	case conv.ReplyMenu:
		list := make([]map[string]string, 0, len(r.Menu))
		for _, m := range r.Menu {
			list = append(list, map[string]string{"id": m.ID, "content": m.Content})
		}
		body["msgtype"], body["msgmenu"] = "msgmenu", map[string]any{"head_content": r.Head, "list": list, "tail_content": r.Tail}
	default:
		body["msgtype"], body["text"] = "text", map[string]any{"content": r.Text}
	}
	return body
}

func kfBody(job conv.Outbound) map[string]any {
	r := job.Reply
	body := map[string]any{}
	switch r.Kind {
	case conv.ReplyImage:
		body["msgtype"], body["image"] = "image", map[string]any{"media_id": r.MediaID}
	case conv.ReplyNews:
		if len(r.Articles) > 0 {
			a := r.Articles[0]
			body["msgtype"], body["link"] = "link", map[string]any{"title": a.Title, "desc": a.Description, "url": a.URL, "thumb_media_id": r.MediaID}
		}
	case conv.ReplyMenu:
		list := make([]map[string]any, 0, len(r.Menu))
		for _, m := range r.Menu {
			list = append(list, map[string]any{"type": "click", "click": map[string]string{"id": m.ID, "content": m.Content}})
		}
		body["msgtype"], body["msgmenu"] = "msgmenu", map[string]any{"head_content": r.Head, "list": list, "tail_content": r.Tail}
	default:
		body["msgtype"], body["text"] = "text", map[string]any{"content": r.Text}
	}
	return body
}

func (s *Sender) sendKFEvent(ctx context.Context, ch *channel, job conv.Outbound) error {
	if job.Code == "" {
		return fmt.Errorf("%w: send_msg_on_event needs a code", conv.ErrBadInput)
	}
	body := kfBody(job)
	body["code"], body["msgid"] = job.Code, kfMsgID(job.ID)
	err := s.api.call(ctx, kfApp(ch), s.g.cfg.WeComAPIBase, "/cgi-bin/kf/send_msg_on_event", body, nil)
	var ae *APIError
	if errors.As(err, &ae) && (ae.Code == 95018 || ae.Code == 95017 || ae.Code == 40096) {
		// The code expired or was used: the slot is gone for good.
		return fmt.Errorf("%w: %v", conv.ErrWindowClosed, err)
	}
	return err
}

func (s *Sender) sendWeComApp(ctx context.Context, ch *channel, job conv.Outbound) error {
	if ch.cfg.Type != conv.ChannelWeComApp {
		return fmt.Errorf("%w: channel %s is not a wecom_app channel", conv.ErrBadInput, ch.cfg.Name)
	}
	body := map[string]any{"touser": job.To, "agentid": ch.cfg.AgentID, "enable_duplicate_check": 1, "duplicate_check_interval": 1800}
	switch job.Reply.Kind {
	case conv.ReplyMarkdown:
		body["msgtype"], body["markdown"] = "markdown", map[string]any{"content": job.Reply.Text}
	default:
		body["msgtype"], body["text"] = "text", map[string]any{"content": job.Reply.Text}
	}
	return s.api.call(ctx, wecomApp(ch), s.g.cfg.WeComAPIBase, "/cgi-bin/message/send", body, nil)
}

func (s *Sender) sendTemplate(ctx context.Context, ch *channel, job conv.Outbound) error {
	if job.Template == nil || job.Template.TemplateID == "" {
		return fmt.Errorf("%w: template message without template_id", conv.ErrBadInput)
	}
	data := map[string]any{}
	for k, v := range job.Template.Data {
		data[k] = map[string]string{"value": v}
	}
	clientID := job.Template.ClientMsgID
	if clientID == "" {
		clientID = kfMsgID(job.ID) // the platform dedupes per openid+client_msg_id for 10 min
	}
	body := map[string]any{"touser": job.To, "template_id": job.Template.TemplateID, "url": job.Template.URL, "data": data, "client_msg_id": clientID}
	return s.api.call(ctx, oaApp(ch), s.g.cfg.APIBase, "/cgi-bin/message/template/send", body, nil)
}

// sendRobot posts to a WeCom group robot. The robot key is the bearer
// secret (never logged). The robot API has no token; its errcode must be
// checked by hand (silenceper swallows it, WECHAT.md §5.2).
func (s *Sender) sendRobot(ctx context.Context, job conv.Outbound) error {
	// ≤20 messages a minute per robot, shared by all instances: over the
	// limit, wait for the next minute instead of burning an attempt.
	minute := s.g.now().Unix() / 60
	n, err := s.g.eng.IncrBy(ctx, fmt.Sprintf("robot:{%s}:%d", kfMsgID(job.To), minute), 1, 2*time.Minute)
	if err != nil {
		return err
	}
	if n > RobotPerMinute {
		return errRateLimited{until: time.Unix((minute+1)*60, 0)}
	}
	body := map[string]any{}
	if job.Reply.Kind == conv.ReplyMarkdown {
		body["msgtype"], body["markdown"] = "markdown", map[string]any{"content": job.Reply.Text}
	} else {
		body["msgtype"], body["text"] = "text", map[string]any{"content": job.Reply.Text}
	}
	return s.api.do(ctx, s.g.cfg.WeComAPIBase, "/cgi-bin/webhook/send?key="+job.To, "", body, nil)
}

// sendJSONCallback POSTs replies of a json channel to its callback URL,
// signed like inbound calls (docs/json-channel.md).
func (s *Sender) sendJSONCallback(ctx context.Context, ch *channel, job conv.Outbound) error {
	if ch.cfg.CallbackURL == "" {
		return fmt.Errorf("%w: json channel %s has no callback_url for replies that missed the response", conv.ErrBadInput, ch.cfg.Name)
	}
	payload, _ := json.Marshal(map[string]any{"id": job.ID, "user_id": job.To, "replies": []conv.Reply{job.Reply}})
	ts := strconv.FormatInt(s.g.now().Unix(), 10)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ch.cfg.CallbackURL, strings.NewReader(string(payload)))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(jsonHeaderTimestamp, ts)
	req.Header.Set(jsonHeaderSignature, jsonSign(ch.cfg.Token, ts, payload))
	resp, err := s.http.Do(req)
	if err != nil {
		return fmt.Errorf("%w: callback: %v", conv.ErrUnavailable, err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		if resp.StatusCode >= 500 || resp.StatusCode == 429 {
			return &APIError{Code: -1, Msg: "callback answered " + resp.Status, Path: "json callback"}
		}
		return &APIError{Code: resp.StatusCode, Msg: "callback answered " + resp.Status, Path: "json callback"}
	}
	return nil
}

func jsonSign(secret, ts string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts))
	m.Write([]byte("."))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// RobotPerMinute is the WeCom group robot limit (WECHAT.md §3.3).
const RobotPerMinute = 20

// errRateLimited defers a message to a later time without counting an attempt.
type errRateLimited struct{ until time.Time }

func (e errRateLimited) Error() string { return "rate limited until " + e.until.Format(time.RFC3339) }

func sortDead(d []DeadLetter) {
	sort.Slice(d, func(i, j int) bool { return d[i].At.Before(d[j].At) })
}

// ForgetCustomer deletes what the gateway keeps about a customer (the
// quota book). WeChat requires deleting a user's data on unsubscribe.
func (g *Gateway) ForgetCustomer(ctx context.Context, c conv.CustomerID) error {
	channel, user, ok := strings.Cut(string(c), ":")
	if !ok {
		return fmt.Errorf("%w: customer id %q", conv.ErrBadInput, c)
	}
	return g.eng.Del(ctx, quotaKey(channel, user))
}
