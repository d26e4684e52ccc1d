package console

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"golang.org/x/crypto/bcrypt"

	"kefu/conv"
	"kefu/engine"
	"kefu/gateway"
	"kefu/handoff"
	"kefu/wxsim"
)

// The stack under test is what the app wires: the real gateway with the
// WeChat API simulator, a router in front of the handoff desk (the same
// calls app.Router makes), the desk, and the console on its own listener.
const (
	testAppID    = "wx1234567890abcdef"
	testOAToken  = "oatoken"
	testPass     = "correct horse battery"
	testCorpID   = "ww0011223344556677"
	testKFToken  = "kftoken"
	testKFKey    = "ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zyxwvut"
	testKFSecret = "kf-secret"
	testKFID     = "wkTESTKF01"
	testJSONKey  = "json-hmac-secret-0123456789"
)

func testLogger() *slog.Logger {
	if os.Getenv("KEFU_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

var (
	hashOnce sync.Once
	testHash string
)

// passwordHash is a low-cost bcrypt hash of testPass (tests stay fast;
// production hashes use PasswordCost).
func passwordHash(t testing.TB) string {
	hashOnce.Do(func() {
		b, err := bcrypt.GenerateFromPassword([]byte(testPass), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		testHash = string(b)
	})
	return testHash
}

func testUsers(t testing.TB) []User {
	h := passwordHash(t)
	return []User{
		{Name: "alice", PasswordHash: h, Role: conv.RoleAgent, Stores: []conv.StoreID{"s1"}, Display: "小爱", Number: "1001", WeComUserID: "agent1"},
		{Name: "carol", PasswordHash: h, Role: conv.RoleAgent, Stores: []conv.StoreID{"s3"}, Number: "1003"},
		{Name: "sam", PasswordHash: h, Role: conv.RoleSupervisor, Number: "9001"},
		{Name: "mgr", PasswordHash: h, Role: conv.RoleStoreManager, Stores: []conv.StoreID{"s3"}},
	}
}

// miniRouter does what app.Router does for the desk: the desk stage
// first, then a one-entry "bot" that answers or hands off, with every
// customer message and bot reply appended to the transcript.
type miniRouter struct {
	desk *handoff.Service
}

func (r *miniRouter) Handle(ctx context.Context, msg conv.Message) ([]conv.Reply, error) {
	if msg.ChannelType == conv.ChannelWeComKF && msg.Origin == 5 {
		return nil, r.desk.AgentMessage(ctx, msg)
	}
	replies, handled, err := r.desk.Route(ctx, msg)
	if err != nil || handled {
		return replies, err
	}
	if msg.Kind != conv.MsgText {
		return nil, nil
	}
	tr := r.desk.Transcripts
	_ = tr.Append(ctx, msg.Customer, conv.Turn{At: msg.CreatedAt, Role: conv.TurnCustomer, Text: msg.Text, Kind: msg.Kind, MsgID: msg.ID})
	if strings.Contains(msg.Text, "人工") {
		reply := "好的，正在为您转接人工客服。"
		_ = tr.Append(ctx, msg.Customer, conv.Turn{Role: conv.TurnBot, Text: reply, Intent: "explicit_request"})
		if err := r.desk.Handoff(ctx, msg, "explicit_request"); err != nil {
			return nil, err
		}
		if handoff.QueueNoticeReplacesReply(msg) {
			return nil, nil
		}
		return []conv.Reply{conv.Text(reply)}, nil
	}
	answer := "本店支持7天无理由退货，请保留小票。"
	_ = tr.Append(ctx, msg.Customer, conv.Turn{Role: conv.TurnBot, Text: answer, EntryID: "faq-return", Intent: "confident"})
	return []conv.Reply{conv.Text(answer)}, nil
}

type stack struct {
	t       testing.TB
	eng     engine.Engine
	sim     *wxsim.API
	gw      *gateway.Gateway
	desk    *handoff.Service
	console *Console
	url     string // console base URL
	oa      *wxsim.OAClient
	kf      *wxsim.KFClient
	closed  chan conv.ContactEnded
	// gwURL is the gateway; callbacks records the JSON channel's replies.
	gwURL     string
	callbacks *callbackSink
}

type stackOpts struct {
	eng      engine.Engine
	kb       KBSearcher
	profiles ProfileSource
	now      func() time.Time
	tune     func(*Config)
}

func newStack(t testing.TB, o stackOpts) *stack {
	t.Helper()
	eng := o.eng
	if eng == nil {
		e, err := engine.OpenEmbedded(t.TempDir(), engine.EmbeddedOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = e.Close() })
		eng = e
	}
	sim := wxsim.NewAPI(wxsim.APIOptions{OA: []wxsim.OAApp{{AppID: testAppID, Secret: "oa-secret"}},
		KF: []wxsim.KFCorp{{CorpID: testCorpID, Secret: testKFSecret, Accounts: []string{testKFID}, Servicers: []string{"agent1"}}}})
	base := sim.Start()
	t.Cleanup(sim.Close)

	callbacks := newCallbackSink(t)
	gcfg := gateway.DefaultConfig()
	gcfg.APIBase, gcfg.WeComAPIBase = base, base
	gcfg.PassiveBudget = time.Second
	gcfg.Outbound.BaseBackoff = 50 * time.Millisecond
	gcfg.Outbound.MaxBackoff = 200 * time.Millisecond
	gcfg.Channels = []gateway.ChannelConfig{
		{Name: "oa", Type: conv.ChannelWeChatOA, AppID: testAppID, AppSecret: "oa-secret", Token: testOAToken, Store: "s1"},
		{Name: "kf", Type: conv.ChannelWeComKF, AppID: testCorpID, AppSecret: testKFSecret, Token: testKFToken, EncodingAESKey: testKFKey, Store: "s1"},
		{Name: "web", Type: conv.ChannelJSON, Token: testJSONKey, Store: "s1", CallbackURL: callbacks.url},
	}
	router := &miniRouter{}
	gw, err := gateway.New(gcfg, eng, router, gateway.Options{Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	tree, err := conv.NewStoreTree(conv.StoreNode{ID: "brand", Children: []conv.StoreNode{{ID: "s1"}, {ID: "s3"}}})
	if err != nil {
		t.Fatal(err)
	}
	ccfg := DefaultConfig()
	ccfg.Users = testUsers(t)
	if o.tune != nil {
		o.tune(&ccfg)
	}
	hcfg := handoff.DefaultConfig()
	hcfg.AcceptTimeout = time.Hour
	desk, err := handoff.New(hcfg, handoff.Deps{Engine: eng, Sender: gw.Sender, KF: gw, Stores: tree, Agents: ccfg.Agents(), Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	router.desk = desk
	closed := make(chan conv.ContactEnded, 16)
	desk.OnClosed(func(_ context.Context, e conv.ContactEnded) { closed <- e })
	con, err := New(ccfg, Deps{Engine: eng, Desk: desk, KB: o.kb, Profiles: o.profiles, Stores: tree, Logger: testLogger(), Now: o.now})
	if err != nil {
		t.Fatal(err)
	}

	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: gw.HTTPHandler(), ReadTimeout: 5 * time.Second, ErrorHandler: gateway.ErrorHandler}
	go func() { _ = srv.Serve(ln) }()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); _ = gw.Sender.Run(ctx) }()
	go func() { defer wg.Done(); _ = gw.RunKFPuller(ctx) }()
	go func() { defer wg.Done(); _ = desk.Run(ctx) }()
	hs := httptest.NewServer(con)
	t.Cleanup(func() {
		hs.CloseClientConnections()
		hs.Close()
		con.Close()
		cancel()
		_ = srv.Shutdown()
		wg.Wait()
		_ = gw.Drain(context.Background())
	})
	oa := &wxsim.OAClient{URL: "http://" + ln.Addr().String() + "/wechat/oa/oa", Token: testOAToken, AppID: testAppID,
		OriginalID: "gh_test", Mode: wxsim.ModePlain, API: sim, Timeout: 5 * time.Second, RetryWait: -1}
	kf := &wxsim.KFClient{URL: "http://" + ln.Addr().String() + "/wecom/kf/kf", Token: testKFToken, CorpID: testCorpID,
		EncodingAESKey: testKFKey, API: sim, RetryWait: -1}
	return &stack{t: t, eng: eng, sim: sim, gw: gw, desk: desk, console: con, url: hs.URL, oa: oa, kf: kf, closed: closed,
		gwURL: "http://" + ln.Addr().String(), callbacks: callbacks}
}

// customerSays sends text from openID through the simulator and the gateway.
func (s *stack) customerSays(openID, text string) {
	s.t.Helper()
	d, err := s.oa.SendText(context.Background(), openID, text, 0)
	if err != nil {
		s.t.Fatalf("customer %s says %q: %v", openID, text, err)
	}
	_ = d
}

// received returns what the simulated WeChat delivered to openID.
func (s *stack) received(openID string) []string {
	var out []string
	for _, m := range s.sim.Inbox(openID) {
		out = append(out, m.Content)
	}
	return out
}

func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

// client is a logged-in API client with its CSRF token.
type client struct {
	t    testing.TB
	base string
	http *http.Client
	csrf string
}

func (s *stack) anon() *client {
	jar, _ := cookiejar.New(nil)
	return &client{t: s.t, base: s.url, http: &http.Client{Jar: jar, Timeout: 10 * time.Second}}
}

func (s *stack) login(user string) *client {
	s.t.Helper()
	c := s.anon()
	var me struct {
		CSRF string `json:"csrf"`
	}
	if st := c.do("POST", "/api/login", `{"user":"`+user+`","password":"`+testPass+`"}`, &me); st != 200 {
		s.t.Fatalf("login %s: %d", user, st)
	}
	c.csrf = me.CSRF
	return c
}

// do sends a request (JSON body when non-empty) and decodes the answer
// into out (may be nil); it returns the status.
func (c *client) do(method, path, body string, out any) int {
	c.t.Helper()
	st, b := c.raw(method, path, "application/json", body, true)
	if out != nil && st < 300 {
		if err := jsonUnmarshal(b, out); err != nil {
			c.t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
	return st
}

func (c *client) raw(method, path, ctype, body string, withCSRF bool) (int, []byte) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if body != "" && ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if withCSRF && c.csrf != "" {
		req.Header.Set(csrfHeader, c.csrf)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// callbackSink is the JSON channel's callback endpoint (a web chat widget's
// server): it checks the signature and records every reply.
type callbackSink struct {
	url  string
	mu   sync.Mutex
	msgs []string
}

func newCallbackSink(t testing.TB) *callbackSink {
	cs := &callbackSink{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.Header.Get("X-Kefu-Signature") != signJSON(b, r.Header.Get("X-Kefu-Timestamp")) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var p struct {
			UserID  string       `json:"user_id"`
			Replies []conv.Reply `json:"replies"`
		}
		_ = json.Unmarshal(b, &p)
		cs.mu.Lock()
		for _, r := range p.Replies {
			cs.msgs = append(cs.msgs, p.UserID+": "+r.Text)
		}
		cs.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	cs.url = srv.URL
	return cs
}

func (cs *callbackSink) all() string {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return strings.Join(cs.msgs, "\n")
}

func signJSON(body []byte, ts string) string {
	m := hmac.New(sha256.New, []byte(testJSONKey))
	m.Write([]byte(ts + "."))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// webSays posts a signed JSON message from user to the gateway and
// returns the synchronous replies in the response body.
func (s *stack) webSays(user, id, text string) string {
	s.t.Helper()
	body, _ := json.Marshal(map[string]string{"message_id": id, "user_id": user, "type": "text", "text": text})
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	req, _ := http.NewRequest("POST", s.gwURL+"/im/web", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Kefu-Timestamp", ts)
	req.Header.Set("X-Kefu-Signature", signJSON(body, ts))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		s.t.Fatalf("json channel: %d %s", resp.StatusCode, b)
	}
	return string(b)
}
