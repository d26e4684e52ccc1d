package handoff

import (
	"context"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"kefu/conv"
	"kefu/engine"
)

// Limits on what agents type.
const (
	maxReplyRunes = 600 // KF text is ≤2048 bytes; 600 CJK runes stay under it
	maxNoteRunes  = 2000
	historyLen    = 20
	// contactLookback is how far before the handoff bot answers still count
	// as part of the contact (KB entries in ContactEnded).
	contactLookback = time.Hour
)

var clientIDRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)

func isSupervisor(p conv.Principal) bool {
	return p.Role == conv.RoleSupervisor || p.Role == conv.RoleAdmin
}

// visible reports whether p may see data of store. Admins, and agents or
// supervisors configured without stores, see every store; a store
// manager sees only their own.
func (s *Service) visible(p conv.Principal, store conv.StoreID) bool {
	if p.Role == conv.RoleAdmin || (len(p.Stores) == 0 && p.Role != conv.RoleStoreManager) {
		return true
	}
	return p.CanSee(s.tree, store)
}

func (s *Service) canRead(p conv.Principal, c *conv.Conversation) bool {
	return c.Agent == p.User || s.visible(p, c.Store)
}

func forbidden(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{conv.ErrForbidden}, args...)...)
}

func badInput(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{conv.ErrBadInput}, args...)...)
}

func conflict(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{conv.ErrConflict}, args...)...)
}

// load reads a conversation p may read.
func (s *Service) load(ctx context.Context, p conv.Principal, id conv.ConvID) (conv.Conversation, error) {
	if id == "" {
		return conv.Conversation{}, badInput("conversation id is required")
	}
	c, err := s.Conversation(ctx, id)
	if err != nil {
		return c, err
	}
	if !s.canRead(p, &c) {
		return c, forbidden("conversation %s belongs to store %s", id, c.Store)
	}
	return c, nil
}

// Chat returns a conversation and the customer's transcript.
func (s *Service) Chat(ctx context.Context, p conv.Principal, id conv.ConvID) (conv.Conversation, []conv.Turn, error) {
	c, err := s.load(ctx, p, id)
	if err != nil {
		return c, nil, err
	}
	turns, err := s.Transcripts.Read(ctx, c.Customer)
	return c, turns, err
}

// loaded is one result of loadConvs.
type loaded struct {
	c   conv.Conversation
	err error
}

// loadConvs reads conversations concurrently (lists of the console are
// read on every live update; one round trip of latency, not one per chat).
func (s *Service) loadConvs(ctx context.Context, ids []conv.ConvID) []loaded {
	out := make([]loaded, len(ids))
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			c, err := s.Conversation(ctx, id)
			out[i] = loaded{c, err}
		}()
	}
	wg.Wait()
	return out
}

// Queue lists the queued conversations p may see, longest waiting first.
func (s *Service) Queue(ctx context.Context, p conv.Principal) ([]conv.Conversation, error) {
	queues, err := s.eng.ZRangeByScore(ctx, queuesKey, math.Inf(-1), math.Inf(1), 0)
	if err != nil {
		return nil, err
	}
	var ids []conv.ConvID
	for _, q := range queues {
		items, err := s.eng.ZRangeByScore(ctx, q.Member, math.Inf(-1), math.Inf(1), 0)
		if err != nil {
			return nil, err
		}
		for _, it := range items {
			ids = append(ids, conv.ConvID(it.Member))
		}
	}
	out := []conv.Conversation{}
	for _, l := range s.loadConvs(ctx, ids) {
		if l.err == nil && l.c.State == conv.StateQueued && s.visible(p, l.c.Store) {
			out = append(out, l.c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].QueuedAt.Before(out[j].QueuedAt) })
	return out, nil
}

// Mine lists the conversations assigned to p.
func (s *Service) Mine(ctx context.Context, p conv.Principal) ([]conv.Conversation, error) {
	a, err := s.agent(ctx, p.User)
	if err != nil {
		return nil, err
	}
	out := []conv.Conversation{}
	for _, l := range s.loadConvs(ctx, a.Chats) {
		if l.err == nil && l.c.State == conv.StateAssigned && l.c.Agent == p.User {
			out = append(out, l.c)
		}
	}
	return out, nil
}

// Ongoing lists assigned conversations p may see (supervisor overview).
func (s *Service) Ongoing(ctx context.Context, p conv.Principal) ([]conv.Conversation, error) {
	items, err := s.eng.ZRangeByScore(ctx, liveKey, math.Inf(-1), math.Inf(1), 0)
	if err != nil {
		return nil, err
	}
	ids := make([]conv.ConvID, len(items))
	for i, it := range items {
		ids[i] = conv.ConvID(it.Member)
	}
	out := []conv.Conversation{}
	for i, l := range s.loadConvs(ctx, ids) {
		switch {
		case errors.Is(l.err, conv.ErrNotFound) || (l.err == nil && l.c.State != conv.StateAssigned):
			_, _ = s.eng.ZRem(ctx, liveKey, string(ids[i])) // left behind by a crash
		case l.err == nil && s.canRead(p, &l.c):
			out = append(out, l.c)
		}
	}
	return out, nil
}

// Agents lists agents with their live state: everyone for supervisors,
// agents in scope for store managers, oneself for an agent.
func (s *Service) Agents(ctx context.Context, p conv.Principal) ([]conv.AgentInfo, error) {
	out := []conv.AgentInfo{}
	for _, name := range s.names {
		prof := s.roster[name]
		switch {
		case isSupervisor(p) || name == p.User:
		case p.Role == conv.RoleStoreManager && slices.ContainsFunc(prof.Stores, func(st conv.StoreID) bool { return s.visible(p, st) }):
		default:
			continue
		}
		a, err := s.agent(ctx, name)
		if err != nil {
			return nil, err
		}
		chats := a.Chats
		if chats == nil {
			chats = []conv.ConvID{}
		}
		out = append(out, conv.AgentInfo{AgentProfile: prof, Status: a.Status, Chats: chats})
	}
	return out, nil
}

// SetStatus sets p's availability; going online triggers dispatch.
func (s *Service) SetStatus(ctx context.Context, p conv.Principal, st conv.AgentStatus) error {
	switch st {
	case conv.AgentOnline, conv.AgentAway, conv.AgentOffline:
	default:
		return badInput("status must be online, away or offline, got %q", st)
	}
	if _, ok := s.roster[p.User]; !ok {
		return forbidden("%s is not an agent", p.User)
	}
	err := s.eng.Update(ctx, []string{agentKey(p.User)}, func(tx engine.Tx) error {
		a, err := readAgent(tx, p.User)
		if err != nil {
			return err
		}
		a.Status = st
		setJSON(tx, agentKey(p.User), a, 0)
		return nil
	})
	if err != nil {
		return err
	}
	s.emit(conv.Event{Type: conv.EvAgentStatus, Agent: p.User, Actor: p.User, Reason: string(st)})
	s.publish(ctx, conv.DeskUpdate{Kind: "agent", Agent: p.User})
	if st != conv.AgentOnline {
		// Offers not yet accepted go to the next agent now rather than
		// after the accept timeout; accepted chats stay with their owner.
		a, err := s.agent(ctx, p.User)
		if err == nil {
			for _, id := range a.Chats {
				if c, err := s.Conversation(ctx, id); err == nil && c.State == conv.StateAssigned && !c.Accepted && c.Agent == p.User {
					_ = ignoreStale(s.offerTimedOut(ctx, c))
				}
			}
		}
	}
	s.kick()
	return nil
}

// Accept takes an offered chat: the customer gets the greeting, KF moves
// to state 3 with the agent as servicer.
func (s *Service) Accept(ctx context.Context, p conv.Principal, id conv.ConvID) error {
	c, err := s.load(ctx, p, id)
	if err != nil {
		return err
	}
	if c.State != conv.StateAssigned || c.Agent != p.User {
		return forbidden("conversation %s is not offered to you", id)
	}
	if c.Accepted {
		return nil
	}
	now := s.now()
	err = s.eng.Update(ctx, []string{convKey(id)}, func(tx engine.Tx) error {
		cur, ok, err := getJSON[conv.Conversation](tx, convKey(id))
		if err != nil {
			return err
		}
		if !ok || cur.State != conv.StateAssigned || cur.Agent != p.User {
			return conflict("conversation %s changed; reload", id)
		}
		if cur.Accepted {
			c = cur
			return nil
		}
		cur.Accepted, cur.AcceptedAt = true, now
		cur.Version++
		c = cur
		setJSON(tx, convKey(id), cur, 0)
		return nil
	})
	if err != nil {
		return err
	}
	s.cancel(ctx, []string{tAcceptTimeout}, id)
	s.schedule(ctx, tIdle, &c, now.Add(s.cfg.IdleClose))
	s.convEvent(conv.EvAccepted, &c, p.User, "", "wait_ms", fmt.Sprint(now.Sub(c.QueuedAt).Milliseconds()))
	s.greet(ctx, &c)
	s.publishConv(ctx, &c)
	return nil
}

// greet sends the greeting template with the agent's name and number (or,
// for KF, moves the session to the agent in WeCom, which greets natively).
func (s *Service) greet(ctx context.Context, c *conv.Conversation) {
	prof := s.roster[c.Agent]
	name := prof.Display
	if name == "" {
		name = prof.Name
	}
	number := prof.Number
	if number == "" {
		number = prof.Name
	}
	text := render(s.cfg.Messages.Greeting, "{name}", name, "{number}", number)
	if c.ChannelType == conv.ChannelWeComKF && s.kf != nil {
		servicer := prof.WeComUserID
		if servicer == "" {
			servicer = prof.Name
		}
		if _, err := s.kf.KFTransfer(ctx, c.Channel, c.Account, c.ExternalUser, kfStateHuman, servicer); err != nil {
			s.log.Warn("KF transfer to servicer failed", "conv_id", c.ID, "err", err)
		}
		_ = s.Transcripts.Append(ctx, c.Customer, conv.Turn{Role: conv.TurnSystem, Text: "已转给企业微信接待人员 " + servicer, Conv: c.ID, State: c.State})
		return
	}
	if text == "" {
		return
	}
	if rem, _, err := s.remaining(ctx, c); err != nil || rem == 0 || rem == 1 {
		return // keep the customer's last send for the agent's answer
	}
	out := conv.Outbound{ID: "ho:g:" + string(c.ID) + ":" + c.Agent, Kind: conv.OutCustomer, Channel: c.Channel, To: c.ExternalUser,
		Account: c.Account, Reply: conv.Text(text), TriggerAt: c.LastCustomerMsgAt, Source: "agent", RefuseOverQuota: true}
	if err := s.send.Send(ctx, out); err != nil {
		if !quotaRefusal(err) {
			s.log.Warn("greeting failed", "conv_id", c.ID, "err", err)
		}
		return
	}
	_ = s.Transcripts.Append(ctx, c.Customer, conv.Turn{Role: conv.TurnAgent, Text: text, Agent: c.Agent, Conv: c.ID, State: c.State})
}

// quotaRefusal reports whether err is the sender refusing a message the
// customer's allowance or window cannot cover.
func quotaRefusal(err error) bool {
	return errors.Is(err, conv.ErrQuotaExhausted) || errors.Is(err, conv.ErrWindowClosed)
}

// Quota tells the reply box what the channel still allows.
func (s *Service) Quota(ctx context.Context, p conv.Principal, id conv.ConvID) (conv.QuotaInfo, error) {
	c, err := s.load(ctx, p, id)
	if err != nil {
		return conv.QuotaInfo{}, err
	}
	return s.quota(ctx, &c), nil
}

func (s *Service) quota(ctx context.Context, c *conv.Conversation) conv.QuotaInfo {
	if c.ChannelType == conv.ChannelWeComKF && s.kf != nil {
		return conv.QuotaInfo{Remaining: 0, Note: "微信客服会话已转入企业微信（状态3），请在企业微信客户端回复；此处显示其消息", CanReply: false}
	}
	rem, until, err := s.remaining(ctx, c)
	if err != nil {
		return conv.QuotaInfo{Remaining: 0, Note: "quota unknown: " + err.Error(), CanReply: false}
	}
	q := conv.QuotaInfo{Remaining: rem, Until: until, CanReply: rem != 0 && c.State == conv.StateAssigned}
	if rem == 0 {
		q.Note = "本轮可发送条数已用完或已超出48小时窗口，需等待客户再次发消息"
	}
	return q
}

// Reply sends the owner's text to the customer through the channel's send
// API (OA custom/send with the customer's last message as trigger; JSON
// callback). clientID makes a retried click send once.
func (s *Service) Reply(ctx context.Context, p conv.Principal, id conv.ConvID, clientID, text string) error {
	text = strings.TrimSpace(text)
	if text == "" {
		return badInput("text is required")
	}
	if utf8.RuneCountInString(text) > maxReplyRunes {
		return badInput("text is longer than %d characters", maxReplyRunes)
	}
	if !clientIDRe.MatchString(clientID) {
		return badInput("client_id must be 1-32 characters of A-Z a-z 0-9 _ -")
	}
	c, err := s.load(ctx, p, id)
	if err != nil {
		return err
	}
	if c.State != conv.StateAssigned || c.Agent != p.User {
		return forbidden("conversation %s is not yours", id)
	}
	if !c.Accepted {
		return conflict("accept the conversation first")
	}
	q := s.quota(ctx, &c)
	if !q.CanReply {
		return fmt.Errorf("%w: %s", conv.ErrQuotaExhausted, q.Note)
	}
	first, err := s.eng.SetNX(ctx, doneKey("r:"+string(id)+":"+clientID), []byte("1"), 24*time.Hour)
	if err != nil || !first {
		return err // a retried click: already sent
	}
	// The sender refuses a reply the allowance cannot cover, counting
	// messages still queued, so the agent learns it now, not from a dead
	// letter later.
	out := conv.Outbound{ID: "ho:a:" + string(id) + ":" + clientID, Kind: conv.OutCustomer, Channel: c.Channel, To: c.ExternalUser,
		Account: c.Account, Reply: conv.Text(text), TriggerAt: c.LastCustomerMsgAt, Source: "agent", RefuseOverQuota: true}
	if err := s.send.Send(ctx, out); err != nil {
		_ = s.eng.Del(ctx, doneKey("r:"+string(id)+":"+clientID))
		return err
	}
	now := s.now()
	_ = s.eng.Update(ctx, []string{convKey(id)}, func(tx engine.Tx) error {
		cur, ok, err := getJSON[conv.Conversation](tx, convKey(id))
		if err != nil || !ok || cur.State.Terminal() {
			return err
		}
		cur.LastAgentMsgAt = now
		setJSON(tx, convKey(id), cur, 0)
		return nil
	})
	_ = s.Transcripts.Append(ctx, c.Customer, conv.Turn{At: now, Role: conv.TurnAgent, Text: text, Agent: p.User, Conv: id, State: c.State})
	s.cancel(ctx, []string{tNoReply}, id)
	s.emit(conv.Event{Type: conv.EvAgentReply, Conv: id, Customer: c.Customer, Store: c.Store, Channel: c.Channel, Agent: p.User, Actor: p.User})
	s.publishConv(ctx, &c)
	return nil
}

// Note adds an internal note to the transcript (never sent).
func (s *Service) Note(ctx context.Context, p conv.Principal, id conv.ConvID, text string) error {
	text = strings.TrimSpace(text)
	if text == "" {
		return badInput("text is required")
	}
	if utf8.RuneCountInString(text) > maxNoteRunes {
		return badInput("note is longer than %d characters", maxNoteRunes)
	}
	c, err := s.load(ctx, p, id)
	if err != nil {
		return err
	}
	if c.Agent != p.User && !isSupervisor(p) {
		return forbidden("only the owner or a supervisor may add notes to %s", id)
	}
	if err := s.Transcripts.Append(ctx, c.Customer, conv.Turn{Role: conv.TurnNote, Text: text, Agent: p.User, Conv: id, State: c.State}); err != nil {
		return err
	}
	s.emit(conv.Event{Type: conv.EvNote, Conv: id, Customer: c.Customer, Store: c.Store, Channel: c.Channel, Agent: c.Agent, Actor: p.User})
	s.publishConv(ctx, &c)
	return nil
}

// Transfer hands an assigned conversation to another agent (who must
// accept it) or back to a queue ("queue" or "queue:<skill>"). The owner
// or a supervisor may transfer.
func (s *Service) Transfer(ctx context.Context, p conv.Principal, id conv.ConvID, to, reason string) error {
	to = strings.TrimSpace(to)
	if to == "" {
		return badInput("to is required (an agent name, or queue / queue:<skill>)")
	}
	c, err := s.load(ctx, p, id)
	if err != nil {
		return err
	}
	if c.State != conv.StateAssigned {
		return conflict("conversation %s is %s, not assigned", id, c.State)
	}
	if c.Agent != p.User && !isSupervisor(p) {
		return forbidden("only the owner or a supervisor may transfer %s", id)
	}
	if skill, ok := strings.CutPrefix(to, "queue"); ok && (skill == "" || strings.HasPrefix(skill, ":")) {
		return s.requeue(ctx, c, strings.TrimPrefix(skill, ":"), p.User, reason)
	}
	return s.transferTo(ctx, p, c, to, reason, false)
}

// transferTo moves c to agent to; a take-over (self) works whatever the
// supervisor's own status.
func (s *Service) transferTo(ctx context.Context, p conv.Principal, c conv.Conversation, to, reason string, takeOver bool) error {
	id := c.ID
	prof, ok := s.roster[to]
	if !ok {
		return badInput("unknown agent %q", to)
	}
	if to == c.Agent {
		return badInput("%s already owns %s", to, id)
	}
	if !s.serves(prof, &c) {
		return badInput("%s does not serve store %s / skill %q", to, c.Store, c.Skill)
	}
	now := s.now()
	from := c.Agent
	err := s.eng.Update(ctx, []string{convKey(id), agentKey(from), agentKey(to)}, func(tx engine.Tx) error {
		cur, ok, err := getJSON[conv.Conversation](tx, convKey(id))
		if err != nil {
			return err
		}
		if !ok || cur.State != conv.StateAssigned || cur.Agent != from {
			return conflict("conversation %s changed; reload", id)
		}
		fa, err := readAgent(tx, from)
		if err != nil {
			return err
		}
		ta, err := readAgent(tx, to)
		if err != nil {
			return err
		}
		if ta.Status == conv.AgentOffline && !takeOver {
			return conflict("%s is offline", to)
		}
		if len(ta.Chats) >= prof.MaxChats {
			return conflict("%s is at capacity (%d chats)", to, prof.MaxChats)
		}
		fa.Chats = slices.DeleteFunc(fa.Chats, func(x conv.ConvID) bool { return x == id })
		ta.Chats = append(ta.Chats, id)
		ta.LastAssigned = now.UnixNano()
		cur.Transfers = append(cur.Transfers, conv.Transfer{From: from, To: to, By: p.User, Reason: reason, At: now})
		cur.Agent, cur.Accepted, cur.AssignedAt = to, false, now
		cur.Version++
		c = cur
		setJSON(tx, convKey(id), cur, 0)
		setJSON(tx, agentKey(from), fa, 0)
		setJSON(tx, agentKey(to), ta, 0)
		return nil
	})
	if err != nil {
		return err
	}
	s.schedule(ctx, tAcceptTimeout, &c, now.Add(s.cfg.AcceptTimeout))
	_ = s.Transcripts.Append(ctx, c.Customer, conv.Turn{Role: conv.TurnSystem, Text: "转接：" + from + " → " + to + " " + reason, Conv: id, State: c.State})
	s.convEvent(conv.EvTransferred, &c, p.User, reason)
	s.publishConv(ctx, &c)
	s.publish(ctx, conv.DeskUpdate{Kind: "agent", Agent: from})
	return nil
}

// requeue puts an assigned conversation back at the head of a queue.
func (s *Service) requeue(ctx context.Context, c conv.Conversation, skill, actor, reason string) error {
	from := c.Agent
	id := c.ID
	err := s.eng.Update(ctx, []string{convKey(id), agentKey(from)}, func(tx engine.Tx) error {
		cur, ok, err := getJSON[conv.Conversation](tx, convKey(id))
		if err != nil {
			return err
		}
		if !ok || cur.State != conv.StateAssigned || cur.Agent != from {
			return conflict("conversation %s changed; reload", id)
		}
		fa, err := readAgent(tx, from)
		if err != nil {
			return err
		}
		fa.Chats = slices.DeleteFunc(fa.Chats, func(x conv.ConvID) bool { return x == id })
		cur.Transfers = append(cur.Transfers, conv.Transfer{From: from, To: "queue:" + skill, By: actor, Reason: reason, At: s.now()})
		cur.State, cur.Agent, cur.Accepted, cur.Skill = conv.StateQueued, "", false, skill
		cur.QueueDeadline = s.now().Add(s.cfg.MaxWait)
		cur.Version++
		c = cur
		setJSON(tx, convKey(id), cur, 0)
		setJSON(tx, agentKey(from), fa, 0)
		return nil
	})
	if err != nil {
		return err
	}
	_, _ = s.eng.ZRem(ctx, liveKey, string(id))
	s.cancel(ctx, []string{tAcceptTimeout, tNoReply, tIdle}, id)
	// The original queue time keeps the customer's place.
	if err := s.ensureQueued(ctx, &c); err != nil {
		return err
	}
	s.convEvent(conv.EvTransferred, &c, actor, reason)
	s.publishConv(ctx, &c)
	s.publish(ctx, conv.DeskUpdate{Kind: "agent", Agent: from})
	s.kick()
	return nil
}

// Assign gives a conversation to agent (supervisors): a queued one is
// assigned (the agent's cap still holds), an assigned one transferred.
func (s *Service) Assign(ctx context.Context, p conv.Principal, id conv.ConvID, agent string) error {
	if !isSupervisor(p) {
		return forbidden("only supervisors may assign")
	}
	c, err := s.load(ctx, p, id)
	if err != nil {
		return err
	}
	prof, ok := s.roster[agent]
	if !ok {
		return badInput("unknown agent %q", agent)
	}
	switch c.State {
	case conv.StateAssigned:
		return s.Transfer(ctx, p, id, agent, "assigned by "+p.User)
	case conv.StateQueued:
	default:
		return conflict("conversation %s is %s", id, c.State)
	}
	if !s.serves(prof, &c) {
		return badInput("%s does not serve store %s / skill %q", agent, c.Store, c.Skill)
	}
	_, err = s.assign(ctx, id, 0, agent, p.User, modeSupervisor)
	switch {
	case errors.Is(err, errBusy):
		return conflict("%s is offline or at capacity", agent)
	case errors.Is(err, errStale):
		return conflict("conversation %s changed; reload", id)
	}
	return err
}

// TakeOver makes the supervisor p the owner of a conversation, accepted.
func (s *Service) TakeOver(ctx context.Context, p conv.Principal, id conv.ConvID) error {
	if !isSupervisor(p) {
		return forbidden("only supervisors may take over")
	}
	if _, ok := s.roster[p.User]; !ok {
		return forbidden("%s is not on the agent roster", p.User)
	}
	c, err := s.load(ctx, p, id)
	if err != nil {
		return err
	}
	switch c.State {
	case conv.StateQueued:
		_, err = s.assign(ctx, id, 0, p.User, p.User, modeTakeOver)
		if errors.Is(err, errBusy) || errors.Is(err, errStale) {
			return conflict("cannot take over %s now (changed, or you are at capacity)", id)
		}
		if err == nil {
			c, _ = s.Conversation(ctx, id)
			s.greet(ctx, &c)
		}
		return err
	case conv.StateAssigned:
		if c.Agent == p.User {
			return s.Accept(ctx, p, id)
		}
		if err := s.transferTo(ctx, p, c, p.User, "taken over", true); err != nil {
			return err
		}
		return s.Accept(ctx, p, id)
	}
	return conflict("conversation %s is %s", id, c.State)
}

// Close ends an assigned conversation with a disposition (a work-order
// type) and resolved / not resolved. The owner or a supervisor may close.
func (s *Service) Close(ctx context.Context, p conv.Principal, id conv.ConvID, disposition string, resolved bool) error {
	if !conv.ValidWorkOrderType(disposition) {
		return badInput("disposition must be one of %s", strings.Join(conv.WorkOrderTypes, ", "))
	}
	c, err := s.load(ctx, p, id)
	if err != nil {
		return err
	}
	if c.Agent != p.User && !isSupervisor(p) {
		return forbidden("only the owner or a supervisor may close %s", id)
	}
	if c.State != conv.StateAssigned {
		return conflict("conversation %s is %s, not assigned", id, c.State)
	}
	_, err = s.end(ctx, id, endSpec{state: conv.StateClosed, reason: "agent", actor: p.User, disposition: disposition, resolved: resolved})
	if errors.Is(err, errStale) {
		return conflict("conversation %s changed; reload", id)
	}
	return err
}

// Tickets lists the newest tickets p may see (at most 200), newest first.
func (s *Service) Tickets(ctx context.Context, p conv.Principal) ([]conv.Ticket, error) {
	items, err := s.eng.ZRangeByScore(ctx, ticketsKey, math.Inf(-1), math.Inf(1), 5*ticketsListed)
	if err != nil {
		return nil, err
	}
	out := []conv.Ticket{}
	for _, it := range items {
		var t conv.Ticket
		if jsonUnmarshal([]byte(it.Member), &t) == nil && s.visible(p, t.Store) {
			out = append(out, t)
			if len(out) == ticketsListed {
				break
			}
		}
	}
	return out, nil
}

// trimTickets drops tickets older than the retention.
func (s *Service) trimTickets(ctx context.Context) error {
	cutoff := -float64(s.now().Add(-ticketRetention).UnixMilli())
	old, err := s.eng.ZRangeByScore(ctx, ticketsKey, cutoff, math.Inf(1), 1000)
	if err != nil || len(old) == 0 {
		return err
	}
	members := make([]string, len(old))
	for i, it := range old {
		members[i] = it.Member
	}
	_, err = s.eng.ZRem(ctx, ticketsKey, members...)
	return err
}

// History returns the customer's recent ended conversations, newest first.
func (s *Service) History(ctx context.Context, customer conv.CustomerID) ([]conv.Conversation, error) {
	b, err := s.eng.Get(ctx, historyKey(customer))
	if errors.Is(err, engine.ErrNotFound) {
		return []conv.Conversation{}, nil
	}
	if err != nil {
		return nil, err
	}
	var out []conv.Conversation
	return out, jsonUnmarshal(b, &out)
}

func historyKey(c conv.CustomerID) string { return "ho:h:{" + string(c) + "}" }

// Forget deletes what the desk keeps about customer: transcript, ended
// conversations, send book (OA unsubscribe: WeChat requires the user's
// data to be deleted). Wire it as a router OnUnsubscribe hook; Route has
// already abandoned a live conversation by then.
func (s *Service) Forget(ctx context.Context, customer conv.CustomerID) error {
	h, err := s.History(ctx, customer)
	if err != nil {
		return err
	}
	keys := []string{historyKey(customer), bookKey(customer)}
	for _, c := range h {
		keys = append(keys, convKey(c.ID))
	}
	if err := s.eng.Del(ctx, keys...); err != nil {
		return err
	}
	// Tickets hold the customer's id and words: drop theirs (a scan, but
	// unsubscribes are rare and tickets bounded by retention).
	all, err := s.eng.ZRangeByScore(ctx, ticketsKey, math.Inf(-1), math.Inf(1), 0)
	if err != nil {
		return err
	}
	var mine []string
	for _, it := range all {
		var t conv.Ticket
		if jsonUnmarshal([]byte(it.Member), &t) == nil && t.Customer == customer {
			mine = append(mine, it.Member)
		}
	}
	if len(mine) > 0 {
		if _, err := s.eng.ZRem(ctx, ticketsKey, mine...); err != nil {
			return err
		}
	}
	return s.Transcripts.Delete(ctx, customer)
}
