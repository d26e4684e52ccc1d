package surveys

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v3"

	"kefu/conv"
	"kefu/engine"
)

func TestSchedule_OASurveyAfterDelayWithAttribution(t *testing.T) {
	h := newHarness(t)
	ce := h.oaContact("u1")
	h.schedule(ce)
	h.schedule(ce) // the hook firing twice schedules one survey
	h.run()
	if n := len(h.out.all()); n != 0 {
		t.Fatalf("sent %d before the delay", n)
	}
	h.advance(DefaultDelay)
	sent := h.out.byPrefix("survey:")
	if len(sent) != 1 {
		t.Fatalf("want 1 survey, got %+v", sent)
	}
	o := sent[0]
	if o.Kind != conv.OutCustomer || o.Channel != "demo" || o.To != "u1" || !o.TriggerAt.Equal(ce.LastCustomerMsgAt) || o.Reply.Text != DefaultQuestion {
		t.Fatalf("survey outbound = %+v", o)
	}
	sv, err := h.svc.loadSurvey(context.Background(), surveyID(ce))
	if err != nil {
		t.Fatal(err)
	}
	a := sv.Attribution
	if sv.State != StateAsked || a.Store != "store-001" || a.Agent != "agent-7" || !a.HandedOff || a.DurationSec != 540 ||
		a.Disposition != "咨询" || !slices.Equal(a.Entries, []string{"kb-12"}) || sv.Version != "nps-zh-1" {
		t.Fatalf("survey record = %+v", sv)
	}
	if len(h.ev.of(conv.EvSurveyScheduled)) != 1 || len(h.ev.of(conv.EvSurveySent)) != 1 {
		t.Fatalf("events: %+v", h.ev.all)
	}
}

func TestSchedule_KFUsesEndOfSessionCodeAtOnce(t *testing.T) {
	h := newHarness(t)
	now := h.clock.Now()
	ce := conv.ContactEnded{Conv: "kfc-1", Customer: "kf:ext1", Channel: "kf", ChannelType: conv.ChannelWeComKF, ExternalUser: "ext1", Account: "wkTEST",
		Store: "store-001", Outcome: "closed", EndedAt: now, LastCustomerMsgAt: now.Add(-time.Minute), KFCode: "CODE1"}
	h.schedule(ce)
	h.run() // no delay: the code lives 20 s
	sent := h.out.byPrefix("survey:")
	if len(sent) != 1 || sent[0].Kind != conv.OutKFEvent || sent[0].Code != "CODE1" || sent[0].Account != "wkTEST" {
		t.Fatalf("KF survey = %+v", sent)
	}
}

// Rule: at most one survey per brand-wide identity per N days. Removing
// the throttle makes the second survey go out and this test fail.
func TestGovernance_ThrottleAcrossChannels(t *testing.T) {
	h := newHarness(t, func(c *Config, o *Options) {
		o.Identity = func(c conv.CustomerID) string { return "union-" + strings.SplitN(string(c), ":", 2)[1] }
	})
	first := h.oaContact("same")
	h.schedule(first)
	h.advance(DefaultDelay)
	// Same person on the KF account of another store a day later.
	h.clock.Advance(24 * time.Hour)
	now := h.clock.Now()
	second := conv.ContactEnded{Conv: "kf-conv-2", Customer: "kf:same", Channel: "kf", ChannelType: conv.ChannelWeComKF, ExternalUser: "same",
		Store: "store-002", Outcome: "closed", EndedAt: now, LastCustomerMsgAt: now}
	h.schedule(second)
	h.advance(DefaultDelay)
	if n := len(h.out.byPrefix("survey:")); n != 1 {
		t.Fatalf("surveys sent = %d, want 1 (throttled)", n)
	}
	if got := h.ev.reasons(); !slices.Equal(got, []string{"throttled"}) {
		t.Fatalf("reasons = %v", got)
	}
	// After the 30 days the customer may be asked again.
	h.clock.Advance(30 * 24 * time.Hour)
	now = h.clock.Now()
	third := h.oaContact("same")
	third.EndedAt, third.LastCustomerMsgAt = now, now
	h.schedule(third)
	h.advance(DefaultDelay)
	if n := len(h.out.byPrefix("survey:")); n != 2 {
		t.Fatalf("after 30 days: surveys = %d, want 2", n)
	}
}

// Rule: quiet hours defer (not drop) while the window allows; beyond the
// window the survey is not sent with reason quiet_hours.
func TestGovernance_QuietHoursDeferThenSend(t *testing.T) {
	h := newHarness(t)
	h.clock.Set(time.Date(2026, 11, 23, 22, 30, 0, 0, cst))
	ce := h.oaContact("night")
	h.schedule(ce)
	h.advance(DefaultDelay)
	if n := len(h.out.all()); n != 0 {
		t.Fatalf("survey sent at %s, inside quiet hours", h.clock.Now().In(cst))
	}
	h.clock.Set(time.Date(2026, 11, 24, 8, 59, 0, 0, cst))
	h.run()
	if n := len(h.out.all()); n != 0 {
		t.Fatal("sent before quiet hours ended")
	}
	h.clock.Set(time.Date(2026, 11, 24, 9, 0, 0, 0, cst))
	h.run()
	if n := len(h.out.byPrefix("survey:")); n != 1 {
		t.Fatalf("deferred survey not sent at 09:00 (sent %d)", n)
	}
	if len(h.ev.reasons()) != 0 {
		t.Fatalf("unexpected not-sent: %v", h.ev.reasons())
	}
}

func TestGovernance_QuietHoursBeyondWindowIsNotSent(t *testing.T) {
	h := newHarness(t)
	h.clock.Set(time.Date(2026, 11, 23, 23, 0, 0, 0, cst))
	ce := h.oaContact("late")
	ce.LastCustomerMsgAt = h.clock.Now().Add(-47 * time.Hour) // window ends 00:00, before 09:00
	h.schedule(ce)
	h.advance(DefaultDelay)
	if n := len(h.out.all()); n != 0 || !slices.Equal(h.ev.reasons(), []string{"quiet_hours"}) {
		t.Fatalf("sent=%d reasons=%v", n, h.ev.reasons())
	}
	// A KF end-of-session code cannot wait for the morning either.
	now := h.clock.Now()
	kf := conv.ContactEnded{Conv: "kf-night", Customer: "kf:n2", Channel: "kf", ChannelType: conv.ChannelWeComKF, ExternalUser: "n2",
		Store: "store-001", EndedAt: now, LastCustomerMsgAt: now, KFCode: "C"}
	h.schedule(kf)
	h.run()
	if n := len(h.out.all()); n != 0 || !slices.Equal(h.ev.reasons(), []string{"quiet_hours", "quiet_hours"}) {
		t.Fatalf("KF at night: sent=%d reasons=%v", n, h.ev.reasons())
	}
}

// Rule: OA custom/send only inside 48 h of the customer's last message;
// the KF end code only inside its 20 s.
func TestGovernance_WindowExpired(t *testing.T) {
	h := newHarness(t)
	ce := h.oaContact("old")
	ce.LastCustomerMsgAt = h.clock.Now().Add(-48 * time.Hour)
	h.schedule(ce)
	h.advance(DefaultDelay)
	if n := len(h.out.all()); n != 0 || !slices.Equal(h.ev.reasons(), []string{"window_expired"}) {
		t.Fatalf("sent=%d reasons=%v", n, h.ev.reasons())
	}
	noMsg := h.oaContact("nomsg")
	noMsg.LastCustomerMsgAt = time.Time{}
	h.schedule(noMsg)
	h.advance(DefaultDelay)
	now := h.clock.Now()
	kf := conv.ContactEnded{Conv: "kf-late", Customer: "kf:k", Channel: "kf", ChannelType: conv.ChannelWeComKF, ExternalUser: "k",
		Store: "store-001", EndedAt: now.Add(-30 * time.Second), LastCustomerMsgAt: now, KFCode: "C"}
	h.schedule(kf)
	h.run()
	if n := len(h.out.all()); n != 0 || !slices.Equal(h.ev.reasons(), []string{"window_expired", "window_expired", "window_expired"}) {
		t.Fatalf("sent=%d reasons=%v", n, h.ev.reasons())
	}
}

// Rule: the survey never takes a message the 5-per-48 h quota no longer
// has; and a quota/window death reported by the sender becomes the reason.
func TestGovernance_QuotaExhausted(t *testing.T) {
	var qs *quotaSender
	h := newHarnessSender(t, func(f *fakeSender) Sender {
		qs = &quotaSender{fakeSender: f, left: 0, until: noon.Add(47 * time.Hour)}
		return qs
	})
	ce := h.oaContact("busy")
	h.schedule(ce)
	h.advance(DefaultDelay)
	if n := len(h.out.all()); n != 0 || !slices.Equal(h.ev.reasons(), []string{"quota_exhausted"}) {
		t.Fatalf("sent=%d reasons=%v", n, h.ev.reasons())
	}
	// With quota left it goes out; the sender then dead-letters it (45047).
	qs.left = 2
	ce2 := h.oaContact("busy2")
	h.schedule(ce2)
	h.advance(DefaultDelay)
	if n := len(h.out.byPrefix("survey:")); n != 1 {
		t.Fatalf("sent = %d", n)
	}
	h.svc.OutboundResult(h.out.byPrefix("survey:")[0], errors.New("quota_exhausted"))
	h.svc.OutboundResult(conv.Outbound{ID: "survey:unknown"}, errors.New("send_failed:45009 api freq out of limit"))
	if got := h.ev.reasons(); !slices.Equal(got, []string{"quota_exhausted", "quota_exhausted"}) {
		t.Fatalf("reasons = %v", got)
	}
	// The customer never got it: the throttle slot is free again.
	ok, err := h.svc.throttle(context.Background(), string(ce2.Customer), "another", h.clock.Now())
	if err != nil || !ok {
		t.Fatalf("throttle still held after a failed send: %v %v", ok, err)
	}
}

func TestSendReason(t *testing.T) {
	for in, want := range map[string]string{
		"window_expired":                              "window_expired",
		"quota_exhausted":                             "quota_exhausted",
		"send_failed:45009 api freq out of limit":     "send_failed:45009",
		"no_permission (48001: the account lacks it)": "send_failed:48001",
		"max_attempts: connection refused":            "send_failed:unknown",
	} {
		if got := sendReason(errors.New(in)); got != want {
			t.Errorf("sendReason(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestGovernance_OptOutAndOpenCase(t *testing.T) {
	h := newHarness(t, func(c *Config, o *Options) { c.ThrottleDays = 0 })
	ce := h.oaContact("quit")
	replies, handled := h.reply(ce, "m-td", "退订")
	if !handled || len(replies) != 1 || replies[0].Text != DefaultOptOutAck {
		t.Fatalf("opt-out reply: %v %v", handled, texts(replies))
	}
	h.schedule(ce)
	h.advance(DefaultDelay)
	if n := len(h.out.all()); n != 0 || !slices.Equal(h.ev.reasons(), []string{"opted_out"}) || len(h.ev.of(EvSurveyOptOut)) != 1 {
		t.Fatalf("sent=%d reasons=%v", n, h.ev.reasons())
	}

	// A detractor's open case blocks the next survey until it is resolved.
	d := h.oaContact("angry")
	h.schedule(d)
	h.advance(DefaultDelay)
	h.reply(d, "m1", "2分，太慢了")
	h.clock.Advance(time.Hour)
	d2 := h.oaContact("angry")
	h.schedule(d2)
	h.advance(DefaultDelay)
	if got := h.ev.reasons(); got[len(got)-1] != "case_open" {
		t.Fatalf("reasons = %v, want case_open last", got)
	}
	cases, _ := h.svc.Cases(context.Background(), CaseFilter{})
	if _, err := h.svc.UpdateCase(context.Background(), cases[0].ID, "wang", CaseUpdate{Action: "resolved"}); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(time.Hour)
	d3 := h.oaContact("angry")
	h.schedule(d3)
	h.advance(DefaultDelay)
	if n := len(h.out.byPrefix("survey:")); n != 2 {
		t.Fatalf("after resolution: surveys = %d, want 2", n)
	}
}

func TestRoute_ScoreFollowUpAndThanks(t *testing.T) {
	h := newHarness(t)
	ce := h.oaContact("p1")
	h.schedule(ce)
	h.advance(DefaultDelay)
	replies, handled := h.reply(ce, "m1", "９分")
	if !handled || !slices.Equal(texts(replies), []string{DefaultFollowUp}) {
		t.Fatalf("after score: %v %v", handled, texts(replies))
	}
	// WeChat redelivers the same message: same answer, nothing recorded twice.
	replies, handled = h.reply(ce, "m1", "９分")
	if !handled || !slices.Equal(texts(replies), []string{DefaultFollowUp}) {
		t.Fatalf("redelivery: %v %v", handled, texts(replies))
	}
	replies, handled = h.reply(ce, "m2", "小姐姐很耐心")
	if !handled || !slices.Equal(texts(replies), []string{DefaultThanks}) {
		t.Fatalf("after reason: %v %v", handled, texts(replies))
	}
	// The survey is over: the next message belongs to the bot.
	if _, handled = h.reply(ce, "m3", "8"); handled {
		t.Fatal("a message after the survey was taken by it")
	}
	sv, _ := h.svc.loadSurvey(context.Background(), surveyID(ce))
	if sv.State != StateDone || *sv.Score != 9 || sv.Comment != "小姐姐很耐心" {
		t.Fatalf("survey = %+v", sv)
	}
	if ev := h.ev.of(conv.EvSurveyAnswered); len(ev) != 1 || ev[0].Data["score"] != "9" || ev[0].Data["version"] != "nps-zh-1" {
		t.Fatalf("answered events = %+v", ev)
	}
	if n := len(h.out.all()); n != 1 {
		t.Fatalf("a promoter raised an alert: %+v", h.out.all())
	}
}

func TestRoute_NewQuestionReopensAndGarbageIsAskedOnce(t *testing.T) {
	h := newHarness(t)
	ce := h.oaContact("q1")
	h.schedule(ce)
	h.advance(DefaultDelay)
	if _, handled := h.reply(ce, "m1", "你们几点关门？"); handled {
		t.Fatal("a new question was swallowed by the survey")
	}
	if evs := h.ev.of(EvSurveyUnanswered); len(evs) != 1 || evs[0].Reason != "reopened" {
		t.Fatalf("unanswered = %+v", evs)
	}
	if _, handled := h.reply(ce, "m2", "9"); handled {
		t.Fatal("after reopening, a number must go to the bot (it may answer a clarify menu)")
	}

	ce2 := h.oaContact("q2")
	ce2.Customer, ce2.ExternalUser = "demo:q2", "q2"
	h.svc.cfg.ThrottleDays = 0
	h.schedule(ce2)
	h.advance(DefaultDelay)
	replies, handled := h.reply(ce2, "n1", "11分")
	if !handled || !slices.Equal(texts(replies), []string{DefaultReprompt}) {
		t.Fatalf("out of range: %v %v", handled, texts(replies))
	}
	if _, handled := h.reply(ce2, "n2", "嗯嗯"); handled {
		t.Fatal("asked twice without a score: must let go")
	}
	sv, _ := h.svc.loadSurvey(context.Background(), surveyID(ce2))
	if sv.State != StateUnanswered || sv.Reason != "unparseable" || sv.Score != nil {
		t.Fatalf("survey = %+v", sv)
	}
}

func TestRoute_ExpiryGivesReason(t *testing.T) {
	h := newHarness(t)
	ce := h.oaContact("silent")
	h.schedule(ce)
	h.advance(DefaultDelay)
	h.advance(DefaultExpiry)
	if evs := h.ev.of(EvSurveyUnanswered); len(evs) != 1 || evs[0].Reason != "expired" {
		t.Fatalf("unanswered = %+v", evs)
	}
	if _, handled := h.reply(ce, "late", "10"); handled {
		t.Fatal("an expired survey took a message")
	}
}

func TestBotIdle_EndsContactUnlessHandedOff(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	msg := conv.Message{ID: "b1", Channel: "demo", ChannelType: conv.ChannelWeChatOA, Customer: "demo:bot1", ExternalUser: "bot1", Store: "store-002",
		Kind: conv.MsgText, Text: "营业时间", CreatedAt: h.clock.Now()}
	if err := h.svc.NoteBotTurn(ctx, msg, "kb-hours"); err != nil {
		t.Fatal(err)
	}
	h.advance(5 * time.Minute)
	msg.ID, msg.CreatedAt = "b2", h.clock.Now()
	if err := h.svc.NoteBotTurn(ctx, msg, "kb-address"); err != nil {
		t.Fatal(err)
	}
	h.advance(9 * time.Minute) // 14 min after the first turn, 9 after the last
	if len(h.ev.of(conv.EvSurveyScheduled)) != 0 {
		t.Fatal("contact ended while the customer was still talking to the bot")
	}
	h.advance(time.Minute)
	sch := h.ev.of(conv.EvSurveyScheduled)
	if len(sch) != 1 || sch[0].Data["outcome"] != "bot_idle" || sch[0].Store != "store-002" {
		t.Fatalf("scheduled = %+v", sch)
	}
	// Reports end the bot-only contact on a closed event.
	if cl := h.ev.of(conv.EvClosed); len(cl) != 1 || cl[0].Data["outcome"] != "bot_idle" || cl[0].Customer != "demo:bot1" {
		t.Fatalf("closed = %+v", cl)
	}
	h.advance(time.Minute) // past the delay (counted from the last turn)
	sent := h.out.byPrefix("survey:")
	if len(sent) != 1 {
		t.Fatalf("bot-only survey not sent: %+v", h.ev.all)
	}
	sv, _ := h.svc.loadSurvey(ctx, strings.TrimPrefix(sent[0].ID, "survey:"))
	if sv.Attribution.HandedOff || !slices.Equal(sv.Attribution.Entries, []string{"kb-hours", "kb-address"}) || sv.Attribution.Outcome != "bot_idle" {
		t.Fatalf("attribution = %+v", sv.Attribution)
	}

	// A handoff cancels the idle end: the agent's close ends the contact.
	msg2 := conv.Message{ID: "c1", Channel: "demo", ChannelType: conv.ChannelWeChatOA, Customer: "demo:bot2", ExternalUser: "bot2", Kind: conv.MsgText, CreatedAt: h.clock.Now()}
	_ = h.svc.NoteBotTurn(ctx, msg2, "")
	if err := h.svc.NoteHandoff(ctx, "demo:bot2"); err != nil {
		t.Fatal(err)
	}
	h.advance(time.Hour)
	if n := len(h.ev.of(conv.EvSurveyScheduled)); n != 1 {
		t.Fatalf("handed-off contact ended by the idle timer (%d scheduled)", n)
	}
}

func TestConfig_Validate(t *testing.T) {
	ok := testConfig()
	if err := ok.Validate(); err != nil {
		t.Fatalf("test config invalid: %v", err)
	}
	cases := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"bad userid", func(c *Config) { c.Stores.Children[0].Managers[0].WeComUserID = "a|b" }, "stores.children[0].managers[0].wecom_userid:"},
		{"second manager", func(c *Config) {
			c.Stores.Children[0].Children[1].Managers = append(c.Stores.Children[0].Children[1].Managers, conv.Manager{Name: "x", WeComUserID: "bad user"})
		}, "stores.children[0].children[1].managers[1].wecom_userid:"},
		{"no route", func(c *Config) { c.Stores.Managers[0] = conv.Manager{Name: "HQ"} }, "stores.managers[0]: has no alert route"},
		{"robot url", func(c *Config) { c.Stores.Children[0].Children[0].Managers[0].RobotKey = "https://qyapi/x?key=1" }, "managers[0].robot_key"},
		{"webhook unsigned", func(c *Config) { c.Stores.Managers[0].Webhook = "https://hooks.example.com/x" }, "stores.managers[0].webhook: is set but alerts.webhook_secret"},
		{"dup id", func(c *Config) { c.Stores.Children[0].Children[1].ID = "store-001" }, "stores.children[0].children[1].id: duplicate"},
		{"opening", func(c *Config) { c.Stores.Children[0].Children[0].Opening = "25:00" }, "stores.children[0].children[0].opening"},
		{"quiet", func(c *Config) { c.QuietStart = "9pm" }, "quiet_start: must be HH:MM"},
		{"tz", func(c *Config) { c.Timezone = "Mars/Base" }, "timezone"},
		{"threshold", func(c *Config) { c.DetractorMax = 10 }, "detractor_max"},
		{"question", func(c *Config) { c.Question.Text = "" }, "question.text"},
		{"version", func(c *Config) { c.Question.Version = "" }, "question.version"},
		{"hold", func(c *Config) { c.Alerts.Hold = time.Minute }, "alerts.hold"},
		{"reminder", func(c *Config) { c.Cases.Reminders = []time.Duration{48 * time.Hour} }, "cases.reminders[0]"},
		{"root causes", func(c *Config) { c.Cases.RootCauses = nil }, "cases.root_causes"},
		{"claim secret", func(c *Config) { c.Alerts.ClaimSecret = "short" }, "alerts.claim_secret"},
		{"style", func(c *Config) { c.Question.Style = "stars" }, "question.style"},
	}
	for _, c := range cases {
		cfg := testConfig()
		c.mod(&cfg)
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want it to contain %q", c.name, err, c.want)
		}
	}
}

func TestConfig_YAML(t *testing.T) {
	src := `
enabled: true
delay: 90s
bot_idle: 15m
throttle_days: 14
quiet_start: "22:00"
quiet_end: "08:30"
question:
  version: nps-zh-2
  text: 您愿意把我们推荐给朋友吗？请回复0-10。
  follow_up: 为什么？
  thanks: 谢谢
cases:
  deadline: 12h
  reminders: [2h]
  root_causes: [等待时间长]
  outcomes: [已解决]
alerts:
  wecom_app_channel: mgr
  hold: 15s
stores:
  id: brand
  name: 总部
  children:
    - id: s1
      name: 一店
      opening: "10:00"
      managers:
        - {name: 王, wecom_userid: wang, login: wang}
`
	cfg := DefaultConfig()
	dec := yaml.NewDecoder(strings.NewReader(src))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.Delay != 90*time.Second || cfg.Cases.Reminders[0] != 2*time.Hour || cfg.Stores.Children[0].Managers[0].WeComUserID != "wang" || cfg.Question.Reprompt != DefaultReprompt {
		t.Fatalf("decoded %+v", cfg)
	}
	dec = yaml.NewDecoder(strings.NewReader("delya: 1m\n"))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err == nil {
		t.Fatal("unknown key accepted")
	}
}

// Timers are durable: a survey scheduled before a restart is sent after it.
func TestSchedule_SurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: noon}
	out := &fakeSender{}
	open := func() (*Service, func()) {
		eng, err := engine.OpenEmbedded(dir, engine.EmbeddedOptions{})
		if err != nil {
			t.Fatal(err)
		}
		svc, err := New(testConfig(), eng, out, Options{Now: c.Now, Logger: testLogger()})
		if err != nil {
			t.Fatal(err)
		}
		return svc, func() { _ = eng.Close() }
	}
	svc, closeEng := open()
	h := &harness{t: t, clock: c}
	if err := svc.Schedule(context.Background(), h.oaContact("restart")); err != nil {
		t.Fatal(err)
	}
	if err := svc.Schedule(context.Background(), conv.ContactEnded{Customer: "x"}); !errors.Is(err, conv.ErrBadInput) {
		t.Fatalf("incomplete contact: %v", err)
	}
	closeEng()
	c.Advance(DefaultDelay)
	svc, closeEng = open()
	defer closeEng()
	for svc.RunDue(context.Background()) > 0 {
	}
	if n := len(out.byPrefix("survey:")); n != 1 {
		t.Fatalf("after restart: %d surveys", n)
	}
}

// A KF code that expired falls back to send_msg when the session still
// allows API sending, and only then.
func TestSchedule_KFCodeExpiredFallsBackToSendMsg(t *testing.T) {
	state := 1
	h := newHarness(t, func(c *Config, o *Options) {
		o.KFServiceState = func(context.Context, string, string, string) (int, string, error) { return state, "", nil }
	})
	now := h.clock.Now()
	kf := func(id string) conv.ContactEnded {
		return conv.ContactEnded{Conv: conv.ConvID("kf-" + id), Customer: conv.CustomerID("kf:" + id), Channel: "kf", ChannelType: conv.ChannelWeComKF,
			ExternalUser: id, Account: "wk1", Store: "store-001", EndedAt: now.Add(-time.Minute), LastCustomerMsgAt: now.Add(-2 * time.Minute), KFCode: "C"}
	}
	h.schedule(kf("a"))
	h.run()
	sent := h.out.byPrefix("survey:")
	if len(sent) != 1 || sent[0].Kind != conv.OutCustomer || sent[0].Code != "" || !sent[0].TriggerAt.Equal(now.Add(-2*time.Minute)) {
		t.Fatalf("fallback = %+v", sent)
	}
	state = 4 // 已结束: no API sending until the customer writes
	h.schedule(kf("b"))
	h.run()
	if n := len(h.out.byPrefix("survey:")); n != 1 || !slices.Equal(h.ev.reasons(), []string{"window_expired"}) {
		t.Fatalf("ended session: sent=%d reasons=%v", n, h.ev.reasons())
	}
}

// The JSON channel has no platform window: the survey goes through its
// callback and quiet hours defer it up to delay + max_defer.
func TestSchedule_JSONChannelCallbackAndDeferral(t *testing.T) {
	h := newHarness(t)
	h.clock.Set(time.Date(2026, 11, 23, 20, 59, 0, 0, cst))
	now := h.clock.Now()
	ce := conv.ContactEnded{Conv: "web-1", Customer: "web:w1", Channel: "web", ChannelType: conv.ChannelJSON, ExternalUser: "w1", Store: "store-001",
		Outcome: "closed", EndedAt: now}
	h.schedule(ce)
	h.advance(DefaultDelay) // 21:01: quiet
	if n := len(h.out.all()); n != 0 {
		t.Fatal("sent in quiet hours")
	}
	h.clock.Set(time.Date(2026, 11, 24, 9, 0, 0, 0, cst))
	h.run()
	sent := h.out.byPrefix("survey:")
	if len(sent) != 1 || sent[0].Kind != conv.OutCustomer || sent[0].Channel != "web" || sent[0].To != "w1" {
		t.Fatalf("json survey = %+v", sent)
	}
}

// "退订" as the answer ends the survey with reason opted_out and keeps
// every later survey away, on any channel of the identity.
func TestRoute_OptOutAsAnswer(t *testing.T) {
	h := newHarness(t, func(c *Config, o *Options) { c.ThrottleDays = 0 })
	ce := h.oaContact("quit2")
	h.schedule(ce)
	h.advance(DefaultDelay)
	replies, handled := h.reply(ce, "q1", "退订")
	if !handled || !slices.Equal(texts(replies), []string{DefaultOptOutAck}) {
		t.Fatalf("opt-out answer: %v %v", handled, texts(replies))
	}
	if ev := h.ev.of(EvSurveyUnanswered); len(ev) != 1 || ev[0].Reason != "opted_out" {
		t.Fatalf("unanswered = %+v", ev)
	}
	h.clock.Advance(time.Hour)
	again := h.oaContact("quit2")
	h.schedule(again)
	h.advance(DefaultDelay)
	if n := len(h.out.byPrefix("survey:")); n != 1 || !slices.Equal(h.ev.reasons(), []string{"opted_out"}) {
		t.Fatalf("sent=%d reasons=%v", n, h.ev.reasons())
	}
	if ok, _ := h.svc.OptedOut(context.Background(), ce.Customer); !ok {
		t.Fatal("OptedOut = false")
	}
}

// The sender's quota book knows a newer customer message than the contact
// did: its window decides, not the contact's.
func TestGovernance_WindowFromQuotaBook(t *testing.T) {
	h := newHarnessSender(t, func(f *fakeSender) Sender {
		return &quotaSender{fakeSender: f, left: 3, until: noon.Add(40 * time.Hour)}
	})
	ce := h.oaContact("wrote-again")
	ce.LastCustomerMsgAt = noon.Add(-47*time.Hour - 59*time.Minute) // the contact's window is over
	h.schedule(ce)
	h.advance(DefaultDelay)
	if n := len(h.out.byPrefix("survey:")); n != 1 || len(h.ev.reasons()) != 0 {
		t.Fatalf("sent=%d reasons=%v", n, h.ev.reasons())
	}
}

func TestMetrics_EventsByReason(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := newHarness(t, func(c *Config, o *Options) { o.Registry = reg })
	ce := h.oaContact("m1")
	ce.LastCustomerMsgAt = time.Time{}
	h.schedule(ce)
	h.advance(DefaultDelay)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += "," + l.GetName() + "=" + l.GetValue()
			}
			found[key] = m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	if found["kefu_survey_events_total,reason=window_expired,type=survey_not_sent"] != 1 || found["kefu_survey_events_total,reason=,type=survey_scheduled"] != 1 {
		t.Fatalf("metrics = %v", found)
	}
	if _, ok := found["kefu_survey_timers"]; !ok {
		t.Fatalf("no timer gauge: %v", found)
	}
}

// BenchmarkRoute_NoSurveyPending is the stage's cost on every message of a
// customer without a pending survey (the common case).
func BenchmarkRoute_NoSurveyPending(b *testing.B) {
	eng, err := engine.OpenEmbedded(b.TempDir(), engine.EmbeddedOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer eng.Close()
	svc, err := New(testConfig(), eng, &fakeSender{}, Options{Logger: testLogger()})
	if err != nil {
		b.Fatal(err)
	}
	msg := conv.Message{ID: "m", Channel: "demo", ChannelType: conv.ChannelWeChatOA, Customer: "demo:bench", ExternalUser: "bench", Kind: conv.MsgText, Text: "请问营业时间是几点"}
	ctx := context.Background()
	for b.Loop() {
		if _, handled, err := svc.Route(ctx, msg); err != nil || handled {
			b.Fatal(handled, err)
		}
	}
}

// Unsubscribing deletes what surveys hold about the customer; report
// records never held the platform id.
func TestForgetCustomer(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	ce := h.detractor("gone", "store-001", "1分，太差了") // asked for a call-back time: still pending
	if err := h.svc.ForgetCustomer(ctx, ce.Customer); err != nil {
		t.Fatal(err)
	}
	sv, _ := h.svc.loadSurvey(ctx, surveyID(ce))
	c := h.svc.mustCases(t)[0]
	if sv.Contact.ExternalUser != "" || strings.Contains(string(sv.Contact.Customer), "gone") || c.ExternalUser != "" || strings.Contains(string(c.Customer), "gone") {
		t.Fatalf("ids kept: survey %+v case %+v", sv.Contact, c)
	}
	if c.Score != 1 || c.Comment != "太差了" {
		t.Fatalf("the case lost its substance: %+v", c)
	}
	if _, handled := h.reply(ce, "after", "明天"); handled {
		t.Fatal("a forgotten customer's message was taken by the survey")
	}
	resps, err := LoadResponses(ctx, h.eng)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range resps {
		if strings.Contains(r.Customer, "gone") || !strings.HasPrefix(r.Customer, "p:") {
			t.Fatalf("report record holds %q", r.Customer)
		}
	}
}
