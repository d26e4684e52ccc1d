package handoff

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"kefu/conv"
	"kefu/engine"
)

// Sender is the outbound side the desk needs; *gateway.Sender implements it.
type Sender interface {
	// Send durably enqueues one message; the same ID is delivered once.
	Send(ctx context.Context, job conv.Outbound) error
	// Quota tells how many customer messages may still go to user on
	// channel (-1: no limit) and until when.
	Quota(ctx context.Context, channel, user string, lastMsg time.Time) (remaining int, until time.Time, err error)
}

// KFSessions drives WeChat KF session states; *gateway.Gateway implements it.
type KFSessions interface {
	KFTransfer(ctx context.Context, channel, openKfID, externalUser string, state int, servicer string) (msgCode string, err error)
}

// KF session states used here (WECHAT.md §4.3).
const (
	kfStateQueue = 2
	kfStateHuman = 3
	kfStateEnded = 4
)

// Deps are what the desk is built from. Engine and Sender are required.
type Deps struct {
	Engine engine.Engine
	Sender Sender
	// KF is optional; without it KF chats are handled like OA ones.
	KF KFSessions
	// Stores gives business hours, holidays and store scopes (may be nil).
	Stores *conv.StoreTree
	// Agents is the roster (console users who take chats).
	Agents []conv.AgentProfile
	// Emit receives every domain event (may be nil).
	Emit   func(conv.Event)
	Logger *slog.Logger
	// Now is the clock (tests); nil means time.Now.
	Now func() time.Time
}

// Service is the human desk: conversation states, queues, assignment,
// agent actions and durable timers. All state lives in the engine, so any
// number of instances can share one Redis.
type Service struct {
	cfg     Config
	eng     engine.Engine
	send    Sender
	kf      KFSessions
	tree    *conv.StoreTree
	loc     *time.Location
	emitFn  func(conv.Event)
	log     *slog.Logger
	now     func() time.Time
	roster  map[string]conv.AgentProfile
	names   []string
	wake    chan struct{}
	hooksMu sync.RWMutex
	hooks   []func(context.Context, conv.ContactEnded)
	// snapshot is the last read of all agents (wait estimates only).
	snapshot atomic.Pointer[agentsSnapshot]

	// Transcripts is the per-customer transcript store the router appends to.
	Transcripts *Transcripts
}

// Engine keys. Everything assignment touches in one Update shares the
// hash tag {ho} (conversation, active pointer, agent), so it works on Redis
// Cluster too, at the price of putting the desk in one slot.
const (
	tag         = "{ho}"
	queuesKey   = "ho:queues"
	liveKey     = "ho:liveset"
	ticketsKey  = "ho:tickets"
	timerQueue  = "ho:timers"
	liveChannel = "ho:live"
	lockKey     = "ho:dispatch:lock"
	genKey      = "ho:dispatch:gen"
	timerLease  = 30 * time.Second
	lockTTL     = 10 * time.Second
	staleGrace  = time.Minute
)

func convKey(id conv.ConvID) string                { return "ho:" + tag + ":c:" + string(id) }
func activeKey(c conv.CustomerID) string           { return "ho:" + tag + ":a:" + string(c) }
func agentKey(name string) string                  { return "ho:" + tag + ":g:" + name }
func queueKey(s conv.StoreID, skill string) string { return "ho:q:" + string(s) + "|" + skill }
func doneKey(id string) string                     { return "ho:done:" + id }

// agentState is an agent's runtime record.
type agentState struct {
	Status conv.AgentStatus `json:"status"`
	Chats  []conv.ConvID    `json:"chats"`
	// LastAssigned (unix ns) makes assignment round-robin among equally
	// busy agents.
	LastAssigned int64 `json:"last"`
}

// Errors beyond the conv sentinels.
var (
	errStale = errors.New("handoff: state changed")
	errBusy  = errors.New("handoff: agent unavailable or at capacity")
)

// New builds the desk.
func New(cfg Config, d Deps) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if d.Engine == nil || d.Sender == nil {
		return nil, fmt.Errorf("handoff: Engine and Sender are required")
	}
	loc, _ := loadZone(cfg.Timezone)
	s := &Service{cfg: cfg, eng: d.Engine, send: d.Sender, kf: d.KF, tree: d.Stores, loc: loc, emitFn: d.Emit,
		log: d.Logger, now: d.Now, roster: map[string]conv.AgentProfile{}, wake: make(chan struct{}, 1)}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("component", "handoff")
	if s.now == nil {
		s.now = time.Now
	}
	for i, a := range d.Agents {
		if a.Name == "" {
			return nil, fmt.Errorf("handoff: agents[%d]: empty name", i)
		}
		if a.MaxChats <= 0 {
			a.MaxChats = cfg.DefaultMaxChats
		}
		s.roster[a.Name] = a
		s.names = append(s.names, a.Name)
	}
	slices.Sort(s.names)
	s.Transcripts = NewTranscripts(d.Engine, cfg.TranscriptTurns, cfg.TranscriptTTL)
	return s, nil
}

// OnClosed registers f to run when a conversation is closed or abandoned
// (surveys schedule the NPS survey from it).
func (s *Service) OnClosed(f func(ctx context.Context, ended conv.ContactEnded)) {
	s.hooksMu.Lock()
	s.hooks = append(s.hooks, f)
	s.hooksMu.Unlock()
}

func (s *Service) emit(ev conv.Event) {
	if ev.At.IsZero() {
		ev.At = s.now()
	}
	if s.emitFn != nil {
		s.emitFn(ev)
	}
}

// convEvent emits a conversation event; kv are extra Data pairs (the
// report computes ASA from "wait_ms" on accepted, AHT from "handle_ms" on
// closed).
func (s *Service) convEvent(t conv.EventType, c *conv.Conversation, actor, reason string, kv ...string) {
	data := map[string]string{"state": string(c.State), "skill": c.Skill}
	for i := 0; i+1 < len(kv); i += 2 {
		data[kv[i]] = kv[i+1]
	}
	s.emit(conv.Event{Type: t, Conv: c.ID, Customer: c.Customer, Store: c.Store, Channel: c.Channel,
		Agent: c.Agent, Actor: actor, Reason: reason, Data: data})
}

// publish tells every instance's consoles that something changed.
func (s *Service) publish(ctx context.Context, u conv.DeskUpdate) {
	u.At = s.now()
	b, _ := json.Marshal(u)
	if err := s.eng.Publish(ctx, liveChannel, b); err != nil {
		s.log.Debug("publish failed", "err", err)
	}
}

func (s *Service) publishConv(ctx context.Context, c *conv.Conversation) {
	s.publish(ctx, conv.DeskUpdate{Kind: "conv", Conv: c.ID, Store: c.Store, Agent: c.Agent, State: c.State})
}

// Updates streams live-update notices from every instance until ctx ends.
func (s *Service) Updates(ctx context.Context) (<-chan conv.DeskUpdate, error) {
	raw, err := s.eng.Subscribe(ctx, liveChannel)
	if err != nil {
		return nil, err
	}
	out := make(chan conv.DeskUpdate, 64)
	go func() {
		defer close(out)
		for b := range raw {
			var u conv.DeskUpdate
			if json.Unmarshal(b, &u) != nil {
				continue
			}
			select {
			case out <- u:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

// kick asks Run to dispatch now.
func (s *Service) kick() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// --- storage helpers ---

func getJSON[T any](tx engine.Tx, key string) (T, bool, error) {
	var v T
	b, err := tx.Get(key)
	if errors.Is(err, engine.ErrNotFound) {
		return v, false, nil
	}
	if err != nil {
		return v, false, err
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return v, false, fmt.Errorf("handoff: corrupt %s: %w", key, err)
	}
	return v, true, nil
}

func setJSON(tx engine.Tx, key string, v any, ttl time.Duration) {
	b, _ := json.Marshal(v)
	tx.Set(key, b, ttl)
}

// closedTTL keeps ended conversations readable (history, reports) for a while.
const closedTTL = 90 * 24 * time.Hour

// Conversation returns a conversation by id (no authorization: for the app
// and tests; the console uses Chat).
func (s *Service) Conversation(ctx context.Context, id conv.ConvID) (conv.Conversation, error) {
	b, err := s.eng.Get(ctx, convKey(id))
	if errors.Is(err, engine.ErrNotFound) {
		return conv.Conversation{}, fmt.Errorf("%w: conversation %s", conv.ErrNotFound, id)
	}
	if err != nil {
		return conv.Conversation{}, err
	}
	var c conv.Conversation
	return c, json.Unmarshal(b, &c)
}

// ReadAheadKeys names the key Route reads first for msg (the customer's
// active conversation), so the gateway can read it ahead.
func (s *Service) ReadAheadKeys(msg conv.Message) []string {
	return []string{activeKey(msg.Customer)}
}

// Active returns customer's open (queued or assigned) conversation.
func (s *Service) Active(ctx context.Context, customer conv.CustomerID) (conv.Conversation, bool, error) {
	id, err := s.eng.Get(ctx, activeKey(customer))
	if errors.Is(err, engine.ErrNotFound) {
		return conv.Conversation{}, false, nil
	}
	if err != nil {
		return conv.Conversation{}, false, err
	}
	c, err := s.Conversation(ctx, conv.ConvID(id))
	if errors.Is(err, conv.ErrNotFound) {
		return conv.Conversation{}, false, nil
	}
	if err != nil || c.State.Terminal() {
		return conv.Conversation{}, false, err
	}
	return c, true, nil
}

func (s *Service) agent(ctx context.Context, name string) (agentState, error) {
	b, err := s.eng.Get(ctx, agentKey(name))
	if errors.Is(err, engine.ErrNotFound) {
		return agentState{Status: conv.AgentOffline}, nil
	}
	if err != nil {
		return agentState{}, err
	}
	var a agentState
	return a, json.Unmarshal(b, &a)
}

func readAgent(tx engine.Tx, name string) (agentState, error) {
	a, ok, err := getJSON[agentState](tx, agentKey(name))
	if !ok && err == nil {
		a.Status = conv.AgentOffline
	}
	return a, err
}

// newConvID derives the conversation id from the message that asked for
// the handoff, so a redelivered message finds the same conversation.
func newConvID(msg conv.Message, at time.Time) conv.ConvID {
	h := sha1.Sum([]byte(msg.ID + "|" + string(msg.Customer)))
	return conv.ConvID(strconv.FormatInt(at.UnixMilli(), 36) + "-" + hex.EncodeToString(h[:5]))
}

func render(tmpl string, kv ...string) string {
	return strings.NewReplacer(kv...).Replace(tmpl)
}

// waitText renders an expected wait in Chinese minutes.
func waitText(d time.Duration) string {
	m := int(math.Ceil(d.Minutes()))
	if m < 1 {
		m = 1
	}
	return strconv.Itoa(m) + "分钟"
}

// timer is the payload of a durable timer job.
type timer struct {
	Kind    string      `json:"kind"`
	Conv    conv.ConvID `json:"conv"`
	Version int64       `json:"v"`
}

// Timer kinds; the job ID is kind + ":" + conversation, so rescheduling
// replaces the previous one.
const (
	tQueueTimeout  = "qt"
	tAcceptTimeout = "at"
	tNoReply       = "nr"
	tIdle          = "ic"
	tEnded         = "ce" // OnClosed hooks (safety net)
)

func (s *Service) schedule(ctx context.Context, kind string, c *conv.Conversation, due time.Time) {
	b, _ := json.Marshal(timer{Kind: kind, Conv: c.ID, Version: c.Version})
	if err := s.eng.Enqueue(ctx, timerQueue, engine.Job{ID: kind + ":" + string(c.ID), Data: b, Due: due}); err != nil {
		// The conversation stays correct; only the timer is late. Log loudly.
		s.log.Error("cannot schedule timer", "kind", kind, "conv_id", c.ID, "err", err)
	}
}

// ensureQueued (re)puts a queued conversation in its queue index and
// (re)schedules its queue timeout. Every step is idempotent, so it also
// repairs what a crash between the state change and these writes left.
func (s *Service) ensureQueued(ctx context.Context, c *conv.Conversation) error {
	if err := s.eng.ZAdd(ctx, queueKey(c.Store, c.Skill), engine.ZItem{Member: string(c.ID), Score: float64(c.QueuedAt.UnixMilli())}); err != nil {
		return err
	}
	// Member first, then the queue index: the dispatcher never removes
	// queue names, so a queued conversation is always reachable.
	if err := s.eng.ZAdd(ctx, queuesKey, engine.ZItem{Member: queueKey(c.Store, c.Skill)}); err != nil {
		return err
	}
	s.schedule(ctx, tQueueTimeout, c, c.QueueDeadline)
	return nil
}

func (s *Service) cancel(ctx context.Context, kinds []string, id conv.ConvID) {
	for _, k := range kinds {
		_ = s.eng.Ack(ctx, timerQueue, k+":"+string(id))
	}
}
