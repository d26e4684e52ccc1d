package surveys

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"kefu/conv"
	"kefu/engine"
)

// botContact is the state of a bot-only contact between bot turns.
type botContact struct {
	Conv         conv.ConvID      `json:"conv"`
	Customer     conv.CustomerID  `json:"customer"`
	Channel      string           `json:"channel"`
	ChannelType  conv.ChannelType `json:"channel_type"`
	ExternalUser string           `json:"external_user"`
	Account      string           `json:"account,omitempty"`
	Store        conv.StoreID     `json:"store"`
	Entries      []string         `json:"entries,omitempty"`
	StartedAt    time.Time        `json:"started_at"`
	LastTurnAt   time.Time        `json:"last_turn_at"`
	LastMsgAt    time.Time        `json:"last_msg_at"`
}

// botContactV1 starts the binary form of botContact. The record is
// rewritten on every bot turn, so it is kept small and cheap to decode
// instead of JSON; records written as JSON by older versions (they start
// with '{') still load.
const botContactV1 = 1

// encode returns the binary form: version byte, then the strings
// (uvarint length + bytes), the entries (count, strings) and the times
// (varint unix nanoseconds, 0 for the zero time).
func (b *botContact) encode() []byte {
	strs := [...]string{string(b.Conv), string(b.Customer), b.Channel, string(b.ChannelType), b.ExternalUser, b.Account, string(b.Store)}
	n := 16
	for _, s := range strs {
		n += len(s) + 2
	}
	for _, e := range b.Entries {
		n += len(e) + 2
	}
	out := make([]byte, 0, n+30)
	out = append(out, botContactV1)
	for _, s := range strs {
		out = conv.AppendString(out, s)
	}
	out = binary.AppendUvarint(out, uint64(len(b.Entries)))
	for _, e := range b.Entries {
		out = conv.AppendString(out, e)
	}
	for _, t := range []time.Time{b.StartedAt, b.LastTurnAt, b.LastMsgAt} {
		var ns int64
		if !t.IsZero() {
			ns = t.UnixNano()
		}
		out = binary.AppendVarint(out, ns)
	}
	return out
}

var errBadBotContact = errors.New("bad bot contact record")

// decodeBotContact reads either form of the record.
func decodeBotContact(raw []byte) (botContact, error) {
	var b botContact
	if len(raw) > 0 && raw[0] == '{' {
		err := json.Unmarshal(raw, &b)
		return b, err
	}
	if len(raw) == 0 || raw[0] != botContactV1 {
		return b, errBadBotContact
	}
	d := conv.NewBinDecoder(raw[1:])
	ts := func() time.Time {
		if x := d.Varint(); x != 0 {
			return time.Unix(0, x).UTC()
		}
		return time.Time{}
	}
	b.Conv = conv.ConvID(d.Str())
	b.Customer = conv.CustomerID(d.Str())
	b.Channel = d.Str()
	b.ChannelType = conv.ChannelType(d.Str())
	b.ExternalUser = d.Str()
	b.Account = d.Str()
	b.Store = conv.StoreID(d.Str())
	if n := d.Count(); n > 0 {
		b.Entries = make([]string, 0, n)
		for range n {
			b.Entries = append(b.Entries, d.Str())
		}
	}
	b.StartedAt, b.LastTurnAt, b.LastMsgAt = ts(), ts(), ts()
	// Unlike bot memory, trailing bytes have always been ignored here.
	if !d.OK() {
		return botContact{}, errBadBotContact
	}
	return b, nil
}

// getBotContact loads a customer's bot contact and its raw bytes (for a
// later compare-and-swap).
func (s *Service) getBotContact(ctx context.Context, key string) (botContact, []byte, error) {
	raw, err := s.eng.Get(ctx, key)
	if err != nil {
		return botContact{}, nil, err
	}
	b, err := decodeBotContact(raw)
	if err != nil {
		return b, nil, fmt.Errorf("surveys: corrupt record %s: %w", key, err)
	}
	return b, raw, nil
}

// botIdleTimer is the id of a bot contact's idle timer. Each contact has
// its own timer, armed once when the contact starts (a turn does not
// re-arm it: the timer re-arms itself when it finds the contact still
// active). A per-contact id means the timer of an ended contact can never
// cancel the timer of the customer's next contact. "idle:<customer>" timers
// of older versions still fire (idleDue with conv "").
func botIdleTimer(c conv.ConvID) string { return "botidle:" + string(c) }

// botConvID names a bot-only contact; botConvCustomer inverts it.
func botConvID(c conv.CustomerID, started time.Time) conv.ConvID {
	return conv.ConvID("bot:" + string(c) + ":" + strconv.FormatInt(started.UnixMilli(), 10))
}

func botConvCustomer(c string) (string, bool) {
	rest, ok := strings.CutPrefix(c, "bot:")
	i := strings.LastIndexByte(rest, ':')
	if !ok || i <= 0 {
		return "", false
	}
	return rest[:i], true
}

// NoteBotTurn records a bot answer to msg (entryID: the KB entry that
// answered, "" for none). A bot contact counts as ended, with outcome
// "bot_idle", when BotIdle passes without another bot turn and without a
// handoff. This runs for every bot turn, so a turn costs one read and one
// compare-and-swap of a small binary record; the idle timer is armed only
// when the contact starts. A turn that only moves the contact's times by
// less than turnCoalesce (customers often send several messages in a
// row) is not written: the contact may then end, and its survey go out,
// up to turnCoalesce before BotIdle has really passed.
func (s *Service) NoteBotTurn(ctx context.Context, msg conv.Message, entryID string) error {
	now := s.now()
	msgAt := msg.CreatedAt
	if msgAt.IsZero() {
		msgAt = now
	}
	key := keyBot + string(msg.Customer)
	ttl := s.cfg.BotIdle + 24*time.Hour
	armed := false
	for attempt := 0; ; attempt++ {
		b, old, err := s.getBotContact(ctx, key)
		created := errors.Is(err, engine.ErrNotFound)
		if err != nil && !created {
			return err
		}
		if created {
			b = botContact{Conv: botConvID(msg.Customer, now), Customer: msg.Customer, Channel: msg.Channel, ChannelType: msg.ChannelType,
				ExternalUser: msg.ExternalUser, Account: msg.Account, Store: msg.Store, StartedAt: msgAt}
			// Arm the timer before the contact exists: a crash in between
			// leaves a timer that finds nothing, never a contact that
			// no timer ends.
			if !armed {
				if err := s.enqueue(ctx, botIdleTimer(b.Conv), now.Add(s.cfg.BotIdle), nil); err != nil {
					return err
				}
				armed = true
			}
		}
		changed := created
		if entryID != "" && !slices.Contains(b.Entries, entryID) {
			b.Entries = append(b.Entries, entryID)
			changed = true
		}
		if msg.Store != "" && msg.Store != b.Store {
			b.Store = msg.Store
			changed = true
		}
		coalesce := s.turnCoalesce()
		if now.Sub(b.LastTurnAt) >= coalesce || msgAt.Sub(b.LastMsgAt) >= coalesce {
			changed = true
		}
		if !changed {
			return nil
		}
		b.LastTurnAt = now
		if msgAt.After(b.LastMsgAt) {
			b.LastMsgAt = msgAt
		}
		ok, err := s.eng.CompareAndSwap(ctx, key, old, b.encode(), ttl)
		if err != nil || ok {
			return err
		}
		if attempt > 50 {
			return fmt.Errorf("surveys: %s: %w", key, engine.ErrTxConflict)
		}
	}
}

// turnCoalesce is how far a bot turn may move a contact's times without
// being written: a twentieth of BotIdle, at most 30 s.
func (s *Service) turnCoalesce() time.Duration {
	return min(s.cfg.BotIdle/20, 30*time.Second)
}

// NoteHandoff cancels the bot idle end: a human takes over, and the
// agent's close will end the contact instead.
func (s *Service) NoteHandoff(ctx context.Context, c conv.CustomerID) error {
	key := keyBot + string(c)
	b, _, err := s.getBotContact(ctx, key)
	if err != nil && !errors.Is(err, engine.ErrNotFound) {
		s.log.Warn("unreadable bot contact dropped at handoff", "err", err)
	}
	if err := s.eng.Del(ctx, key); err != nil {
		return err
	}
	if b.Conv != "" {
		if err := s.eng.Ack(ctx, queueTimers, botIdleTimer(b.Conv)); err != nil {
			return err
		}
	}
	return s.eng.Ack(ctx, queueTimers, "idle:"+string(c))
}

// idleDue ends a bot contact whose idle timer (id timer) fired. conv is
// the contact the timer belongs to; "" (timers of older versions) means
// whatever bot contact the customer has.
func (s *Service) idleDue(ctx context.Context, timer, customer string, convID conv.ConvID) (bool, error) {
	key := keyBot + customer
	for range 10 {
		b, raw, err := s.getBotContact(ctx, key)
		if errors.Is(err, engine.ErrNotFound) {
			return true, nil // handed off, or already ended
		}
		if err != nil {
			return false, err
		}
		if convID != "" && b.Conv != convID {
			return true, nil // that contact ended; this one has its own timer
		}
		if end := b.LastTurnAt.Add(s.cfg.BotIdle); s.now().Before(end) {
			return false, s.enqueue(ctx, timer, end, nil)
		}
		// Only the instance that deletes the state ends the contact.
		ok, err := s.eng.CompareAndDelete(ctx, key, raw)
		if err != nil {
			return false, err
		}
		if !ok {
			continue
		}
		ce := conv.ContactEnded{Conv: b.Conv, Customer: b.Customer, Channel: b.Channel, ChannelType: b.ChannelType, ExternalUser: b.ExternalUser,
			Account: b.Account, Store: b.Store, Entries: b.Entries, Outcome: "bot_idle", Resolved: true, StartedAt: b.StartedAt, EndedAt: b.LastTurnAt,
			LastCustomerMsgAt: b.LastMsgAt}
		if err := s.Schedule(ctx, ce); err != nil {
			// Put the state back so the retry can end the contact.
			if raw != nil {
				_, _ = s.eng.CompareAndSwap(ctx, key, nil, raw, s.cfg.BotIdle+24*time.Hour)
			}
			return false, err
		}
		// Reports end bot-only contacts on this event (report/doc.go).
		s.emit(conv.Event{Type: conv.EvClosed, At: ce.EndedAt, Conv: ce.Conv, Customer: ce.Customer, Store: ce.Store,
			Channel: ce.Channel, Data: map[string]string{"outcome": "bot_idle", "resolved": "true"}})
		return true, nil
	}
	return false, engine.ErrTxConflict
}
