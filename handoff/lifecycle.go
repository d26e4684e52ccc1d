package handoff

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"kefu/conv"
	"kefu/engine"
)

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// endSpec describes how a conversation ends.
type endSpec struct {
	state       conv.ConvState
	reason      string
	actor       string
	disposition string
	resolved    bool
	kfCode      string
	// version, when set, must match (timers).
	version int64
	// ticket creates a work order (queue timeout).
	ticket bool
	// notice is told to the customer (within the channel's window).
	notice string
}

// end moves a conversation to closed or abandoned exactly once: the Update
// over conversation, active pointer and owner succeeds for one caller only,
// and only that caller runs the side effects (KF end, notice, ticket,
// events, OnClosed hooks).
func (s *Service) end(ctx context.Context, id conv.ConvID, spec endSpec) (conv.Conversation, error) {
	var c conv.Conversation
	for attempt := 0; attempt < 3; attempt++ {
		cur, err := s.Conversation(ctx, id)
		if err != nil {
			return cur, err
		}
		if cur.State.Terminal() || (spec.version != 0 && cur.Version != spec.version) {
			return cur, errStale
		}
		owner := cur.Agent
		keys := []string{convKey(id), activeKey(cur.Customer)}
		if owner != "" {
			keys = append(keys, agentKey(owner))
		}
		now := s.now()
		err = s.eng.Update(ctx, keys, func(tx engine.Tx) error {
			x, ok, err := getJSON[conv.Conversation](tx, convKey(id))
			if err != nil {
				return err
			}
			if !ok || x.State.Terminal() || (spec.version != 0 && x.Version != spec.version) {
				return errStale
			}
			if x.Agent != owner {
				return errRetry
			}
			if owner != "" {
				a, err := readAgent(tx, owner)
				if err != nil {
					return err
				}
				a.Chats = slices.DeleteFunc(a.Chats, func(v conv.ConvID) bool { return v == id })
				setJSON(tx, agentKey(owner), a, 0)
			}
			if b, err := tx.Get(activeKey(x.Customer)); err == nil && string(b) == string(id) {
				tx.Del(activeKey(x.Customer))
			}
			x.State, x.EndedAt, x.EndReason = spec.state, now, spec.reason
			x.Disposition, x.Resolved = spec.disposition, spec.resolved
			if spec.kfCode != "" {
				x.KFCode = spec.kfCode
			}
			x.Version++
			c = x
			setJSON(tx, convKey(id), x, closedTTL)
			return nil
		})
		if errors.Is(err, errRetry) {
			continue
		}
		if err != nil {
			return c, err
		}
		s.afterEnd(ctx, &c, spec)
		return c, nil
	}
	return c, errStale
}

var errRetry = errors.New("handoff: owner changed, retry")

func (s *Service) afterEnd(ctx context.Context, c *conv.Conversation, spec endSpec) {
	_, _ = s.eng.ZRem(ctx, queueKey(c.Store, c.Skill), string(c.ID))
	_, _ = s.eng.ZRem(ctx, liveKey, string(c.ID))
	s.cancel(ctx, []string{tQueueTimeout, tAcceptTimeout, tNoReply, tIdle}, c.ID)
	// A KF session the desk ends goes to state 4; its end-of-session code
	// (20 s, one message) is the survey slot, handed on in ContactEnded.
	if c.ChannelType == conv.ChannelWeComKF && s.kf != nil && c.KFCode == "" && spec.reason != "customer_left" {
		code, err := s.kf.KFTransfer(ctx, c.Channel, c.Account, c.ExternalUser, kfStateEnded, "")
		if err != nil {
			s.log.Warn("KF end of session failed", "conv_id", c.ID, "err", err)
		}
		c.KFCode = code
	}
	if spec.ticket {
		t := conv.Ticket{ID: "t-" + string(c.ID), Customer: c.Customer, Channel: c.Channel, Store: c.Store, Skill: c.Skill,
			Reason: spec.reason, Conv: c.ID, CreatedAt: s.now()}
		if err := s.addTicket(ctx, t); err != nil {
			s.log.Error("ticket lost", "conv_id", c.ID, "err", err)
		}
	}
	if spec.notice != "" && c.ChannelType != conv.ChannelWeComKF {
		out := conv.Outbound{ID: "ho:e:" + string(c.ID), Kind: conv.OutCustomer, Channel: c.Channel, To: c.ExternalUser,
			Account: c.Account, Reply: conv.Text(spec.notice), TriggerAt: c.LastCustomerMsgAt, Source: "handoff", RefuseOverQuota: true}
		if err := s.send.Send(ctx, out); err != nil && !quotaRefusal(err) {
			s.log.Warn("end notice failed", "conv_id", c.ID, "err", err)
		}
	}
	_ = s.Transcripts.Append(ctx, c.Customer, conv.Turn{Role: conv.TurnSystem, Text: "会话结束：" + spec.reason + " " + spec.disposition, Conv: c.ID, State: c.State})
	ev, outcome := conv.EvClosed, outcomeOf(c.State)
	if c.State == conv.StateAbandoned {
		ev = conv.EvAbandoned
	}
	kv := []string{"disposition", c.Disposition, "resolved", boolStr(c.Resolved), "handed_off", "true"}
	if !c.AcceptedAt.IsZero() {
		kv = append(kv, "handle_ms", fmt.Sprint(c.EndedAt.Sub(c.AcceptedAt).Milliseconds()))
	}
	if c.State == conv.StateAbandoned {
		kv = append(kv, "wait_ms", fmt.Sprint(c.EndedAt.Sub(c.QueuedAt).Milliseconds()))
	}
	s.convEvent(ev, c, spec.actor, spec.reason, kv...)
	s.remember(ctx, *c)
	// The hooks are at least once: a safety-net timer fires them on any
	// instance if this one dies before acking it (ContactEnded.Conv is the
	// idempotency key for hook implementations).
	s.schedule(ctx, tEnded, c, s.now().Add(hookRetry))
	s.runHooks(ctx, c, outcome)
	s.cancel(ctx, []string{tEnded}, c.ID)
	s.publishConv(ctx, c)
	if c.Agent != "" {
		s.publish(ctx, conv.DeskUpdate{Kind: "agent", Agent: c.Agent})
	}
	s.kick() // a seat is free
}

// hookRetry is when the safety-net timer re-runs the OnClosed hooks of a
// conversation whose instance died before running them.
const hookRetry = time.Minute

func (s *Service) runHooks(ctx context.Context, c *conv.Conversation, outcome string) {
	ended := conv.ContactEnded{Conv: c.ID, Customer: c.Customer, Channel: c.Channel, ChannelType: c.ChannelType,
		ExternalUser: c.ExternalUser, Account: c.Account, Store: c.Store, Agent: c.Agent, HandedOff: true,
		Entries: s.entries(ctx, c), Disposition: c.Disposition, Resolved: c.Resolved, Outcome: outcome,
		StartedAt: c.StartedAt, EndedAt: c.EndedAt, LastCustomerMsgAt: c.LastCustomerMsgAt, KFCode: c.KFCode}
	s.hooksMu.RLock()
	hooks := slices.Clone(s.hooks)
	s.hooksMu.RUnlock()
	for _, h := range hooks {
		h(ctx, ended)
	}
}

func outcomeOf(st conv.ConvState) string {
	if st == conv.StateAbandoned {
		return "abandoned"
	}
	return "closed"
}

func boolStr(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

// entries are the KB entries the bot answered with during the contact.
func (s *Service) entries(ctx context.Context, c *conv.Conversation) []string {
	turns, err := s.Transcripts.Read(ctx, c.Customer)
	if err != nil {
		return nil
	}
	var out []string
	from := c.StartedAt.Add(-contactLookback)
	for _, t := range turns {
		if t.Role == conv.TurnBot && t.EntryID != "" && !t.At.Before(from) && !slices.Contains(out, t.EntryID) {
			out = append(out, t.EntryID)
		}
	}
	return out
}

// remember keeps a short history of ended conversations per customer for
// the console's profile panel.
func (s *Service) remember(ctx context.Context, c conv.Conversation) {
	key := historyKey(c.Customer)
	_ = s.eng.Update(ctx, []string{key}, func(tx engine.Tx) error {
		h, _, err := getJSON[[]conv.Conversation](tx, key)
		if err != nil {
			h = nil
		}
		h = slices.DeleteFunc(h, func(x conv.Conversation) bool { return x.ID == c.ID })
		h = append([]conv.Conversation{c}, h...)
		if len(h) > historyLen {
			h = h[:historyLen]
		}
		setJSON(tx, key, h, closedTTL)
		return nil
	})
}

// Run fires durable timers (queue timeout, offer timeout, no-reply
// reminder, idle close) and dispatches queued conversations until ctx
// ends. Timers are engine queue jobs claimed with a lease, so each fires
// on one instance; the state change inside is an Update guarded by the
// conversation version, so a timer re-claimed after a crash is a no-op.
func (s *Service) Run(ctx context.Context) error {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var trimmed time.Time
	for {
		if _, err := s.Dispatch(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("dispatch failed", "err", err)
		}
		if time.Since(trimmed) > time.Hour {
			trimmed = time.Now()
			if err := s.trimTickets(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("ticket retention failed", "err", err)
			}
		}
		for s.FireTimers(ctx) > 0 && ctx.Err() == nil {
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-s.wake:
		}
	}
}

// FireTimers runs one batch of due timers and returns how many it handled.
func (s *Service) FireTimers(ctx context.Context) int {
	jobs, err := s.eng.Claim(ctx, timerQueue, s.now(), timerLease, 32)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("timer claim failed", "err", err)
		}
		return 0
	}
	for _, j := range jobs {
		var t timer
		if json.Unmarshal(j.Data, &t) != nil {
			_ = s.eng.Ack(ctx, timerQueue, j.ID)
			continue
		}
		if err := s.fire(ctx, t); err != nil {
			// Retry soon with backoff instead of waiting out the whole lease;
			// if even this fails, the lease brings the timer back.
			retry := min(time.Second<<min(j.Attempts, 5), timerLease)
			s.log.Warn("timer failed; will retry", "kind", t.Kind, "conv_id", t.Conv, "in", retry, "err", err)
			_ = s.eng.Enqueue(ctx, timerQueue, engine.Job{ID: j.ID, Data: j.Data, Due: s.now().Add(retry)})
			continue
		}
		// Only as claimed: fire may have re-armed this very timer (an
		// idle timer after activity), and so may a concurrent action
		// (every requeue replaces its timeout); a plain Ack deleted the
		// new one and the chat never idle-closed.
		_, _ = s.eng.AckClaimed(ctx, timerQueue, j)
	}
	return len(jobs)
}

func (s *Service) fire(ctx context.Context, t timer) error {
	c, err := s.Conversation(ctx, t.Conv)
	if errors.Is(err, conv.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	now := s.now()
	switch t.Kind {
	case tQueueTimeout:
		// Every (re)queue replaces this job with the new version, so an
		// older version is a leftover.
		if c.State != conv.StateQueued || c.Version != t.Version {
			return nil
		}
		_, err := s.end(ctx, c.ID, endSpec{state: conv.StateAbandoned, reason: "queue_timeout", actor: "timer", version: c.Version,
			ticket: true, notice: s.cfg.Messages.QueueTimeout})
		return ignoreStale(err)
	case tAcceptTimeout:
		if c.State == conv.StateQueued && c.Version == t.Version+1 {
			// Re-claimed after a crash in offerTimedOut between the state
			// change and the queue writes: finish them.
			return s.ensureQueued(ctx, &c)
		}
		if c.State != conv.StateAssigned || c.Accepted || c.Version != t.Version {
			return nil
		}
		return ignoreStale(s.offerTimedOut(ctx, c))
	case tNoReply:
		if c.State != conv.StateAssigned || !c.LastAgentMsgAt.Before(c.LastCustomerMsgAt) {
			return nil
		}
		s.emit(conv.Event{Type: conv.EvNoReplyWarning, Conv: c.ID, Customer: c.Customer, Store: c.Store, Channel: c.Channel, Agent: c.Agent, Actor: "timer"})
		s.publish(ctx, conv.DeskUpdate{Kind: "reminder", Conv: c.ID, Store: c.Store, Agent: c.Agent, State: c.State})
		return nil
	case tEnded:
		if c.State.Terminal() {
			s.runHooks(ctx, &c, outcomeOf(c.State))
		}
		return nil
	case tIdle:
		if c.State != conv.StateAssigned {
			return nil
		}
		last := c.LastCustomerMsgAt
		if c.LastAgentMsgAt.After(last) {
			last = c.LastAgentMsgAt
		}
		if c.AcceptedAt.After(last) {
			last = c.AcceptedAt
		}
		if due := last.Add(s.cfg.IdleClose); now.Before(due) {
			s.schedule(ctx, tIdle, &c, due)
			return nil
		}
		_, err := s.end(ctx, c.ID, endSpec{state: conv.StateClosed, reason: "idle", actor: "timer", notice: s.cfg.Messages.IdleClosed})
		return ignoreStale(err)
	}
	return nil
}

// offerTimedOut takes an unaccepted chat back from its agent and queues it
// again at its old place; the dispatcher offers it to the next agent.
func (s *Service) offerTimedOut(ctx context.Context, c conv.Conversation) error {
	agent, id := c.Agent, c.ID
	err := s.eng.Update(ctx, []string{convKey(id), agentKey(agent)}, func(tx engine.Tx) error {
		cur, ok, err := getJSON[conv.Conversation](tx, convKey(id))
		if err != nil {
			return err
		}
		if !ok || cur.State != conv.StateAssigned || cur.Accepted || cur.Version != c.Version {
			return errStale
		}
		a, err := readAgent(tx, agent)
		if err != nil {
			return err
		}
		a.Chats = slices.DeleteFunc(a.Chats, func(v conv.ConvID) bool { return v == id })
		if !slices.Contains(cur.Declined, agent) {
			cur.Declined = append(cur.Declined, agent)
		}
		cur.State, cur.Agent = conv.StateQueued, ""
		// Waiting for an agent who never accepted must not use up the
		// customer's whole wait: keep at least one more offer round.
		if floor := s.now().Add(s.cfg.AcceptTimeout); cur.QueueDeadline.Before(floor) {
			cur.QueueDeadline = floor
		}
		cur.Version++
		c = cur
		setJSON(tx, convKey(id), cur, 0)
		setJSON(tx, agentKey(agent), a, 0)
		return nil
	})
	if err != nil {
		return err
	}
	_, _ = s.eng.ZRem(ctx, liveKey, string(id))
	if err := s.ensureQueued(ctx, &c); err != nil {
		return err
	}
	s.emit(conv.Event{Type: conv.EvOfferTimeout, Conv: id, Customer: c.Customer, Store: c.Store, Channel: c.Channel, Agent: agent, Actor: "timer"})
	s.publishConv(ctx, &c)
	s.publish(ctx, conv.DeskUpdate{Kind: "agent", Agent: agent})
	s.kick()
	return nil
}
