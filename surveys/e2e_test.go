package surveys_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"kefu/conv"
	"kefu/engine"
	"kefu/gateway"
	"kefu/surveys"
	"kefu/wxsim"
)

// Identities of the simulated platform. AES keys are 43 characters.
const (
	corpID    = "ww0011223344556677"
	appID     = "wx1234567890abcdef"
	oaToken   = "oatoken"
	kfToken   = "kftoken"
	kfKey     = "ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zyxwvut"
	kfSecret  = "kf-secret"
	kfID      = "wkTESTKF01"
	appToken  = "apptoken"
	appKey    = "0123456789abcdefghijABCDEFGHIJklmnopqrstUVW"
	robotKey  = "robot-key-1"
	agentUser = "agent1"
)

// tree is brand → region east → store-001 (manager mgr-001, store robot).
func tree() conv.StoreNode {
	return conv.StoreNode{ID: "brand", Name: "总部", Managers: []conv.Manager{{Name: "HQ", WeComUserID: "hq-boss", Login: "hq"}},
		Children: []conv.StoreNode{{ID: "east", Name: "华东区", Managers: []conv.Manager{{Name: "区域经理", WeComUserID: "region-mgr", Login: "region"}},
			Children: []conv.StoreNode{{ID: "store-001", Name: "南京路店", Managers: []conv.Manager{{Name: "王店长", WeComUserID: "mgr-001", Login: "wang", RobotKey: robotKey}}}}}}}
}

func newSim(t *testing.T) (*wxsim.API, string) {
	sim := wxsim.NewAPI(wxsim.APIOptions{
		OA:     []wxsim.OAApp{{AppID: appID, Secret: "oa-secret"}},
		WeCom:  []wxsim.WeComApp{{CorpID: corpID, AgentID: 1000002, Secret: "app-secret"}},
		KF:     []wxsim.KFCorp{{CorpID: corpID, Secret: kfSecret, Accounts: []string{kfID}, Servicers: []string{agentUser}}},
		Robots: []string{robotKey},
	})
	base := sim.Start()
	t.Cleanup(sim.Close)
	return sim, base
}

// instance is one kefu process: a real gateway (fasthttp on loopback,
// real sender against the simulator) whose handler is the survey stage in
// front of a one-line bot, plus the survey service.
type instance struct {
	gw  *gateway.Gateway
	svc *surveys.Service
	eng engine.Engine
	url string
	mu  sync.Mutex
	ev  []conv.Event
}

func (in *instance) events(t conv.EventType) []conv.Event {
	in.mu.Lock()
	defer in.mu.Unlock()
	var out []conv.Event
	for _, e := range in.ev {
		if e.Type == t {
			out = append(out, e)
		}
	}
	return out
}

func startInstance(t *testing.T, eng engine.Engine, base string, cfg surveys.Config) *instance {
	t.Helper()
	in := &instance{eng: eng}
	gcfg := gateway.DefaultConfig()
	gcfg.APIBase, gcfg.WeComAPIBase = base, base
	gcfg.PassiveBudget = time.Second
	gcfg.Outbound.BaseBackoff, gcfg.Outbound.MaxBackoff = 50*time.Millisecond, 200*time.Millisecond
	gcfg.Channels = []gateway.ChannelConfig{
		{Name: "demo", Type: conv.ChannelWeChatOA, AppID: appID, AppSecret: "oa-secret", Token: oaToken, Store: "store-001"},
		{Name: "kf", Type: conv.ChannelWeComKF, AppID: corpID, AppSecret: kfSecret, Token: kfToken, EncodingAESKey: kfKey, Store: "store-001"},
		{Name: "mgr", Type: conv.ChannelWeComApp, AppID: corpID, AppSecret: "app-secret", AgentID: 1000002, Token: appToken, EncodingAESKey: appKey},
	}
	// The app's router: surveys stage, then the bot (here: an echo that
	// tells surveys about its turn, as the real router will).
	handler := gateway.HandlerFunc(func(ctx context.Context, m conv.Message) ([]conv.Reply, error) {
		replies, handled, err := in.svc.Route(ctx, m)
		if err != nil || handled {
			return replies, err
		}
		if m.Kind != conv.MsgText {
			return nil, nil
		}
		if err := in.svc.NoteBotTurn(ctx, m, "kb-echo"); err != nil {
			return nil, err
		}
		return []conv.Reply{conv.Text("bot:" + m.Text)}, nil
	})
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	gw, err := gateway.New(gcfg, eng, handler, gateway.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := surveys.New(cfg, eng, gw.Sender, surveys.Options{Logger: quiet, Emit: func(e conv.Event) {
		in.mu.Lock()
		in.ev = append(in.ev, e)
		in.mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	gw.Sender.OnResult = svc.OutboundResult
	in.gw, in.svc = gw, svc
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: gw.HTTPHandler(), ReadTimeout: 5 * time.Second, ErrorHandler: gateway.ErrorHandler}
	go func() { _ = srv.Serve(ln) }()
	in.url = "http://" + ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, run := range []func(context.Context) error{gw.Sender.Run, gw.RunKFPuller, svc.Run} {
		wg.Add(1)
		go func() { defer wg.Done(); _ = run(ctx) }()
	}
	t.Cleanup(func() {
		cancel()
		_ = srv.Shutdown()
		wg.Wait()
		_ = gw.Drain(context.Background())
	})
	return in
}

func e2eConfig() surveys.Config {
	cfg := surveys.DefaultConfig()
	cfg.Stores = tree()
	cfg.Alerts.WeComAppChannel = "mgr"
	cfg.Alerts.ConsoleURL = "https://kefu.example.com"
	cfg.Alerts.ClaimSecret = "claim-secret-0123456789"
	cfg.QuietStart, cfg.QuietEnd = "", "" // the test runs at any hour
	cfg.Digest.Enabled = false
	cfg.PollInterval = 50 * time.Millisecond
	cfg.Alerts.RobotBatchEvery = 500 * time.Millisecond // the real 3 s only slows the test
	return cfg
}

func openEngine(t *testing.T) engine.Engine {
	e, err := engine.OpenEmbedded(t.TempDir(), engine.EmbeddedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s", d, what)
}

func inboxHas(sim *wxsim.API, to, substr string) bool {
	for _, s := range sim.Inbox(to) {
		if strings.Contains(s.Content, substr) {
			return true
		}
	}
	return false
}

// The whole loop through the simulator: a KF contact ends → the survey
// question arrives on the end-of-session code → "3分，等太久了" → a case
// and a WeCom app alert to the store manager → escalation to the region
// when the (shortened) deadline passes → the manager closes it with a
// root cause on the manager API → the NPS report shows it.
func TestE2E_KFSurveyDetractorCaseEscalationClose(t *testing.T) {
	sim, base := newSim(t)
	cfg := e2eConfig()
	cfg.Cases.Deadline = 3 * time.Second
	cfg.Cases.Reminders = []time.Duration{time.Second}
	cfg.Alerts.Hold = 10 * time.Second
	in := startInstance(t, openEngine(t), base, cfg)
	ctx := context.Background()
	kc := &wxsim.KFClient{URL: in.url + "/wecom/kf/kf", Token: kfToken, CorpID: corpID, EncodingAESKey: kfKey, API: sim, RetryWait: -1}
	const user = "wm-customer-1"

	// A contact: the customer asks, the "bot" answers over send_msg.
	started := time.Now()
	if _, err := kc.CustomerSends(ctx, kfID, user, "你们几点关门"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "bot answer", func() bool { return inboxHas(sim, user, "bot:你们几点关门") })
	// The agent closes it: the session ends (state 4) and hands out the
	// 20 s end-of-session code; handoff calls Schedule.
	code, err := in.gw.KFTransfer(ctx, "kf", kfID, user, gateway.KFStateEnded, "")
	if err != nil || code == "" {
		t.Fatalf("KF end session: code=%q err=%v", code, err)
	}
	if err := in.svc.NoteHandoff(ctx, conv.NewCustomerID("kf", user)); err != nil {
		t.Fatal(err)
	}
	ended := time.Now()
	ce := conv.ContactEnded{Conv: "conv-e2e-1", Customer: conv.NewCustomerID("kf", user), Channel: "kf", ChannelType: conv.ChannelWeComKF,
		ExternalUser: user, Account: kfID, Store: "store-001", Agent: agentUser, HandedOff: true, Disposition: "咨询", Resolved: true,
		Outcome: "closed", StartedAt: started, EndedAt: ended, LastCustomerMsgAt: started, KFCode: code}
	if err := in.svc.Schedule(ctx, ce); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "survey question", func() bool { return inboxHas(sim, user, "向您的同事或朋友推荐") })
	var q wxsim.Sent
	for _, s := range sim.Inbox(user) {
		if strings.Contains(s.Content, "推荐") {
			q = s
		}
	}
	if q.Channel != "kf_event" || q.Content != surveys.DefaultQuestion {
		t.Fatalf("question came as %+v", q)
	}
	t.Logf("survey question delivered %s after the contact ended (KF code valid 20 s)", q.At.Sub(ended).Round(time.Millisecond))
	waitFor(t, 5*time.Second, "survey_sent event", func() bool { return len(in.events(conv.EvSurveySent)) == 1 })
	if ev := in.events(conv.EvSurveySent)[0]; ev.Data["via"] != "kf_end_code" || ev.Store != "store-001" || ev.Agent != agentUser {
		t.Fatalf("survey_sent = %+v", ev)
	}

	// The detractor answers with score and reason in one message.
	answered := time.Now()
	if _, err := kc.CustomerSends(ctx, kfID, user, "3分，等太久了"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "manager alert", func() bool { return inboxHas(sim, "mgr-001", "等太久了") })
	latency := time.Since(answered)
	t.Logf("detractor reply → WeCom alert to the store manager: %s", latency.Round(time.Millisecond))
	if latency > 55*time.Second {
		t.Fatalf("alert took %s; the product promises a minute", latency)
	}
	var alert wxsim.Sent
	for _, s := range sim.Inbox("mgr-001") {
		alert = s
	}
	for _, want := range []string{"3</font> 分", "南京路店", agentUser, "/console/conversations/conv-e2e-1", "/surveys/claim?"} {
		if !strings.Contains(alert.Content, want) {
			t.Errorf("alert lacks %q:\n%s", want, alert.Content)
		}
	}
	if alert.Channel != "wecom" || alert.MsgType != "markdown" {
		t.Errorf("alert went as %s/%s", alert.Channel, alert.MsgType)
	}
	// A detractor is asked when the manager may call; the answer reaches
	// the manager as an update and the customer is thanked.
	waitFor(t, 10*time.Second, "call-back time question", func() bool { return inboxHas(sim, user, "什么时间方便回访") })
	if _, err := kc.CustomerSends(ctx, kfID, user, "明天下午3点后"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "thanks", func() bool { return inboxHas(sim, user, surveys.DefaultThanks) })
	waitFor(t, 10*time.Second, "call-back time update", func() bool { return inboxHas(sim, "mgr-001", "明天下午3点后") })
	opened := in.events(conv.EvCaseOpened)
	if len(opened) != 1 {
		t.Fatalf("case_opened events: %+v", opened)
	}
	caseID := opened[0].Data["case"]
	t.Logf("case %s opened %s after the reply", caseID, opened[0].At.Sub(answered).Round(time.Millisecond))

	// Deadline 3 s: a reminder to the store, then escalation to the region.
	waitFor(t, 15*time.Second, "escalation to the region manager", func() bool { return inboxHas(sim, "region-mgr", "差评升级") })
	if !inboxHas(sim, "mgr-001", "差评提醒") {
		t.Error("no reminder before the deadline")
	}
	if ev := in.events(conv.EvCaseEscalated); len(ev) == 0 || ev[0].Data["to"] != "east" {
		t.Fatalf("escalation events: %+v", ev)
	}

	// The store manager closes it from the manager page's API.
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := conv.Principal{User: "wang", Name: "王店长", Role: conv.RoleStoreManager, Stores: []conv.StoreID{"store-001"}}
		in.svc.Handler().ServeHTTP(w, r.WithContext(conv.WithPrincipal(r.Context(), p)))
	}))
	defer page.Close()
	post := func(body string) (int, map[string]any) {
		resp, err := http.Post(page.URL+"/surveys/api/cases/"+caseID, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	if code, _ := post(`{"action":"close","outcome":"已解决-客户满意"}`); code != http.StatusBadRequest {
		t.Fatalf("close without root cause: %d", code)
	}
	if code, m := post(`{"action":"contacted","note":"已电话回访"}`); code != 200 || m["state"] != "contacted" {
		t.Fatalf("contacted: %d %v", code, m)
	}
	code2, m := post(`{"action":"close","root_cause":"等待时间长","outcome":"已解决-客户满意","note":"加派周末人手"}`)
	if code2 != 200 || m["state"] != "closed" || m["root_cause"] != "等待时间长" {
		t.Fatalf("close: %d %v", code2, m)
	}
	if ev := in.events(conv.EvCaseClosed); len(ev) != 1 || ev[0].Actor != "wang" {
		t.Fatalf("case_closed events: %+v", ev)
	}

	// The report sees one detractor of one survey sent: NPS −100, 100 % response.
	var out, errb bytes.Buffer
	if rc := surveys.ReportNPS([]string{"--by", "store", "--csv"}, &out, &errb, in.eng, cfg); rc != 0 {
		t.Fatalf("report: rc=%d %s", rc, errb.String())
	}
	if !strings.Contains(out.String(), "store-001,南京路店,-100.0,1,0.0,0.0,100.0,0,0,1,1,100.0") || !strings.Contains(out.String(), "brand,总部,-100.0") {
		t.Fatalf("report:\n%s", out.String())
	}
}
