package report

import (
	"fmt"
	"math"
	"testing"
	"time"

	"kefu/conv"
)

var shanghai, _ = time.LoadLocation("Asia/Shanghai")

// t0 is a Monday 10:00 in the stores' zone; test events are offsets from it.
var t0 = time.Date(2026, 11, 2, 10, 0, 0, 0, shanghai)

type mod func(*conv.Event)

// apply folds one event the way a refresh does for a one-record page: the
// fold at id's time, then the cursor at id.
func (f *fold) apply(id string, ev *conv.Event) {
	f.applyAt(idMillis(id), ev)
	f.cursor = id
}

func agent(a string) mod  { return func(e *conv.Event) { e.Agent = a } }
func reason(r string) mod { return func(e *conv.Event) { e.Reason = r } }
func cust(c string) mod   { return func(e *conv.Event) { e.Customer = conv.CustomerID(c) } }
func noConv() mod         { return func(e *conv.Event) { e.Conv = "" } }
func data(k, v string) mod {
	return func(e *conv.Event) {
		if e.Data == nil {
			e.Data = map[string]string{}
		}
		e.Data[k] = v
	}
}

// ev builds an event of conversation c at t0+at; the customer defaults to
// "u-"+c, the store to s1 and the channel to kf.
func ev(typ conv.EventType, c string, at time.Duration, mods ...mod) conv.Event {
	e := conv.Event{Type: typ, At: t0.Add(at), Conv: conv.ConvID(c), Customer: conv.CustomerID("u-" + c), Store: "s1", Channel: "kf"}
	for _, m := range mods {
		m(&e)
	}
	return e
}

func runFold(t *testing.T, cfg Config, evs []conv.Event) *fold {
	t.Helper()
	f := newFold(cfg)
	for i := range evs {
		f.apply(fmt.Sprintf("%d-0", i+1), &evs[i])
	}
	f.sweep()
	return f
}

func totals(f *fold, filter func(Key) bool) Counts {
	var c Counts
	for k, b := range f.buckets {
		if filter == nil || filter(k) {
			c.Add(b)
		}
	}
	return c
}

func byAgent(a string) func(Key) bool { return func(k Key) bool { return k.Agent == a } }

func wantKPI(t *testing.T, c *Counts, name string, want float64, wantN int64) {
	t.Helper()
	v := c.Get(name)
	if !v.OK || math.Abs(v.Value-want) > 0.01 || v.N != wantN {
		t.Errorf("%s = %.3f (n=%d, ok=%v), want %.3f (n=%d)", name, v.Value, v.N, v.OK, want, wantN)
	}
}

func wantNoKPI(t *testing.T, c *Counts, name string) {
	t.Helper()
	if v := c.Get(name); v.OK {
		t.Errorf("%s = %.3f (n=%d), want no value", name, v.Value, v.N)
	}
}

// Four handoffs: picked up at 10 s, at 30 s, abandoned before pickup, and
// picked up at exactly 20 s then transferred.
func queueEvents() []conv.Event {
	s := time.Second
	return []conv.Event{
		ev(conv.EvMessageReceived, "c1", 0),
		ev(conv.EvHandoffRequested, "c1", 1*s),
		ev(conv.EvQueued, "c1", 1*s),
		ev(conv.EvAccepted, "c1", 11*s, agent("a1")),
		ev(conv.EvAgentReply, "c1", 15*s, agent("a1")),
		ev(conv.EvClosed, "c1", 300*s, agent("a1"), data("resolved", "true"), data("disposition", "咨询")),

		ev(conv.EvMessageReceived, "c2", 0),
		ev(conv.EvQueued, "c2", 2*s),
		ev(conv.EvAssigned, "c2", 3*s, agent("a2")),
		ev(conv.EvAccepted, "c2", 32*s, agent("a2")),
		ev(conv.EvAgentReply, "c2", 40*s, agent("a2")),
		ev(conv.EvClosed, "c2", 602*s, agent("a2"), data("resolved", "false")),

		ev(conv.EvMessageReceived, "c3", 0),
		ev(conv.EvQueued, "c3", 0),
		ev(conv.EvAbandoned, "c3", 45*s, reason("customer_left")),

		ev(conv.EvMessageReceived, "c4", 0),
		ev(conv.EvQueued, "c4", 0),
		ev(conv.EvAccepted, "c4", 20*s, agent("a1")),
		ev(conv.EvTransferred, "c4", 60*s, agent("a2"), data("from", "a1")),
		ev(conv.EvClosed, "c4", 120*s, agent("a2"), data("resolved", "true")),
	}
}

func TestFold_ServiceLevelASAAHTAbandonment(t *testing.T) {
	f := runFold(t, DefaultConfig(), queueEvents())
	c := totals(f, nil)
	// Offered 4 (3 picked up + 1 abandoned); within 20 s: c1 (10 s) and c4 (exactly 20 s).
	wantKPI(t, &c, KPIServiceLevel, 50, 4)
	wantKPI(t, &c, KPIASA, (10+30+20)/3.0, 3)
	wantKPI(t, &c, KPIAbandonment, 25, 4)
	// AHT pickup → close: c1 289 s, c2 570 s, c4 100 s (not restarted by the transfer).
	wantKPI(t, &c, KPIAHT, (289+570+100)/3.0, 3)
	// First response: c1 handoff notice after 1 s, c2 agent reply after 40 s; c3 and c4 got none.
	wantKPI(t, &c, KPIFRT, 20.5, 2)
	if c.Contacts != 4 || c.HandedOff != 4 || c.Ended != 4 || c.Resolved != 2 || c.Unresolved != 1 {
		t.Errorf("counts = %+v", c)
	}
	if c.AbandonReasons["customer_left"] != 1 {
		t.Errorf("abandon reasons = %v", c.AbandonReasons)
	}

	// By agent: a1 picked up c1 and c4 (both within 20 s) and closed c1;
	// a2 picked up c2 and closed c2 and c4 after the transfer.
	a1 := totals(f, byAgent("a1"))
	wantKPI(t, &a1, KPIServiceLevel, 100, 2)
	wantKPI(t, &a1, KPIAHT, 289, 1)
	if a1.Transfers != 1 {
		t.Errorf("a1 transfers = %d, want 1", a1.Transfers)
	}
	a2 := totals(f, byAgent("a2"))
	wantKPI(t, &a2, KPIServiceLevel, 0, 1)
	wantKPI(t, &a2, KPIAHT, (570+100)/2.0, 2)
	wantKPI(t, &a2, KPIFRT, 40, 1)
	// Agent first reply: c1 4 s after pickup (a1), c2 8 s (a2); c4 none.
	wantKPI(t, &a2, KPIAgentFirst, 8, 1)
	wantKPI(t, &c, KPIAgentFirst, 6, 2)
	// The abandoned handoff belongs to nobody.
	none := totals(f, byAgent(""))
	if none.Abandoned != 1 || none.Answered != 0 {
		t.Errorf("unassigned bucket = %+v", none)
	}
}

func TestFold_AbandonBeforePickupIsNotHandled(t *testing.T) {
	s := time.Second
	f := runFold(t, DefaultConfig(), []conv.Event{
		ev(conv.EvMessageReceived, "x", 0),
		ev(conv.EvQueued, "x", 1*s),
		ev(conv.EvAssigned, "x", 2*s, agent("a1")), // routed, never accepted
		ev(conv.EvAbandoned, "x", 90*s, reason("timeout")),
		// A late accept after the abandon changes nothing.
		ev(conv.EvAccepted, "x", 95*s, agent("a1")),
	})
	c := totals(f, nil)
	wantKPI(t, &c, KPIAbandonment, 100, 1)
	wantKPI(t, &c, KPIServiceLevel, 0, 1)
	wantNoKPI(t, &c, KPIASA)
	wantNoKPI(t, &c, KPIAHT)
	if c.AbandonReasons["timeout"] != 1 {
		t.Errorf("reasons = %v", c.AbandonReasons)
	}
	if a := totals(f, byAgent("a1")); a.Abandoned != 0 || a.Ended != 0 {
		t.Errorf("abandon charged to the agent: %+v", a)
	}
}

func TestFold_FCRRepeatWindowBoundary(t *testing.T) {
	h, m := time.Hour, time.Minute
	// Each customer has a first contact that ends at +5m, then a second one.
	first := func(c, customer string) []conv.Event {
		return []conv.Event{
			ev(conv.EvMessageReceived, c, 0, cust(customer)),
			ev(conv.EvBotAnswered, c, time.Second, cust(customer)),
			ev(conv.EvClosed, c, 5*m, cust(customer), data("outcome", "bot_idle")),
		}
	}
	var evs []conv.Event
	evs = append(evs, first("a1", "cust-a")...)
	evs = append(evs, first("b1", "cust-b")...)
	evs = append(evs, first("c1", "cust-c")...)
	evs = append(evs,
		ev(conv.EvMessageReceived, "a2", 5*m+23*h+59*m, cust("cust-a")), // 23 h 59 m after the end: repeat
		ev(conv.EvMessageReceived, "c2", 5*m+24*h, cust("cust-c")),      // exactly 24 h: still within
		ev(conv.EvMessageReceived, "b2", 5*m+24*h+1*m, cust("cust-b")),  // 24 h 01 m: not a repeat
	)
	for _, c := range []string{"a2", "c2", "b2"} {
		cu := map[string]string{"a2": "cust-a", "b2": "cust-b", "c2": "cust-c"}[c]
		evs = append(evs, ev(conv.EvClosed, c, 5*m+25*h, cust(cu), data("outcome", "bot_idle")))
	}
	f := runFold(t, DefaultConfig(), evs)
	for id, want := range map[string]bool{"a1": true, "b1": false, "c1": true, "a2": false, "b2": false, "c2": false} {
		if got := f.contacts[conv.ConvID(id)].Repeat; got != want {
			t.Errorf("%s repeat = %v, want %v", id, got, want)
		}
	}
	c := totals(f, nil)
	wantKPI(t, &c, KPIFCR, 100*4/6.0, 6)
	// Repeats are charged to the first contact's day.
	day1 := totals(f, func(k Key) bool { return k.Day == "2026-11-02" })
	wantKPI(t, &day1, KPIFCR, 100/3.0, 3)
}

func TestFold_BotContainmentAndContactsWithoutConv(t *testing.T) {
	s, m := time.Second, time.Minute
	f := runFold(t, DefaultConfig(), []conv.Event{
		// u1: answered by the bot, then silent: contained once idle.
		ev(conv.EvMessageReceived, "", 0, noConv(), cust("u1")),
		ev(conv.EvBotAnswered, "", 500*time.Millisecond, noConv(), cust("u1"), data("entry", "faq-hours")),
		// u2: the router's events carry no Conv; handoff's do. One contact.
		ev(conv.EvMessageReceived, "", 0, noConv(), cust("u2")),
		ev(conv.EvBotFallback, "", 1*s, noConv(), cust("u2")),
		ev(conv.EvHandoffRequested, "", 1500*time.Millisecond, noConv(), cust("u2")),
		ev(conv.EvQueued, "k-1", 2*s, cust("u2")),
		ev(conv.EvAccepted, "k-1", 5*s, cust("u2"), agent("a1")),
		ev(conv.EvClosed, "k-1", 60*s, cust("u2"), agent("a1"), data("resolved", "true")),
		// u3: answered, then back after 40 minutes of silence: a new contact
		// (and a repeat of the first one).
		ev(conv.EvMessageReceived, "", 0, noConv(), cust("u3")),
		ev(conv.EvBotAnswered, "", 1*s, noConv(), cust("u3")),
		ev(conv.EvMessageReceived, "", 40*m, noConv(), cust("u3")),
		ev(conv.EvBotAnswered, "", 40*m+s, noConv(), cust("u3")),
		// An event-only message (subscribe) starts nothing.
		ev(conv.EvMessageReceived, "", 40*m, noConv(), cust("u4"), data("kind", "event")),
	})
	c := totals(f, nil)
	if c.Contacts != 4 || c.Ended != 3 || c.HandedOff != 1 || c.BotContained != 2 {
		t.Fatalf("counts = %+v", c)
	}
	wantKPI(t, &c, KPIContainment, 100*2/3.0, 3)
	wantKPI(t, &c, KPIFCR, 100*2/3.0, 3)
	wantKPI(t, &c, KPIASA, 3, 1) // queued at 2 s, accepted at 5 s
	// FRT: u1 0.5 s, u2 1 s, u3 1 s and 1 s.
	wantKPI(t, &c, KPIFRT, 3.5/4, 4)
	k := f.contacts["k-1"]
	if k == nil || k.Synthetic || !k.HandedOff || k.FirstMsg != t0.UnixMilli() {
		t.Fatalf("adopted contact = %+v", k)
	}
	if len(f.contacts) != 4 {
		t.Errorf("contacts = %d, want 4 (the synthetic one was renamed)", len(f.contacts))
	}
}

func TestFold_SurveysNPSCSATResponseRate(t *testing.T) {
	var evs []conv.Event
	scores := []string{"10", "9", "9", "7", "3"}
	for i, sc := range scores {
		c := fmt.Sprintf("s%d", i)
		evs = append(evs,
			ev(conv.EvMessageReceived, c, 0),
			ev(conv.EvBotAnswered, c, time.Second),
			ev(conv.EvSurveyScheduled, c, time.Minute),
			ev(conv.EvSurveySent, c, 2*time.Minute),
		)
		mods := []mod{data("score", sc)}
		if i == 0 {
			mods = append(mods, data("csat", "2")) // an explicit CSAT answer wins over the NPS score
		}
		evs = append(evs, ev(conv.EvSurveyAnswered, c, 3*time.Minute, mods...))
	}
	evs = append(evs,
		ev(conv.EvSurveySent, "s5", 2*time.Minute),
		ev(conv.EvSurveySent, "s6", 2*time.Minute),
		ev(conv.EvSurveyAnswered, "s6", 3*time.Minute, data("score", "abc")), // not a score: ignored
		ev(conv.EvSurveyNotSent, "s7", 2*time.Minute, reason("frequency_cap")),
		ev(conv.EvSurveyNotSent, "s8", 2*time.Minute, reason("quiet_hours")),
	)
	f := runFold(t, DefaultConfig(), evs)
	c := totals(f, nil)
	if c.Promoters != 3 || c.Passives != 1 || c.Detractors != 1 {
		t.Fatalf("split = %d/%d/%d", c.Promoters, c.Passives, c.Detractors)
	}
	wantKPI(t, &c, KPINPS, 40, 5)
	wantKPI(t, &c, KPICSAT, 60, 5) // 9, 9, 7 satisfied; 10 with CSAT 2 and 3 not
	wantKPI(t, &c, KPIResponseRate, 100*5/7.0, 7)
	if c.NotSentReasons["frequency_cap"] != 1 || c.NotSentReasons["quiet_hours"] != 1 {
		t.Errorf("not-sent reasons = %v", c.NotSentReasons)
	}
}

func TestFold_CaseCallbackDeadline(t *testing.T) {
	h := time.Hour
	f := runFold(t, DefaultConfig(), []conv.Event{
		ev(conv.EvCaseOpened, "A", 0),
		ev(conv.EvCaseOpened, "B", 0, data("deadline", t0.Add(h).Format(time.RFC3339))),
		ev(conv.EvCaseOpened, "C", 0),
		ev(conv.EvCaseOpened, "A", time.Minute), // a repeated open is ignored
		ev(conv.EvCaseContacted, "A", 2*h),
		ev(conv.EvCaseContacted, "B", 3*h), // after its 1 h deadline
		ev(conv.EvCaseClosed, "B", 4*h),
		ev(conv.EvCaseContacted, "A", 4*h), // only the first callback counts
		ev(conv.EvCaseClosed, "A", 5*h),
		ev(conv.EvCaseEscalated, "C", 24*h+time.Minute),
		ev(conv.EvCaseOpened, "D", 25*h), // C is overdue by now, D is not due yet
	})
	c := totals(f, nil)
	if c.Cases != 4 || c.CaseCalled != 2 || c.CaseOverdue != 2 || c.CaseClosed != 2 || c.CaseEscal != 1 {
		t.Fatalf("counts = %+v", c)
	}
	wantKPI(t, &c, KPICallbackTime, 2.5, 2)
	wantKPI(t, &c, KPICallbackWithin, 100/3.0, 3)
	wantKPI(t, &c, KPICloseTime, 4.5, 2)
	if len(f.openCases) != 2 {
		t.Errorf("open cases = %v", f.openCases)
	}
}

func TestFold_StaleHandoffIsAbandoned(t *testing.T) {
	f := runFold(t, DefaultConfig(), []conv.Event{
		ev(conv.EvMessageReceived, "q", 0),
		ev(conv.EvQueued, "q", time.Second),
		// Nothing more for this contact; another event moves the clock past StaleAfter.
		ev(conv.EvMessageReceived, "other", 25*time.Hour),
	})
	c := totals(f, nil)
	if c.Abandoned != 1 || c.AbandonReasons["stale"] != 1 {
		t.Fatalf("counts = %+v", c)
	}
}

func TestConfig_Validate(t *testing.T) {
	cases := []struct {
		name string
		mut  func(*Config)
		ok   bool
	}{
		{"defaults", func(*Config) {}, true},
		{"zone", func(c *Config) { c.Location = "Mars/Olympus" }, false},
		{"sl seconds", func(c *Config) { c.ServiceLevelSeconds = 0 }, false},
		{"target", func(c *Config) { c.ServiceLevelTarget = 1.5 }, false},
		{"nps split", func(c *Config) { c.DetractorMax = 9 }, false},
		{"stale < idle", func(c *Config) { c.StaleAfter = time.Minute }, false},
		{"keep < window", func(c *Config) { c.KeepContacts = time.Hour }, false},
		{"retention", func(c *Config) { c.RetentionDays = 0 }, false},
		{"keep days", func(c *Config) { c.KeepDays = 7 }, false},
		{"page", func(c *Config) { c.PageSize = 0 }, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.mut(&c)
			if err := c.Validate(); (err == nil) != tc.ok {
				t.Errorf("Validate() = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func TestDefinitions_HashChangesWithParams(t *testing.T) {
	a := Definitions(DefaultConfig())
	cfg := DefaultConfig()
	cfg.ServiceLevelSeconds = 30
	b := Definitions(cfg)
	if a[0].Name != KPIServiceLevel || a[0].Hash == b[0].Hash {
		t.Errorf("service level hash did not change: %s vs %s", a[0].Hash, b[0].Hash)
	}
	if a[1].Hash != b[1].Hash {
		t.Errorf("ASA hash changed though its parameters did not")
	}
	if len(a) != len((&Counts{}).Compute()) {
		t.Errorf("%d definitions for %d KPIs", len(a), len((&Counts{}).Compute()))
	}
}

func TestFold_ReSurveyCountsRecoveryNotNPS(t *testing.T) {
	h := time.Hour
	f := runFold(t, DefaultConfig(), []conv.Event{
		ev(conv.EvSurveySent, "r", 0, data("kind", "nps")),
		ev(conv.EvSurveyAnswered, "r", time.Minute, data("kind", "nps"), data("score", "2")),
		ev(conv.EvCaseOpened, "r", time.Minute),
		// Closed without a logged callback: the close counts as the callback.
		ev(conv.EvCaseClosed, "r", 3*h),
		ev(conv.EvSurveySent, "r", 5*h, data("kind", "re_survey")),
		ev(conv.EvSurveyAnswered, "r", 6*h, data("kind", "re_survey"), data("score", "9")),
	})
	c := totals(f, nil)
	wantKPI(t, &c, KPINPS, -100, 1)
	wantKPI(t, &c, KPIResponseRate, 100, 1)
	wantKPI(t, &c, KPICallbackWithin, 100, 1)
	if c.ReSurveys != 1 || c.Recovered != 1 {
		t.Errorf("re-surveys %d, recovered %d; want 1, 1", c.ReSurveys, c.Recovered)
	}
}

func TestFold_SurveyReplyIsNotANewContact(t *testing.T) {
	m := time.Minute
	f := runFold(t, DefaultConfig(), []conv.Event{
		ev(conv.EvMessageReceived, "", 0, noConv(), cust("u9")),
		ev(conv.EvBotAnswered, "", 2*time.Second, noConv(), cust("u9")),
		ev(conv.EvClosed, "", 30*m, noConv(), cust("u9"), data("outcome", "bot_idle")),
		ev(conv.EvSurveySent, "k9", 31*m, cust("u9")),
		// The router logs the customer's "9" before surveys takes it.
		ev(conv.EvMessageReceived, "", 35*m, noConv(), cust("u9")),
		ev(conv.EvSurveyAnswered, "k9", 35*m+time.Second, cust("u9"), data("score", "9")),
		// Two hours later a real new question: a new contact, and a repeat.
		ev(conv.EvMessageReceived, "", 150*m, noConv(), cust("u9")),
		ev(conv.EvBotFallback, "", 150*m+3*time.Second, noConv(), cust("u9")),
	})
	c := totals(f, nil)
	if c.Contacts != 2 || c.Responses != 1 || c.Repeat != 1 {
		t.Fatalf("contacts %d responses %d repeat %d; want 2, 1, 1", c.Contacts, c.Responses, c.Repeat)
	}
	// First response of each contact runs from its first message.
	wantKPI(t, &c, KPIFRT, 2.5, 2)
	if len(f.pending) != 0 {
		t.Errorf("pending left: %v", f.pending)
	}
}

// The handoff domain's transfer: the event names the new owner, who must
// accept again; the previous owner comes from the contact's history.
func TestFold_TransferAsHandoffEmitsIt(t *testing.T) {
	s := time.Second
	f := runFold(t, DefaultConfig(), []conv.Event{
		ev(conv.EvMessageReceived, "t", 0),
		ev(conv.EvQueued, "t", 1*s),
		ev(conv.EvAssigned, "t", 2*s, agent("a1")),
		ev(conv.EvAccepted, "t", 6*s, agent("a1")),
		ev(conv.EvAgentReply, "t", 10*s, agent("a1")),
		func() conv.Event { e := ev(conv.EvTransferred, "t", 60*s, agent("a2")); e.Actor = "a1"; return e }(),
		ev(conv.EvAccepted, "t", 70*s, agent("a2")),
		ev(conv.EvClosed, "t", 200*s, agent("a2"), data("resolved", "true")),
	})
	a1, a2 := totals(f, byAgent("a1")), totals(f, byAgent("a2"))
	if a1.Transfers != 1 || a1.Answered != 1 || a1.Handled != 0 {
		t.Errorf("a1 = %+v", a1)
	}
	wantKPI(t, &a1, KPIASA, 5, 1) // the second accept does not restart the wait
	wantKPI(t, &a1, KPIAgentFirst, 4, 1)
	wantKPI(t, &a2, KPIAHT, 194, 1)
	if a2.Resolved != 1 || a2.Answered != 0 {
		t.Errorf("a2 = %+v", a2)
	}
}

func TestFold_OldBucketsDropAfterKeepDays(t *testing.T) {
	cfg := DefaultConfig()
	cfg.KeepDays = 40
	d := 24 * time.Hour
	f := runFold(t, cfg, []conv.Event{
		ev(conv.EvMessageReceived, "old", 0),
		ev(conv.EvBotAnswered, "old", time.Second),
		ev(conv.EvMessageReceived, "mid", 20*d),
		ev(conv.EvBotAnswered, "mid", 20*d+time.Second),
		ev(conv.EvMessageReceived, "new", 45*d),
		ev(conv.EvBotAnswered, "new", 45*d+time.Second),
	})
	if c := totals(f, nil); c.Contacts != 2 {
		t.Fatalf("contacts = %d, want 2 (day 0 dropped after 40 days)", c.Contacts)
	}
	if _, ok := f.goneB[Key{Day: "2026-11-02", Store: "s1", Channel: "kf"}]; !ok {
		t.Errorf("dropped bucket not scheduled for deletion: %v", f.goneB)
	}
}

func TestFold_ClockSkewDoesNotEndContacts(t *testing.T) {
	f := newFold(DefaultConfig())
	base := t0.UnixMilli()
	id := func(ms int64) string { return fmt.Sprintf("%d-0", ms) }
	evs := []conv.Event{
		ev(conv.EvMessageReceived, "a", 0),
		ev(conv.EvBotAnswered, "a", time.Second),
		// An instance whose clock is a day ahead logs an event now.
		ev(conv.EvMessageReceived, "b", 24*time.Hour),
		ev(conv.EvBotAnswered, "b", 24*time.Hour+time.Second),
	}
	for i := range evs {
		f.apply(id(base+int64(i)*1000), &evs[i])
	}
	f.sweep()
	if c := f.contacts["a"]; c.Ended {
		t.Errorf("contact a ended by a skewed clock (watermark %v)", time.UnixMilli(f.watermark).Sub(t0))
	}
}
