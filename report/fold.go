package report

import (
	"strconv"
	"strings"
	"time"

	"kefu/conv"
)

// Key identifies one bucket of counters: the contact's start day (in the
// report's zone), store and channel, and the agent the measures are about.
type Key struct {
	Day     string       `json:"d"` // "2006-01-02"
	Store   conv.StoreID `json:"s,omitempty"`
	Channel string       `json:"c,omitempty"`
	Agent   string       `json:"a,omitempty"`
}

// keySep separates Key fields in persisted hash fields; it cannot appear in
// ids that come from config or WeChat.
const keySep = "\x1f"

func (k Key) field() string {
	return k.Day + keySep + string(k.Store) + keySep + k.Channel + keySep + k.Agent
}

func parseKey(s string) (Key, bool) {
	p := strings.Split(s, keySep)
	if len(p) != 4 {
		return Key{}, false
	}
	return Key{Day: p[0], Store: conv.StoreID(p[1]), Channel: p[2], Agent: p[3]}, true
}

// contact is the fold's state of one conversation. Field names are short
// because every open contact is persisted.
type contact struct {
	ID          conv.ConvID     `json:"id"`
	Customer    conv.CustomerID `json:"cu,omitempty"`
	Store       conv.StoreID    `json:"s,omitempty"`
	Channel     string          `json:"ch,omitempty"`
	Day         string          `json:"d"`
	Agent       string          `json:"a,omitempty"` // current owner
	Start       int64           `json:"t0"`          // unix ms
	Last        int64           `json:"tl"`
	FirstMsg    int64           `json:"fm,omitempty"` // first customer message awaiting a response
	Responded   bool            `json:"rr,omitempty"`
	BotAnswered bool            `json:"ba,omitempty"`
	HandedOff   bool            `json:"ho,omitempty"`
	HandoffAt   int64           `json:"h,omitempty"`
	QueuedAt    int64           `json:"q,omitempty"`
	PickedAt    int64           `json:"p,omitempty"`
	PickAgent   string          `json:"pa,omitempty"`
	AgentReply  bool            `json:"ar,omitempty"` // the first agent reply after pickup was counted
	Ended       bool            `json:"e,omitempty"`
	EndAt       int64           `json:"te,omitempty"`
	EndAgent    string          `json:"ea,omitempty"`
	Outcome     string          `json:"o,omitempty"`
	Abandoned   string          `json:"ab,omitempty"` // reason, when abandoned before pickup
	Resolved    string          `json:"rs,omitempty"` // "true"/"false" from closed
	Repeat      bool            `json:"rp,omitempty"`
	Synthetic   bool            `json:"sy,omitempty"`
	SurveySent  bool            `json:"ss,omitempty"`
	NotSent     string          `json:"ns,omitempty"`
	Score       int             `json:"sc,omitempty"` // score+1 (0 = no answer)
	Case        string          `json:"k,omitempty"`
}

func (c *contact) key(agent string) Key {
	return Key{Day: c.Day, Store: c.Store, Channel: c.Channel, Agent: agent}
}

// caseState is the fold's state of one detractor case.
type caseState struct {
	ID       string      `json:"id"`
	Conv     conv.ConvID `json:"cv,omitempty"`
	Key      Key         `json:"key"`
	Opened   int64       `json:"t0"`
	Deadline int64       `json:"dl"`
	Called   int64       `json:"tc,omitempty"`
	Closed   int64       `json:"tx,omitempty"`
	Overdue  bool        `json:"od,omitempty"`
	Escal    int         `json:"es,omitempty"`
}

// fold is the deterministic event → counters function plus the state it
// needs. It knows nothing about engines; Reporter persists it.
type fold struct {
	cfg Config
	loc *time.Location

	buckets   map[Key]*Counts
	days      map[string][]Key // day → keys, for fast "today" and range queries
	contacts  map[conv.ConvID]*contact
	open      map[conv.ConvID]struct{}
	last      map[conv.CustomerID]conv.ConvID
	cases     map[string]*caseState
	openCases map[string]struct{}
	// pending are customers' first messages not yet claimed by a contact
	// (see contactFor); persisted as one small field.
	pending map[conv.CustomerID]int64

	cursor    string
	watermark int64 // latest event time folded (ms); the fold's clock
	pruned    int64 // watermark of the last prune
	processed int64

	dirtyB map[Key]struct{}
	dirtyC map[conv.ConvID]struct{}
	dirtyK map[string]struct{}
	goneC  map[conv.ConvID]struct{}
	goneK  map[string]struct{}
	goneB  map[Key]struct{}
	dirtyP bool
}

func newFold(cfg Config) *fold {
	f := &fold{cfg: cfg, loc: cfg.location()}
	f.reset()
	return f
}

func (f *fold) reset() {
	f.buckets = map[Key]*Counts{}
	f.days = map[string][]Key{}
	f.contacts = map[conv.ConvID]*contact{}
	f.open = map[conv.ConvID]struct{}{}
	f.last = map[conv.CustomerID]conv.ConvID{}
	f.cases = map[string]*caseState{}
	f.openCases = map[string]struct{}{}
	f.pending = map[conv.CustomerID]int64{}
	f.cursor, f.watermark, f.pruned, f.processed = "", 0, 0, 0
	f.clearDirty()
}

func (f *fold) clearDirty() {
	f.dirtyB = map[Key]struct{}{}
	f.dirtyC = map[conv.ConvID]struct{}{}
	f.dirtyK = map[string]struct{}{}
	f.goneC = map[conv.ConvID]struct{}{}
	f.goneK = map[string]struct{}{}
	f.goneB = map[Key]struct{}{}
	f.dirtyP = false
}

// b returns the bucket of k for writing.
func (f *fold) b(k Key) *Counts {
	c := f.buckets[k]
	if c == nil {
		c = &Counts{}
		f.buckets[k] = c
		f.days[k.Day] = append(f.days[k.Day], k)
	}
	f.dirtyB[k] = struct{}{}
	return c
}

func (f *fold) touch(c *contact) { f.dirtyC[c.ID] = struct{}{} }

func (f *fold) day(ms int64) string {
	return time.UnixMilli(ms).In(f.loc).Format(time.DateOnly)
}

// starts reports whether an event of type t may start a contact.
func starts(ev *conv.Event) bool {
	switch ev.Type {
	case conv.EvMessageReceived:
		return ev.Data["kind"] != string(conv.MsgEvent) && isCustomerMsg(ev)
	case conv.EvBotAnswered, conv.EvBotClarify, conv.EvBotFallback, conv.EvHandoffRequested,
		conv.EvQueued, conv.EvAssigned, conv.EvAccepted, conv.EvTransferred, conv.EvAgentReply,
		conv.EvClosed, conv.EvAbandoned:
		return true
	}
	return false
}

func isCustomerMsg(ev *conv.Event) bool {
	o := ev.Data["origin"]
	return o != "4" && o != "5"
}

// applyAt folds one event whose log record ID has the time part idt (Unix
// ms; used as the time when the event has none). The cursor is left to the
// caller: the refresh folds a page of records and moves the cursor once,
// to the page's last ID.
func (f *fold) applyAt(idt int64, ev *conv.Event) {
	f.processed++
	t := ev.At.UnixMilli()
	if ev.At.IsZero() {
		t = idt
	}
	// The fold's clock follows event time, but an instance with a clock far
	// ahead must not end everyone's contacts early: the log's own ID (its
	// append time) bounds it.
	wm := t
	if idt > plausibleMs && wm > idt+maxSkew.Milliseconds() {
		wm = idt + maxSkew.Milliseconds()
	}
	if wm > f.watermark {
		f.watermark = wm
	}
	switch ev.Type {
	case conv.EvSurveyScheduled, conv.EvSurveySent, conv.EvSurveyNotSent, conv.EvSurveyAnswered:
		f.survey(t, ev)
		return
	case conv.EvCaseOpened, conv.EvCaseContacted, conv.EvCaseEscalated, conv.EvCaseClosed:
		f.caseEvent(t, ev)
		return
	case conv.EvOutboundSent, conv.EvOutboundFailed:
		return
	}
	c := f.contactFor(t, ev)
	if c == nil {
		return
	}
	if t > c.Last {
		c.Last = t
	}
	if c.Store == "" && ev.Store != "" {
		c.Store = ev.Store
	}
	if c.Channel == "" && ev.Channel != "" {
		c.Channel = ev.Channel
	}
	f.touch(c)
	switch ev.Type {
	case conv.EvMessageReceived:
		if !c.Ended && c.FirstMsg == 0 && !c.Responded && isCustomerMsg(ev) && ev.Data["kind"] != string(conv.MsgEvent) {
			c.FirstMsg = t
		}
	case conv.EvBotAnswered:
		if !c.BotAnswered && !c.Ended {
			c.BotAnswered = true
			f.b(c.key("")).BotAnswered++
		}
		f.respond(c, t, "")
	case conv.EvBotClarify, conv.EvBotFallback:
		f.respond(c, t, "")
	case conv.EvHandoffRequested:
		f.handoff(c, t)
		f.respond(c, t, "")
	case conv.EvQueued:
		f.handoff(c, t)
		if c.QueuedAt == 0 {
			c.QueuedAt = t
		}
	case conv.EvAssigned:
		if ev.Agent != "" {
			c.Agent = ev.Agent
		}
	case conv.EvAccepted:
		f.pickup(c, t, ev.Agent)
	case conv.EvAgentReply:
		if c.HandedOff && c.PickedAt == 0 {
			f.pickup(c, t, ev.Agent)
		}
		agent := firstNonEmpty(ev.Agent, c.Agent)
		if c.PickedAt > 0 && !c.AgentReply && !c.Ended {
			c.AgentReply = true
			b := f.b(c.key(agent))
			b.AFRn++
			b.AFRMs += max(t-c.PickedAt, 0)
		}
		f.respond(c, t, agent)
	case conv.EvTransferred:
		from := firstNonEmpty(ev.Data["from"], c.Agent)
		if !c.Ended {
			f.b(c.key(from)).Transfers++
		}
		if ev.Agent != "" {
			c.Agent = ev.Agent
		}
	case conv.EvClosed:
		if ev.Data["outcome"] == "bot_idle" && !c.HandedOff {
			f.end(c, t, "bot_idle", "")
			return
		}
		agent := firstNonEmpty(ev.Agent, c.Agent)
		if !c.Ended && c.PickedAt > 0 {
			c.Resolved = "false"
			if ev.Data["resolved"] == "true" {
				c.Resolved = "true"
				f.b(c.key(agent)).Resolved++
			} else {
				f.b(c.key(agent)).Unresolved++
			}
		}
		outcome := "closed"
		if c.HandedOff && c.PickedAt == 0 {
			outcome = "closed_in_queue"
		}
		f.end(c, t, outcome, agent)
	case conv.EvAbandoned:
		reason := firstNonEmpty(ev.Reason, "customer_left")
		f.end(c, t, reason, firstNonEmpty(ev.Agent, c.Agent))
	}
}

func (f *fold) handoff(c *contact, t int64) {
	if c.HandedOff || c.Ended {
		return
	}
	c.HandedOff, c.HandoffAt = true, t
	f.b(c.key("")).HandedOff++
}

// pickup records the first pickup: the end of the wait for ASA and SL.
func (f *fold) pickup(c *contact, t int64, agent string) {
	agent = firstNonEmpty(agent, c.Agent)
	if agent != "" {
		c.Agent = agent
	}
	if c.PickedAt != 0 || c.Ended {
		return
	}
	if !c.HandedOff {
		f.handoff(c, t)
	}
	c.PickedAt, c.PickAgent = t, agent
	// The wait runs from queue entry; a pickup without a queued event (a
	// direct assignment) waits from the handoff request.
	wait := max(t-firstNonZero(c.QueuedAt, c.HandoffAt), 0)
	b := f.b(c.key(agent))
	b.Answered++
	b.WaitMs += wait
	if wait <= int64(f.cfg.ServiceLevelSeconds)*1000 {
		b.Within++
	}
}

func (f *fold) respond(c *contact, t int64, agent string) {
	if c.FirstMsg == 0 || c.Responded {
		return
	}
	c.Responded = true
	b := f.b(c.key(agent))
	b.FRTn++
	b.FRTMs += max(t-c.FirstMsg, 0)
}

// end closes a contact once: FCR denominator, containment, handle time and
// abandonment before pickup.
func (f *fold) end(c *contact, t int64, outcome, agent string) {
	if c.Ended {
		return
	}
	if t < c.Start {
		t = c.Start
	}
	c.Ended, c.EndAt, c.Outcome = true, t, outcome
	if c.PickedAt == 0 {
		agent = "" // nobody handled it
	}
	c.EndAgent = agent
	delete(f.open, c.ID)
	f.touch(c)
	f.b(c.key(agent)).Ended++
	switch {
	case c.HandedOff && c.PickedAt == 0:
		c.Abandoned = outcome
		b := f.b(c.key(""))
		b.Abandoned++
		if b.AbandonReasons == nil {
			b.AbandonReasons = map[string]int64{}
		}
		b.AbandonReasons[outcome]++
	case c.PickedAt > 0:
		b := f.b(c.key(agent))
		b.Handled++
		b.HandleMs += max(t-c.PickedAt, 0)
	case c.BotAnswered:
		f.b(c.key("")).BotContained++
	}
}

// contactFor finds or starts the contact of a conversation event.
func (f *fold) contactFor(t int64, ev *conv.Event) *contact {
	if ev.Conv != "" {
		if c := f.contacts[ev.Conv]; c != nil {
			f.expire(c, t)
			return c
		}
		// Adopt the customer's synthetic contact (router events carry no Conv).
		if ev.Customer != "" {
			if c := f.contacts[f.last[ev.Customer]]; c != nil && c.Synthetic && !c.Ended {
				f.expire(c, t)
				if !c.Ended {
					f.goneC[c.ID] = struct{}{}
					delete(f.contacts, c.ID)
					delete(f.open, c.ID)
					c.ID, c.Synthetic = ev.Conv, false
					f.contacts[c.ID] = c
					f.open[c.ID] = struct{}{}
					f.last[ev.Customer] = c.ID
					delete(f.goneC, c.ID)
					return c
				}
			}
		}
		if !starts(ev) {
			return nil
		}
		at, first := t, int64(0)
		if ev.Customer != "" && ev.Type != conv.EvMessageReceived {
			at, first = f.takePending(ev.Customer, t)
		}
		c := f.start(at, ev, ev.Conv, false)
		if first != 0 {
			c.FirstMsg = first
		}
		return c
	}
	if ev.Customer == "" {
		return nil
	}
	if c := f.contacts[f.last[ev.Customer]]; c != nil && !c.Ended {
		f.expire(c, t)
		if !c.Ended {
			return c
		}
	}
	if ev.Type == conv.EvMessageReceived {
		// The router logs every message before deciding who takes it; a
		// survey reply is one too. Only a bot or handoff event says a new
		// contact began, so the message waits as "pending" until then.
		if starts(ev) {
			if p, ok := f.pending[ev.Customer]; !ok || t-p > f.cfg.ContactIdle.Milliseconds() {
				f.pending[ev.Customer] = t
				f.dirtyP = true
			}
		}
		return nil
	}
	if !starts(ev) {
		return nil
	}
	at, first := f.takePending(ev.Customer, t)
	id := conv.ConvID("~" + string(ev.Customer) + "@" + strconv.FormatInt(at, 10))
	if f.contacts[id] != nil {
		return f.contacts[id]
	}
	c := f.start(at, ev, id, true)
	c.FirstMsg = first
	return c
}

// takePending returns when a contact starting at t really began: at the
// customer's pending first message if there is a recent one (which is also
// the start of first-response time), else at t.
func (f *fold) takePending(cu conv.CustomerID, t int64) (start, firstMsg int64) {
	p, ok := f.pending[cu]
	if !ok {
		return t, 0
	}
	delete(f.pending, cu)
	f.dirtyP = true
	if t-p > f.cfg.ContactIdle.Milliseconds() || p > t {
		return t, 0
	}
	return p, p
}

// start opens a contact and settles the customer's previous one for FCR.
func (f *fold) start(t int64, ev *conv.Event, id conv.ConvID, synthetic bool) *contact {
	c := &contact{ID: id, Customer: ev.Customer, Store: ev.Store, Channel: ev.Channel, Day: f.day(t),
		Start: t, Last: t, Synthetic: synthetic}
	if ev.Customer != "" {
		if prev := f.contacts[f.last[ev.Customer]]; prev != nil && prev.ID != id {
			if !prev.Ended {
				f.end(prev, prev.Last, "superseded", prev.Agent)
			}
			if !prev.Repeat && t-prev.EndAt <= f.cfg.RepeatWindow.Milliseconds() {
				prev.Repeat = true
				f.touch(prev)
				f.b(prev.key(prev.EndAgent)).Repeat++
			}
		}
		f.last[ev.Customer] = id
	}
	f.contacts[id] = c
	f.open[id] = struct{}{}
	f.touch(c)
	f.b(c.key("")).Contacts++
	return c
}

// expire ends c if it has been idle too long by time t, exactly as the
// sweep would have, so results do not depend on when sweeps ran.
func (f *fold) expire(c *contact, t int64) {
	if c.Ended {
		return
	}
	idle := t - c.Last
	switch {
	case !c.HandedOff && idle > f.cfg.ContactIdle.Milliseconds():
		f.end(c, c.Last, "bot_idle", "")
	case c.HandedOff && idle > f.cfg.StaleAfter.Milliseconds():
		f.end(c, c.Last, "stale", c.Agent)
	}
}

func (f *fold) survey(t int64, ev *conv.Event) {
	c := f.contacts[ev.Conv]
	var k Key
	if c != nil {
		k = c.key(firstNonEmpty(ev.Agent, c.EndAgent, c.PickAgent))
		f.touch(c)
	} else {
		k = Key{Day: f.day(t), Store: ev.Store, Channel: ev.Channel, Agent: ev.Agent}
	}
	if ev.Type == conv.EvSurveyAnswered && ev.Data["kind"] == reSurveyKind {
		if _, ok := f.pending[ev.Customer]; ok && ev.Customer != "" {
			delete(f.pending, ev.Customer)
			f.dirtyP = true
		}
	}
	if ev.Data["kind"] == reSurveyKind {
		// A re-survey after a resolved case measures recovery, not the
		// contact: it stays out of NPS, CSAT and the response rate.
		if ev.Type == conv.EvSurveyAnswered {
			if score, err := strconv.Atoi(strings.TrimSpace(ev.Data["score"])); err == nil && score >= 0 && score <= 10 {
				b := f.b(k)
				b.ReSurveys++
				if score > f.cfg.DetractorMax {
					b.Recovered++
				}
			}
		}
		return
	}
	switch ev.Type {
	case conv.EvSurveyScheduled:
		f.b(k).SurveySched++
	case conv.EvSurveySent:
		f.b(k).SurveySent++
		if c != nil {
			c.SurveySent = true
		}
	case conv.EvSurveyNotSent:
		reason := firstNonEmpty(ev.Reason, "unknown")
		b := f.b(k)
		b.SurveyNot++
		if b.NotSentReasons == nil {
			b.NotSentReasons = map[string]int64{}
		}
		b.NotSentReasons[reason]++
		if c != nil {
			c.NotSent = reason
		}
	case conv.EvSurveyAnswered:
		if _, ok := f.pending[ev.Customer]; ok && ev.Customer != "" {
			delete(f.pending, ev.Customer) // that message was the survey reply
			f.dirtyP = true
		}
		score, err := strconv.Atoi(strings.TrimSpace(ev.Data["score"]))
		if err != nil || score < 0 || score > 10 {
			return
		}
		b := f.b(k)
		b.Responses++
		b.ScoreSum += int64(score)
		switch {
		case score >= f.cfg.PromoterMin:
			b.Promoters++
		case score <= f.cfg.DetractorMax:
			b.Detractors++
		default:
			b.Passives++
		}
		if cs, err := strconv.Atoi(ev.Data["csat"]); err == nil && cs >= 1 && cs <= 5 {
			b.CSATn++
			if cs >= 4 {
				b.CSATSat++
			}
		} else {
			b.CSATn++
			if score >= f.cfg.CSATMinScore {
				b.CSATSat++
			}
		}
		if c != nil {
			c.Score = score + 1
		}
	}
}

func (f *fold) caseEvent(t int64, ev *conv.Event) {
	id := firstNonEmpty(ev.Data["case"], string(ev.Conv))
	if id == "" {
		return
	}
	cs := f.cases[id]
	if ev.Type == conv.EvCaseOpened {
		if cs != nil {
			return // a repeated open is the same case
		}
		c := f.contacts[ev.Conv]
		cs = &caseState{ID: id, Conv: ev.Conv, Opened: t, Deadline: t + f.cfg.CaseDeadline.Milliseconds()}
		if d, err := time.Parse(time.RFC3339, ev.Data["deadline"]); err == nil {
			cs.Deadline = d.UnixMilli()
		}
		if c != nil {
			cs.Key = c.key(firstNonEmpty(ev.Agent, c.EndAgent, c.PickAgent))
			c.Case = id
			f.touch(c)
		} else {
			cs.Key = Key{Day: f.day(t), Store: ev.Store, Channel: ev.Channel, Agent: ev.Agent}
		}
		f.cases[id] = cs
		f.openCases[id] = struct{}{}
		f.dirtyK[id] = struct{}{}
		f.b(cs.Key).Cases++
		return
	}
	if cs == nil {
		return
	}
	f.dirtyK[id] = struct{}{}
	switch ev.Type {
	case conv.EvCaseContacted:
		if cs.Called != 0 {
			return
		}
		cs.Called = t
		b := f.b(cs.Key)
		b.CaseCalled++
		b.CallbackMs += max(t-cs.Opened, 0)
		if t <= cs.Deadline && !cs.Overdue {
			b.CallbackIn++
		} else {
			f.overdue(cs)
		}
	case conv.EvCaseEscalated:
		cs.Escal++
		f.b(cs.Key).CaseEscal++
	case conv.EvCaseClosed:
		if cs.Closed != 0 {
			return
		}
		if cs.Called == 0 {
			// Closing implies the manager reached the customer; without a
			// case_contacted event the close time is the (latest possible)
			// callback time.
			cs.Called = t
			b := f.b(cs.Key)
			b.CaseCalled++
			b.CallbackMs += max(t-cs.Opened, 0)
			if t <= cs.Deadline && !cs.Overdue {
				b.CallbackIn++
			} else {
				f.overdue(cs)
			}
		}
		cs.Closed = t
		delete(f.openCases, id)
		b := f.b(cs.Key)
		b.CaseClosed++
		b.CloseMs += max(t-cs.Opened, 0)
	}
}

func (f *fold) overdue(cs *caseState) {
	if cs.Overdue {
		return
	}
	cs.Overdue = true
	f.dirtyK[cs.ID] = struct{}{}
	f.b(cs.Key).CaseOverdue++
}

// sweep ends idle contacts and marks overdue cases as of the fold's clock
// (the latest event time, not the wall clock, so a replay gives the same
// numbers), and prunes old state once a day.
func (f *fold) sweep() {
	now := f.watermark
	for id := range f.open {
		f.expire(f.contacts[id], now)
	}
	for id := range f.openCases {
		if cs := f.cases[id]; cs.Called == 0 && now > cs.Deadline {
			f.overdue(cs)
		}
	}
	for cu, p := range f.pending {
		if now-p > f.cfg.ContactIdle.Milliseconds() {
			delete(f.pending, cu)
			f.dirtyP = true
		}
	}
	if now-f.pruned < 24*time.Hour.Milliseconds() {
		return
	}
	f.pruned = now
	horizon := now - f.cfg.KeepContacts.Milliseconds()
	for id, c := range f.contacts {
		if c.Ended && c.EndAt < horizon {
			delete(f.contacts, id)
			delete(f.dirtyC, id)
			f.goneC[id] = struct{}{}
			if f.last[c.Customer] == id {
				delete(f.last, c.Customer)
			}
		}
	}
	oldest := f.day(now - int64(f.cfg.KeepDays)*24*time.Hour.Milliseconds())
	for day, keys := range f.days {
		if day >= oldest {
			continue
		}
		for _, k := range keys {
			delete(f.buckets, k)
			delete(f.dirtyB, k)
			f.goneB[k] = struct{}{}
		}
		delete(f.days, day)
	}
	for id, cs := range f.cases {
		if cs.Closed != 0 && cs.Closed < horizon {
			delete(f.cases, id)
			delete(f.dirtyK, id)
			f.goneK[id] = struct{}{}
		}
	}
}

// maxSkew is how far ahead of its log append time an event's At may move
// the fold's clock; plausibleMs (2001-09-09) tells real log IDs from the
// small sequence IDs tests use.
const (
	maxSkew     = 5 * time.Minute
	plausibleMs = 1_000_000_000_000
)

// reSurveyKind is surveys' Data["kind"] of a re-survey after a resolved case.
const reSurveyKind = "re_survey"

// idMillis returns the time part of a log record ID.
func idMillis(id string) int64 {
	ms, _, _ := strings.Cut(id, "-")
	n, _ := strconv.ParseInt(ms, 10, 64)
	return n
}

func firstNonZero(v ...int64) int64 {
	for _, x := range v {
		if x != 0 {
			return x
		}
	}
	return 0
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
