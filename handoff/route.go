package handoff

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"kefu/conv"
	"kefu/engine"
)

// SkillExtra is the conv.Message.Extra key that asks for a queue skill
// (e.g. set by a menu click or a scene); empty means the store's general
// queue.
const SkillExtra = "skill"

// Handoff queues msg's customer for a human (the router's OnHandoff hook).
// Outside business hours or with a full queue it creates a ticket and tells
// the customer so instead. It is idempotent per message: a redelivered
// message finds the same conversation and sends nothing twice.
func (s *Service) Handoff(ctx context.Context, msg conv.Message, reason string) error {
	if msg.Customer == "" {
		return fmt.Errorf("%w: handoff needs a customer", conv.ErrBadInput)
	}
	if _, ok, err := s.Active(ctx, msg.Customer); err != nil || ok {
		return err // already with the desk
	}
	now := s.now()
	skill := msg.Extra[SkillExtra]
	open, err := openAt(s.tree, msg.Store, now, s.loc)
	if err != nil {
		s.log.Warn("bad business hours; treating the desk as open", "store", msg.Store, "err", err)
		open = true
	}
	if !open {
		return s.refuse(ctx, msg, skill, "closed_hours", s.cfg.Messages.ClosedHours)
	}
	q := queueKey(msg.Store, skill)
	id := newConvID(msg, msgTime(msg, now))
	if n, err := s.eng.ZCard(ctx, q); err != nil {
		return err
	} else if n >= int64(s.cfg.QueueCapacity) {
		if _, err := s.eng.ZScore(ctx, q, string(id)); err != nil { // not a redelivery
			return s.refuse(ctx, msg, skill, "queue_full", s.cfg.Messages.QueueFull)
		}
	}
	c := conv.Conversation{ID: id, Customer: msg.Customer, Channel: msg.Channel, ChannelType: msg.ChannelType,
		Account: msg.Account, ExternalUser: msg.ExternalUser, Store: msg.Store, Skill: skill, State: conv.StateQueued,
		Reason: reason, Version: 1, StartedAt: now, QueuedAt: now, QueueDeadline: now.Add(s.cfg.MaxWait),
		LastCustomerMsgAt: msgTime(msg, now), LastNoticeAt: now}
	// The queue timeout is scheduled before the conversation exists: if
	// this instance dies right after creating it, the timer still frees the
	// customer (abandoned with a ticket) instead of leaving them queued
	// outside every queue. (The customer has no live conversation, so this
	// replaces no live timer; for a redelivery of an ended one it is a no-op.)
	s.schedule(ctx, tQueueTimeout, &c, c.QueueDeadline)
	created := false
	var other conv.ConvID
	err = s.eng.Update(ctx, []string{activeKey(msg.Customer), convKey(id)}, func(tx engine.Tx) error {
		created, other = false, ""
		if cur, ok, err := getJSON[conv.Conversation](tx, convKey(id)); err != nil {
			return err
		} else if ok {
			c = cur
			return nil
		}
		// end() deletes the pointer in the same Update that ends a
		// conversation, so an existing pointer means a live conversation
		// (a concurrent handoff of the same customer won the race).
		if b, err := tx.Get(activeKey(msg.Customer)); err == nil && string(b) != string(id) {
			other = conv.ConvID(b)
			return nil
		}
		setJSON(tx, convKey(id), c, 0)
		tx.Set(activeKey(msg.Customer), []byte(id), 0)
		created = true
		return nil
	})
	if err != nil || other != "" {
		return err
	}
	if c.State != conv.StateQueued {
		return nil
	}
	if err := s.ensureQueued(ctx, &c); err != nil {
		return err
	}
	if created {
		_ = s.Transcripts.Append(ctx, c.Customer, conv.Turn{At: now, Role: conv.TurnSystem, Text: "转人工：" + reason, Conv: c.ID, State: conv.StateQueued})
		s.convEvent(conv.EvQueued, &c, "bot", reason)
	}
	pos, wait := s.position(ctx, &c, created)
	text := render(s.cfg.Messages.Queued, "{position}", strconv.Itoa(pos), "{wait}", waitText(wait))
	if err := s.queueNotice(ctx, &c, msg, text, created); err != nil {
		s.log.Warn("queue notice failed", "conv_id", c.ID, "err", err)
	}
	s.publishConv(ctx, &c)
	s.kick()
	return nil
}

// QueueNoticeReplacesReply reports whether the router must not send the
// bot's own "transferring you" reply for msg's handoff: on WeChat KF the
// session is in state 2 once Handoff returns, where send_msg is refused,
// and the queue notice sent with the state-2 msg_code takes its place.
func QueueNoticeReplacesReply(msg conv.Message) bool {
	return msg.ChannelType == conv.ChannelWeComKF
}

func msgTime(msg conv.Message, now time.Time) time.Time {
	if !msg.CreatedAt.IsZero() {
		return msg.CreatedAt
	}
	return now
}

// queueNotice tells a newly queued customer their position: KF through the
// queue-notice msg_code from service_state/trans to 2 (send_msg is not
// allowed in state 2), other channels as one customer message.
func (s *Service) queueNotice(ctx context.Context, c *conv.Conversation, msg conv.Message, text string, first bool) error {
	if c.ChannelType == conv.ChannelWeComKF && s.kf != nil {
		if !first {
			return nil // the code was used (or lost) on the first attempt
		}
		code, err := s.kf.KFTransfer(ctx, c.Channel, c.Account, c.ExternalUser, kfStateQueue, "")
		if err != nil || code == "" {
			return err
		}
		return s.send.Send(ctx, conv.Outbound{ID: "ho:n:" + msg.ID, Kind: conv.OutKFEvent, Channel: c.Channel,
			To: c.ExternalUser, Account: c.Account, Code: code, Reply: conv.Text(text), Source: "handoff"})
	}
	return s.send.Send(ctx, conv.Outbound{ID: "ho:n:" + msg.ID, Kind: conv.OutCustomer, Channel: c.Channel,
		To: c.ExternalUser, Account: c.Account, Reply: conv.Text(text), TriggerAt: msgTime(msg, s.now()), Source: "handoff",
		RefuseOverQuota: first})
}

// position returns how many are ahead of c in its queue and an expected
// wait from the number of online agents who can take it.
// A conversation just queued is last, so its position is the queue's
// length; later ones scan the queue up to their own entry.
func (s *Service) position(ctx context.Context, c *conv.Conversation, justQueued bool) (int, time.Duration) {
	pos := 0
	if justQueued {
		if n, err := s.eng.ZCard(ctx, queueKey(c.Store, c.Skill)); err == nil && n > 0 {
			pos = int(n - 1)
		}
	} else if ahead, err := s.eng.ZRangeByScore(ctx, queueKey(c.Store, c.Skill), math.Inf(-1), float64(c.QueuedAt.UnixMilli()), 0); err == nil {
		for _, it := range ahead {
			if it.Member != string(c.ID) {
				pos++
			}
		}
	}
	agents := 0
	for name, a := range s.recentAgents(ctx) {
		if a.Status == conv.AgentOnline && s.serves(s.roster[name], c) {
			agents++
		}
	}
	slots := max(agents, 1)
	wait := time.Duration(pos/slots+1) * s.cfg.AvgHandle
	return pos, wait
}

// refuse creates a ticket and tells the customer honestly why no human is
// coming now.
func (s *Service) refuse(ctx context.Context, msg conv.Message, skill, reason, text string) error {
	t := conv.Ticket{ID: "t-" + string(newConvID(msg, msgTime(msg, s.now()))), Customer: msg.Customer, Channel: msg.Channel,
		Store: msg.Store, Skill: skill, Reason: reason, Text: msg.Text, CreatedAt: s.now()}
	if err := s.addTicket(ctx, t); err != nil {
		return err
	}
	_ = s.Transcripts.Append(ctx, msg.Customer, conv.Turn{Role: conv.TurnSystem, Text: "未能转人工（" + reason + "），已创建服务单 " + t.ID})
	out := conv.Outbound{ID: "ho:n:" + msg.ID, Kind: conv.OutCustomer, Channel: msg.Channel, To: msg.ExternalUser,
		Account: msg.Account, Reply: conv.Text(text), TriggerAt: msgTime(msg, s.now()), Source: "handoff"}
	if err := s.send.Send(ctx, out); err != nil {
		s.log.Warn("refusal notice failed", "customer", msg.Customer, "err", err)
	}
	return nil
}

// Tickets are kept as JSON members of one sorted set scored by minus
// their creation time, so the newest come first in a single read; a
// per-ticket marker makes creation idempotent (a redelivered message
// creates no second ticket).
const (
	ticketRetention = 90 * 24 * time.Hour
	ticketsListed   = 200
)

func ticketMarker(id string) string { return "ho:tk:" + id }

func (s *Service) addTicket(ctx context.Context, t conv.Ticket) error {
	first, err := s.eng.SetNX(ctx, ticketMarker(t.ID), []byte("1"), ticketRetention)
	if err != nil || !first {
		return err
	}
	b, _ := json.Marshal(t)
	if err := s.eng.ZAdd(ctx, ticketsKey, engine.ZItem{Member: string(b), Score: -float64(t.CreatedAt.UnixMilli())}); err != nil {
		_ = s.eng.Del(ctx, ticketMarker(t.ID))
		return err
	}
	s.emit(conv.Event{Type: conv.EvTicketCreated, Conv: t.Conv, Customer: t.Customer, Store: t.Store, Channel: t.Channel,
		Reason: t.Reason, Data: map[string]string{"ticket": t.ID}})
	s.publish(ctx, conv.DeskUpdate{Kind: "ticket", Store: t.Store})
	return nil
}

// Route is the router Stage: messages of customers whose conversation is
// queued or assigned go to the desk (transcript + live update), not to the
// bot. While queued, a customer who writes again is told their position,
// at most once per message and per NoticeEvery (each costs an OA send).
func (s *Service) Route(ctx context.Context, msg conv.Message) ([]conv.Reply, bool, error) {
	c, ok, err := s.Active(ctx, msg.Customer)
	if err != nil || !ok {
		return nil, false, err
	}
	return s.routeActive(ctx, c, msg)
}

// routeActive takes a message of a customer in conversation c. It is
// split from Route so that the common case, no conversation, does not pay
// for c escaping to the heap (the update below captures it).
func (s *Service) routeActive(ctx context.Context, c conv.Conversation, msg conv.Message) ([]conv.Reply, bool, error) {
	if msg.Kind == conv.MsgEvent {
		return s.routeEvent(ctx, c, msg)
	}
	now := s.now()
	at := msgTime(msg, now)
	notice := false
	err := s.eng.Update(ctx, []string{convKey(c.ID)}, func(tx engine.Tx) error {
		cur, ok, err := getJSON[conv.Conversation](tx, convKey(c.ID))
		if err != nil || !ok {
			return err
		}
		c = cur
		if c.State.Terminal() {
			return nil // ended meanwhile: keep its retention TTL
		}
		if at.After(c.LastCustomerMsgAt) {
			c.LastCustomerMsgAt = at
		}
		notice = c.State == conv.StateQueued && c.ChannelType != conv.ChannelWeComKF && now.Sub(c.LastNoticeAt) >= s.cfg.NoticeEvery
		if notice {
			c.LastNoticeAt = now
		}
		setJSON(tx, convKey(c.ID), c, 0)
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	if c.State.Terminal() {
		return nil, false, nil
	}
	text := msg.Text
	if text == "" {
		text = "[" + string(msg.Kind) + "]"
	}
	if err := s.Transcripts.Append(ctx, msg.Customer, conv.Turn{At: at, Role: conv.TurnCustomer, Text: text, Kind: msg.Kind,
		Conv: c.ID, MsgID: msg.ID, State: c.State}); err != nil {
		return nil, false, err
	}
	s.publishConv(ctx, &c)
	if c.State == conv.StateAssigned {
		s.schedule(ctx, tNoReply, &c, now.Add(s.cfg.NoReplyReminder))
		return nil, true, nil
	}
	if !notice {
		return nil, true, nil
	}
	pos, wait := s.position(ctx, &c, false)
	return []conv.Reply{conv.Text(render(s.cfg.Messages.StillQueued, "{position}", strconv.Itoa(pos), "{wait}", waitText(wait)))}, true, nil
}

// routeEvent ends the conversation when the customer leaves (OA
// unsubscribe) or the KF session ends in the WeCom client; other events
// go on to the router.
func (s *Service) routeEvent(ctx context.Context, c conv.Conversation, msg conv.Message) ([]conv.Reply, bool, error) {
	switch {
	case msg.Event == "unsubscribe":
		_, err := s.end(ctx, c.ID, endSpec{state: conv.StateAbandoned, reason: "customer_left", actor: "customer"})
		return nil, false, ignoreStale(err)
	case msg.ChannelType == conv.ChannelWeComKF && msg.Event == "session_status_change" && msg.Extra["change_type"] == "3":
		_, err := s.end(ctx, c.ID, endSpec{state: conv.StateClosed, reason: "kf_session_ended", actor: "wecom", kfCode: msg.Code})
		return nil, true, ignoreStale(err)
	}
	return nil, false, nil
}

func ignoreStale(err error) error {
	if errors.Is(err, errStale) {
		return nil
	}
	return err
}

// AgentMessage records a message an agent typed in the WeCom client for a
// KF customer (sync_msg origin 5, which the router does not send to the
// bot) so it appears in the transcript.
func (s *Service) AgentMessage(ctx context.Context, msg conv.Message) error {
	c, ok, err := s.Active(ctx, msg.Customer)
	if err != nil {
		return err
	}
	t := conv.Turn{At: msgTime(msg, s.now()), Role: conv.TurnAgent, Text: msg.Text, Kind: msg.Kind, Agent: msg.ServicerID, MsgID: msg.ID}
	if ok {
		t.Conv, t.State = c.ID, c.State
		_ = s.eng.Update(ctx, []string{convKey(c.ID)}, func(tx engine.Tx) error {
			cur, ok, err := getJSON[conv.Conversation](tx, convKey(c.ID))
			if err != nil || !ok || cur.State.Terminal() {
				return err
			}
			cur.LastAgentMsgAt = t.At
			setJSON(tx, convKey(c.ID), cur, 0)
			return nil
		})
		defer s.publishConv(ctx, &c)
	}
	return s.Transcripts.Append(ctx, msg.Customer, t)
}
