package surveys

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"kefu/conv"
)

// detractor runs a survey for ext at store and answers it with text.
func (h *harness) detractor(ext string, store conv.StoreID, text string) conv.ContactEnded {
	h.t.Helper()
	ce := h.oaContact(ext)
	ce.Store = store
	h.schedule(ce)
	h.advance(DefaultDelay)
	h.reply(ce, "m-"+ext, text)
	h.run()
	return ce
}

func TestCase_OpenAlertRemindEscalateClose(t *testing.T) {
	h := newHarness(t, func(c *Config, o *Options) {
		c.Cases.Deadline = time.Hour
		c.Cases.Reminders = []time.Duration{10 * time.Minute}
	})
	ctx := context.Background()
	var hooked []Case
	h.svc.opts.OnDetractor = func(_ context.Context, c Case) { hooked = append(hooked, c) }
	ce := h.detractor("d1", "store-001", "3分，等太久了")
	cases, err := h.svc.Cases(ctx, CaseFilter{})
	if err != nil || len(cases) != 1 {
		t.Fatalf("cases = %+v, %v", cases, err)
	}
	c := cases[0]
	if c.State != CaseOpen || c.Score != 3 || c.Comment != "等太久了" || c.Store != "store-001" || c.Agent != "agent-7" || c.Conv != ce.Conv || len(hooked) != 1 {
		t.Fatalf("case = %+v (hook %d)", c, len(hooked))
	}
	// The comment came with the score: the alert goes out at once.
	alerts := h.out.to(conv.OutWeComApp, "mgr-001")
	if len(alerts) != 1 || alerts[0].Channel != "mgr" || alerts[0].Reply.Kind != conv.ReplyMarkdown {
		t.Fatalf("open alerts = %+v", alerts)
	}
	body := alerts[0].Reply.Text
	for _, want := range []string{"3</font> 分", "等太久了", "南京路店", "agent-7", "/console/conversations/", "/surveys/claim?", "sig="} {
		if !strings.Contains(body, want) {
			t.Errorf("alert lacks %q:\n%s", want, body)
		}
	}
	// The store's robot gets the same alert.
	if r := h.out.to(conv.OutRobot, "robot-key-1"); len(r) != 1 || !strings.Contains(r[0].Reply.Text, "等太久了") {
		t.Fatalf("robot = %+v", r)
	}
	h.advance(50 * time.Minute)
	if rem := containing(h.out.to(conv.OutWeComApp, "mgr-001"), "差评提醒"); len(rem) != 1 {
		t.Fatalf("reminder = %+v", rem)
	}
	h.advance(11 * time.Minute) // deadline passed: region
	if esc := containing(h.out.to(conv.OutWeComApp, "region-mgr"), "差评升级"); len(esc) != 1 {
		t.Fatalf("escalation 1 = %+v", h.out.all())
	}
	h.advance(time.Hour) // another deadline: HQ
	if esc := containing(h.out.to(conv.OutWeComApp, "hq-boss"), "差评升级"); len(esc) != 1 {
		t.Fatalf("escalation 2 = %+v", esc)
	}
	h.advance(5 * time.Hour) // nothing above HQ
	if n := len(h.ev.of(conv.EvCaseEscalated)); n != 2 {
		t.Fatalf("escalations = %d", n)
	}
	if _, err := h.svc.UpdateCase(ctx, c.ID, "wang", CaseUpdate{Action: "close", Outcome: DefaultOutcomes[0]}); !errors.Is(err, ErrNeedRootCause) {
		t.Fatalf("close without root cause: %v", err)
	}
	if _, err := h.svc.UpdateCase(ctx, c.ID, "wang", CaseUpdate{Action: "close", RootCause: "天气", Outcome: DefaultOutcomes[0]}); !errors.Is(err, ErrNeedRootCause) {
		t.Fatalf("close with an unlisted root cause: %v", err)
	}
	if _, err := h.svc.UpdateCase(ctx, c.ID, "wang", CaseUpdate{Action: "contacted", Note: "电话已联系"}); err != nil {
		t.Fatal(err)
	}
	closed, err := h.svc.UpdateCase(ctx, c.ID, "wang", CaseUpdate{Action: "close", RootCause: "等待时间长", Outcome: DefaultOutcomes[0], Note: "赠送优惠券"})
	if err != nil || closed.State != CaseClosed || closed.RootCause != "等待时间长" || closed.Owner != "wang" {
		t.Fatalf("closed = %+v, %v", closed, err)
	}
	if ev := h.ev.of(conv.EvCaseClosed); len(ev) != 1 || ev[0].Data["within_deadline"] != "false" || ev[0].Actor != "wang" {
		t.Fatalf("closed events = %+v", ev)
	}
	if _, err := h.svc.UpdateCase(ctx, c.ID, "wang", CaseUpdate{Action: "contacted"}); !errors.Is(err, conv.ErrConflict) {
		t.Fatalf("contacted after close: %v", err)
	}
}

func TestCase_BareScoreWaitsForReasonThenAlerts(t *testing.T) {
	h := newHarness(t)
	ce := h.oaContact("d2")
	h.schedule(ce)
	h.advance(DefaultDelay)
	replies, _ := h.reply(ce, "s1", "2")
	if len(replies) != 1 || replies[0].Text != DefaultFollowUp {
		t.Fatalf("replies = %v", texts(replies))
	}
	h.run()
	if n := len(h.out.to(conv.OutWeComApp, "mgr-001")); n != 0 {
		t.Fatal("alert sent before the hold, without the reason")
	}
	h.clock.Advance(5 * time.Second)
	replies, _ = h.reply(ce, "s2", "店员态度差")
	if len(replies) != 1 || replies[0].Text != DefaultContactTime {
		t.Fatalf("after the reason: %v", texts(replies))
	}
	h.run()
	alerts := h.out.to(conv.OutWeComApp, "mgr-001")
	if len(alerts) != 1 || !strings.Contains(alerts[0].Reply.Text, "店员态度差") {
		t.Fatalf("alerts = %+v", alerts)
	}
	replies, _ = h.reply(ce, "s3", "周末都可以")
	if len(replies) != 1 || replies[0].Text != DefaultThanks {
		t.Fatalf("after the call-back time: %v", texts(replies))
	}
	h.advance(DefaultRobotBatchEvery) // one post per member per batch interval
	if upd := containing(h.out.to(conv.OutWeComApp, "mgr-001"), "周末都可以"); len(upd) != 1 {
		t.Fatalf("update = %+v", h.out.to(conv.OutWeComApp, "mgr-001"))
	}
	if c, _ := h.svc.LoadCase(context.Background(), caseIDOf(surveyID(ce))); c.PreferredTime != "周末都可以" {
		t.Fatalf("case = %+v", c)
	}
	// Without a reason the alert still goes out after the hold.
	ce3 := h.oaContact("d3")
	h.schedule(ce3)
	h.advance(DefaultDelay)
	h.reply(ce3, "t1", "0分")
	zero := func() int { return len(containing(h.out.to(conv.OutWeComApp, "mgr-001"), "0</font> 分")) }
	h.advance(DefaultAlertHold - time.Second)
	if zero() != 0 {
		t.Fatal("alert before the hold ended")
	}
	h.advance(time.Second)
	if zero() != 1 {
		t.Fatalf("alerts after hold = %d", zero())
	}
	// The reason arriving after the alert follows as an update.
	h.reply(ce3, "t2", "客服根本不理人")
	h.advance(DefaultRobotBatchEvery)
	if upd := containing(h.out.to(conv.OutWeComApp, "mgr-001"), "客户留言：客服根本不理人"); len(upd) != 1 {
		t.Fatalf("comment update = %+v", h.out.to(conv.OutWeComApp, "mgr-001"))
	}
}

func TestCase_RobotAlertsBatchedIntoOneMarkdown(t *testing.T) {
	h := newHarness(t, func(c *Config, o *Options) { c.ThrottleDays = 0 })
	// Three detractors within the batch interval: one post, three lines.
	for i := range 3 {
		ce := h.oaContact(fmt.Sprintf("r%d", i))
		h.schedule(ce)
	}
	h.advance(DefaultDelay)
	for i := range 3 {
		ce := h.oaContact(fmt.Sprintf("r%d", i))
		ce.Conv = "" // reply only needs the customer
		h.reply(ce, fmt.Sprintf("rm%d", i), fmt.Sprintf("%d分，问题%d", i+1, i))
	}
	h.run()
	first := h.out.to(conv.OutRobot, "robot-key-1")
	h.advance(DefaultRobotBatchEvery)
	posts := h.out.to(conv.OutRobot, "robot-key-1")
	lines := 0
	for _, p := range posts {
		lines += strings.Count(p.Reply.Text, "问题")
	}
	if lines != 3 || len(posts) > 2 || len(posts) == 3 {
		t.Fatalf("robot posts = %d (first flush %d), alert lines = %d", len(posts), len(first), lines)
	}
	if last := posts[len(posts)-1]; len(posts) == 2 && !strings.Contains(last.Reply.Text, "条差评提醒") {
		t.Fatalf("second post is not a batch:\n%s", last.Reply.Text)
	}
}

func TestCase_WebhookSignedAndRetried(t *testing.T) {
	const secret = "hook-secret-123456"
	var mu sync.Mutex
	var got []WebhookAlert
	fails := 2
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if SignWebhook(secret, r.Header.Get("X-Kefu-Timestamp"), body) != r.Header.Get("X-Kefu-Signature") || r.Header.Get("X-Kefu-Delivery") == "" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if fails > 0 {
			fails--
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		var a WebhookAlert
		_ = json.Unmarshal(body, &a)
		got = append(got, a)
	}))
	defer srv.Close()
	h := newHarness(t, func(c *Config, o *Options) {
		c.Alerts.WebhookSecret = secret
		c.Stores.Children[0].Children[1].Managers[0].Webhook = srv.URL + "/hook"
	})
	h.detractor("w1", "store-002", "1分，东西坏了")
	for range 6 {
		h.advance(5 * time.Second)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0].Score != 1 || got[0].Comment != "东西坏了" || got[0].Store != "store-002" || got[0].Claim == "" {
		t.Fatalf("webhook deliveries = %+v (fails left %d)", got, fails)
	}
}

func TestHandler_ManagersSeeOnlyTheirStores(t *testing.T) {
	h := newHarness(t, func(c *Config, o *Options) { c.ThrottleDays = 0 })
	h.detractor("h1", "store-001", "2分，慢")
	h.detractor("h2", "store-002", "4分，贵")
	srv := h.svc.Handler()
	do := func(p *conv.Principal, method, path, body string) (int, map[string]any) {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		if method == "POST" {
			req.Header.Set("Content-Type", "application/json")
		}
		if p != nil {
			req = req.WithContext(conv.WithPrincipal(req.Context(), *p))
		}
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		var m map[string]any
		_ = json.Unmarshal(rec.Body.Bytes(), &m)
		return rec.Code, m
	}
	wang := &conv.Principal{User: "wang", Role: conv.RoleStoreManager, Stores: []conv.StoreID{"store-001"}}
	region := &conv.Principal{User: "region", Role: conv.RoleStoreManager, Stores: []conv.StoreID{"east"}}
	if code, _ := do(nil, "GET", "/surveys/api/cases", ""); code != http.StatusUnauthorized {
		t.Fatalf("no principal: %d", code)
	}
	_, m := do(wang, "GET", "/surveys/api/cases", "")
	cs := m["cases"].([]any)
	if len(cs) != 1 || cs[0].(map[string]any)["store"] != "store-001" || cs[0].(map[string]any)["identity"] != nil {
		t.Fatalf("wang sees %v", cs)
	}
	other := ""
	_, m = do(region, "GET", "/surveys/api/cases", "")
	for _, c := range m["cases"].([]any) {
		if c.(map[string]any)["store"] == "store-002" {
			other = c.(map[string]any)["id"].(string)
		}
	}
	if len(m["cases"].([]any)) != 2 || other == "" {
		t.Fatalf("region sees %v", m["cases"])
	}
	if code, _ := do(wang, "GET", "/surveys/api/cases/"+other, ""); code != http.StatusNotFound {
		t.Fatalf("wang reads another store's case: %d", code)
	}
	if code, _ := do(wang, "POST", "/surveys/api/cases/"+other, `{"action":"contacted"}`); code != http.StatusNotFound {
		t.Fatalf("wang updates another store's case: %d", code)
	}
	if code, m := do(region, "POST", "/surveys/api/cases/"+other, `{"action":"close","root_cause":"价格","outcome":"未联系上"}`); code != 200 || m["state"] != "closed" {
		t.Fatalf("region closes: %d %v", code, m)
	}
	form := httptest.NewRequest("POST", "/surveys/api/cases/"+other, strings.NewReader(`{"action":"contacted"}`))
	form.Header.Set("Content-Type", "text/plain")
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, form.WithContext(conv.WithPrincipal(form.Context(), *region)))
	if rec.Code != http.StatusBadRequest {
		t.Fatalf("text/plain POST (a cross-site form) accepted: %d", rec.Code)
	}
	_, m = do(wang, "GET", "/surveys/api/nps?by=store", "")
	for _, r := range m["rows"].([]any) {
		if k := r.(map[string]any)["key"]; k != "store-001" {
			t.Fatalf("wang's NPS shows %v", k)
		}
	}
	code, _ := do(wang, "GET", "/surveys/", "")
	if code != 200 || !bytes.Contains(managerPage, []byte("api/cases")) || bytes.Contains(managerPage, []byte("http://")) || bytes.Contains(managerPage, []byte("https://")) {
		t.Fatalf("page: %d (must be served and load nothing from a CDN)", code)
	}
}

func TestClaimLink(t *testing.T) {
	h := newHarness(t)
	h.detractor("c1", "store-001", "3分，排队太久")
	cases, _ := h.svc.Cases(context.Background(), CaseFilter{})
	link := h.svc.ClaimURL(cases[0].ID, "wang")
	u, _ := url.Parse(link)
	srv := h.svc.Handler()
	get := func(q url.Values) int {
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, httptest.NewRequest("GET", "/surveys/claim?"+q.Encode(), nil))
		return rec.Code
	}
	forged := u.Query()
	forged.Set("who", "mallory")
	if code := get(forged); code != http.StatusForbidden {
		t.Fatalf("forged claim: %d", code)
	}
	if code := get(u.Query()); code != 200 {
		t.Fatalf("claim: %d", code)
	}
	c, _ := h.svc.LoadCase(context.Background(), cases[0].ID)
	if c.Owner != "wang" {
		t.Fatalf("owner = %q", c.Owner)
	}
	h.clock.Advance(8 * 24 * time.Hour)
	if code := get(u.Query()); code != http.StatusForbidden {
		t.Fatalf("expired claim: %d", code)
	}
}

func TestReSurvey_CountsRecoveredDetractor(t *testing.T) {
	h := newHarness(t, func(c *Config, o *Options) {
		c.Cases.ReSurvey = true
		c.Cases.ReSurveyDelay = time.Hour
	})
	ce := h.detractor("rs", "store-001", "2分，很失望")
	cases, _ := h.svc.Cases(context.Background(), CaseFilter{})
	// The manager calls back; the customer writes again, which reopens the window.
	h.reply(ce, "again", "你们店长给我打电话了") // not pending: goes to the bot
	if _, err := h.svc.UpdateCase(context.Background(), cases[0].ID, "wang", CaseUpdate{Action: "resolved"}); err != nil {
		t.Fatal(err)
	}
	if ev := h.ev.of(EvCaseResolved); len(ev) != 1 || ev[0].Data["within_deadline"] != "true" {
		t.Fatalf("resolved events = %+v", ev)
	}
	h.advance(time.Hour)
	rs := h.out.byPrefix("survey:r")
	if len(rs) != 1 {
		t.Fatalf("re-survey = %+v (reasons %v)", rs, h.ev.reasons())
	}
	h.reply(ce, "rs1", "9分")
	c, _ := h.svc.LoadCase(context.Background(), cases[0].ID)
	if c.RecoveryScore == nil || *c.RecoveryScore != 9 || !c.Recovered {
		t.Fatalf("case after re-survey = %+v", c)
	}
	if n := len(h.svc.mustCases(t)); n != 1 {
		t.Fatalf("a recovered promoter opened %d cases", n)
	}
}

func (s *Service) mustCases(t *testing.T) []Case {
	cs, err := s.Cases(context.Background(), CaseFilter{})
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func TestCase_TemplateAlertToManagerOpenID(t *testing.T) {
	h := newHarness(t, func(c *Config, o *Options) {
		c.Alerts.TemplateChannel, c.Alerts.TemplateID = "demo", "TPL-DETRACTOR"
		c.Stores.Children[0].Children[1].Managers[0].OpenID = "oMgr002openid"
	})
	h.detractor("t1", "store-002", "5分，一般")
	tpl := h.out.byPrefix("alert:")
	var got *conv.Outbound
	for i := range tpl {
		if tpl[i].Kind == conv.OutTemplate {
			got = &tpl[i]
		}
	}
	if got == nil || got.To != "oMgr002openid" || got.Channel != "demo" || got.Template.TemplateID != "TPL-DETRACTOR" ||
		got.Template.Data["keyword2"] != "5分" || got.Template.Data["keyword3"] != "一般" || !strings.Contains(got.Template.URL, "/surveys/claim?") {
		t.Fatalf("template alert = %+v", got)
	}
}

// A detractor of a store missing from the tree still reaches someone: HQ.
func TestCase_UnknownStoreAlertsHQ(t *testing.T) {
	h := newHarness(t)
	h.detractor("u1", "store-999", "1分，没人管")
	if got := h.out.to(conv.OutWeComApp, "hq-boss"); len(got) != 1 || len(h.out.all()) != 2 { // survey + alert
		t.Fatalf("alerts = %+v", h.out.all())
	}
}

// A misconfigured route (the sender refuses it) neither blocks the other
// routes nor retries forever.
func TestCase_RefusedRouteDoesNotBlockOthers(t *testing.T) {
	h := newHarnessSender(t, func(f *fakeSender) Sender { return refusing{f} }, func(c *Config, o *Options) {
		c.Alerts.TemplateChannel, c.Alerts.TemplateID = "no-such-channel", "TPL"
		c.Stores.Children[0].Children[0].Managers[0].OpenID = "oWangOpenID01"
	})
	h.detractor("x1", "store-001", "2分，太慢")
	if n := len(h.out.to(conv.OutWeComApp, "mgr-001")); n != 1 {
		t.Fatalf("app alert = %d", n)
	}
	c := h.svc.mustCases(t)[0]
	failed := false
	for _, e := range c.History {
		failed = failed || (e.Action == "alert_failed" && strings.Contains(e.Note, "template"))
	}
	if !failed {
		t.Fatalf("history = %+v", c.History)
	}
	// Left: two reminders, the escalation and the survey's expiry (it waits
	// for the call-back time); no alert retrying.
	if n, _ := h.eng.QueueLen(context.Background(), queueTimers); n != 4 {
		t.Fatalf("%d timers pending: a refused alert is being retried", n)
	}
}

// refusing rejects sends to unknown channels like gateway.Sender does.
type refusing struct{ *fakeSender }

func (r refusing) Send(ctx context.Context, o conv.Outbound) error {
	if o.Channel == "no-such-channel" {
		return fmt.Errorf("%w: unknown channel %q", conv.ErrBadInput, o.Channel)
	}
	return r.fakeSender.Send(ctx, o)
}

// An alert queued for a target while that target's batch is being posted
// (another instance, or another case on this one) re-arms the very timer
// that is running. It must still go out: the flush that was running must
// not retire the timer the new alert armed.
func TestCase_AlertQueuedDuringFlushIsNotStranded(t *testing.T) {
	h := newHarness(t, func(c *Config, o *Options) { c.ThrottleDays = 0 })
	target := batchTarget{Kind: conv.OutRobot, To: "robot-key-1"}
	ctx := context.Background()
	queued := false
	h.out.delivered = func(o conv.Outbound) {
		if o.Kind != conv.OutRobot || queued {
			return
		}
		queued = true
		if err := h.svc.queueBatch(ctx, target, "alert:late:open:r", "late-full", "late-line"); err != nil {
			t.Error(err)
		}
	}
	if err := h.svc.queueBatch(ctx, target, "alert:first:open:r", "first-full", "first-line"); err != nil {
		t.Fatal(err)
	}
	h.run()
	if got := len(h.out.to(conv.OutRobot, "robot-key-1")); got != 1 || !queued {
		t.Fatalf("first flush: %d posts, late alert queued: %v", got, queued)
	}
	h.advance(DefaultRobotBatchEvery)
	posts := h.out.to(conv.OutRobot, "robot-key-1")
	if len(posts) != 2 || posts[0].Reply.Text != "first-full" || posts[1].Reply.Text != "late-full" {
		t.Fatalf("robot posts after the batch gap: %+v", posts)
	}
	if n, err := h.eng.QueueLen(ctx, queueTimers); err != nil || n != 0 {
		t.Fatalf("timers left: %d, %v", n, err)
	}
}
