package console

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	"gopkg.in/yaml.v3"

	"kefu/conv"
	"kefu/engine"
	"kefu/internal/testredis"
)

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// TestConsole_JSONChannelRepliesGoToCallback: a web-widget customer talks
// through the signed JSON channel; the agent's replies (no per-customer
// quota) reach the channel's callback URL, signed.
func TestConsole_JSONChannelRepliesGoToCallback(t *testing.T) {
	s := newStack(t, stackOpts{})
	alice := s.login("alice")
	alice.do("POST", "/api/status", `{"status":"online"}`, nil)
	if body := s.webSays("visitor-1", "w1", "转人工"); !strings.Contains(body, "replies") {
		t.Fatalf("gateway answer: %s", body)
	}
	var q queueView
	waitFor(t, 5*time.Second, "assigned", func() bool { alice.do("GET", "/api/queue", "", &q); return len(q.Mine) == 1 })
	id := string(q.Mine[0].ID)
	if st := alice.do("POST", "/api/chats/"+id+"/accept", `{}`, nil); st != 200 {
		t.Fatalf("accept: %d", st)
	}
	var cv chatView
	alice.do("GET", "/api/chats/"+id, "", &cv)
	if cv.Quota.Remaining != -1 || !cv.Quota.CanReply {
		t.Fatalf("JSON quota = %+v", cv.Quota)
	}
	for i := 0; i < 7; i++ { // more than any WeChat allowance
		if st := alice.do("POST", "/api/chats/"+id+"/reply", `{"client_id":"w`+strconv.Itoa(i)+`","text":"第`+strconv.Itoa(i)+`条"}`, nil); st != 200 {
			t.Fatalf("reply %d: %d", i, st)
		}
	}
	waitFor(t, 10*time.Second, "replies at the callback", func() bool {
		got := s.callbacks.all()
		return strings.Contains(got, "visitor-1: 第6条") && strings.Contains(got, "小爱")
	})
}

type chatView struct {
	Conv        conv.Conversation   `json:"conv"`
	Transcript  []conv.Turn         `json:"transcript"`
	Quota       conv.QuotaInfo      `json:"quota"`
	History     []conv.Conversation `json:"history"`
	Profile     *Profile            `json:"profile"`
	Suggestions []Suggestion        `json:"suggestions"`
}

type queueView struct {
	Queue   []conv.Conversation `json:"queue"`
	Mine    []conv.Conversation `json:"mine"`
	Ongoing []conv.Conversation `json:"ongoing"`
}

type fakeProfiles struct{}

func (fakeProfiles) Profile(_ context.Context, _ conv.CustomerID) (Profile, error) {
	return Profile{Surveys: []SurveyScore{{Score: 4, At: time.Now()}}, OpenCases: []CaseSummary{{ID: "case-1", State: "open"}}}, nil
}

var testKB = KBSearchFunc(func(_ context.Context, text string, _ conv.StoreID, _ int) []Suggestion {
	return []Suggestion{{EntryID: "faq-return", Question: "怎么退货", Answer: "本店支持7天无理由退货，请保留小票。", Score: 0.9}}
})

// TestConsole_HandoffThroughGatewayAndSimulator runs the whole flow over
// HTTP: a customer talks to the real gateway through the WeChat simulator,
// asks for a human, the agent accepts, sees the bot transcript, replies
// (delivered by custom/send, which the simulator limits to 5 per customer
// message), and closes with a disposition; the closed hook fires.
func TestConsole_HandoffThroughGatewayAndSimulator(t *testing.T) {
	s := newStack(t, stackOpts{kb: testKB, profiles: fakeProfiles{}})
	alice := s.login("alice")
	if st := alice.do("POST", "/api/status", `{"status":"online"}`, nil); st != 200 {
		t.Fatalf("status: %d", st)
	}
	s.customerSays("openid-1", "怎么退货")
	s.customerSays("openid-1", "转人工")
	var q queueView
	waitFor(t, 5*time.Second, "chat assigned to alice", func() bool {
		alice.do("GET", "/api/queue", "", &q)
		return len(q.Mine) == 1
	})
	id := q.Mine[0].ID
	if st := alice.do("POST", "/api/chats/"+string(id)+"/accept", "", nil); st != 200 {
		t.Fatalf("accept: %d", st)
	}
	var cv chatView
	if st := alice.do("GET", "/api/chats/"+string(id), "", &cv); st != 200 {
		t.Fatalf("chat: %d", st)
	}
	var sawEntry bool
	for _, tr := range cv.Transcript {
		sawEntry = sawEntry || (tr.Role == conv.TurnBot && tr.EntryID == "faq-return")
	}
	if !sawEntry || cv.Profile == nil || len(cv.Profile.Surveys) != 1 || len(cv.Suggestions) != 1 {
		t.Fatalf("chat view: entry=%v profile=%+v suggestions=%+v", sawEntry, cv.Profile, cv.Suggestions)
	}
	if !cv.Quota.CanReply || cv.Quota.Remaining != 3 { // queue notice + greeting used 2 of 5
		t.Fatalf("quota = %+v", cv.Quota)
	}
	// Agent uses all remaining sends; the sixth is refused before the API.
	for i := 0; i < 3; i++ {
		body := `{"client_id":"r` + string(rune('0'+i)) + `","text":"回复` + string(rune('0'+i)) + `"}`
		if st := alice.do("POST", "/api/chats/"+string(id)+"/reply", body, nil); st != 200 {
			t.Fatalf("reply %d: %d", i, st)
		}
	}
	st, b := alice.raw("POST", "/api/chats/"+string(id)+"/reply", "application/json", `{"client_id":"r9","text":"多的一条"}`, true)
	if st != http.StatusConflict || !strings.Contains(string(b), "quota") {
		t.Fatalf("6th send: %d %s", st, b)
	}
	waitFor(t, 5*time.Second, "replies delivered by custom/send", func() bool {
		got := strings.Join(s.received("openid-1"), "|")
		return strings.Contains(got, "回复2") && strings.Contains(got, "小爱")
	})
	for _, c := range s.sim.Calls("/cgi-bin/message/custom/send") {
		if c.ErrCode != 0 {
			t.Errorf("custom/send failed: %d %s", c.ErrCode, c.ErrMsg)
		}
	}
	// The customer writes again: a new allowance of 5 opens. (WeChat's
	// CreateTime has one-second resolution: let a second pass.)
	time.Sleep(1100 * time.Millisecond)
	s.customerSays("openid-1", "好的谢谢")
	waitFor(t, 5*time.Second, "new message in transcript", func() bool {
		alice.do("GET", "/api/chats/"+string(id), "", &cv)
		return cv.Quota.Remaining == 5
	})
	if st := alice.do("POST", "/api/chats/"+string(id)+"/close", `{"disposition":"咨询","resolved":true}`, nil); st != 200 {
		t.Fatalf("close: %d", st)
	}
	select {
	case e := <-s.closed:
		if e.Agent != "alice" || e.Disposition != "咨询" || !e.Resolved || e.Outcome != "closed" || e.Store != "s1" {
			t.Fatalf("ContactEnded = %+v", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("closed hook did not fire")
	}
}

func TestConsole_UnauthenticatedGets401(t *testing.T) {
	s := newStack(t, stackOpts{})
	c := s.anon()
	for _, ep := range []string{
		"GET /api/me", "GET /api/queue", "GET /api/chats/x", "POST /api/chats/x/accept", "POST /api/chats/x/reply",
		"POST /api/chats/x/note", "POST /api/chats/x/transfer", "POST /api/chats/x/close", "POST /api/chats/x/assign",
		"POST /api/chats/x/takeover", "GET /api/kb?q=a", "GET /api/agents", "POST /api/status", "GET /api/tickets", "GET /api/events",
	} {
		m, p, _ := strings.Cut(ep, " ")
		st, b := c.raw(m, p, "application/json", `{}`, false)
		if st != http.StatusUnauthorized || !strings.Contains(string(b), "log in") {
			t.Errorf("%s: %d %s", ep, st, b)
		}
	}
	// Wrong password, unknown user.
	if st := c.do("POST", "/api/login", `{"user":"alice","password":"wrong password"}`, nil); st != 401 {
		t.Errorf("wrong password: %d", st)
	}
	if st := c.do("POST", "/api/login", `{"user":"nobody","password":"wrong password"}`, nil); st != 401 {
		t.Errorf("unknown user: %d", st)
	}
}

func TestConsole_BadInputGets400(t *testing.T) {
	s := newStack(t, stackOpts{})
	sam := s.login("sam")
	sam.do("POST", "/api/status", `{"status":"online"}`, nil)
	s.customerSays("openid-b", "转人工")
	var q queueView
	waitFor(t, 5*time.Second, "assigned", func() bool { sam.do("GET", "/api/queue", "", &q); return len(q.Mine) == 1 })
	id := string(q.Mine[0].ID)
	cases := []struct{ method, path, ctype, body, want string }{
		{"POST", "/api/login", "application/json", `{"user":`, "bad JSON"},
		{"POST", "/api/login", "text/plain", `{"user":"a","password":"b"}`, "Content-Type"},
		{"POST", "/api/login", "application/json", `{"user":"","password":""}`, "required"},
		{"POST", "/api/status", "application/json", `{"status":"busy"}`, "online, away or offline"},
		{"POST", "/api/status", "application/json", `{"state":"online"}`, "unknown field"},
		{"POST", "/api/status", "text/plain", `status=online`, "Content-Type"},
		{"POST", "/api/chats/" + id + "/accept", "application/json", `[1,2]`, "bad JSON"},
		{"POST", "/api/chats/" + id + "/reply", "application/json", `{"client_id":"a1","text":""}`, "text is required"},
		{"POST", "/api/chats/" + id + "/reply", "application/json", `{"text":"hi"}`, "client_id"},
		{"POST", "/api/chats/" + id + "/reply", "application/json", `{"client_id":"a b","text":"hi"}`, "client_id"},
		{"POST", "/api/chats/" + id + "/reply", "application/json", `{"client_id":"a1","text":"` + strings.Repeat("长", 700) + `"}`, "longer than"},
		{"POST", "/api/chats/" + id + "/note", "application/json", `{"text":"  "}`, "text is required"},
		{"POST", "/api/chats/" + id + "/transfer", "application/json", `{"to":""}`, "to is required"},
		{"POST", "/api/chats/" + id + "/transfer", "application/json", `{"to":"ghost"}`, "unknown agent"},
		{"POST", "/api/chats/" + id + "/close", "application/json", `{"disposition":"随便","resolved":true}`, "disposition must be one of"},
		{"POST", "/api/chats/" + id + "/close", "application/json", `{"disposition":"咨询"}`, "resolved"},
		{"POST", "/api/chats/" + id + "/assign", "application/json", `{"agent":""}`, "agent is required"},
		{"POST", "/api/chats/" + id + "/assign", "application/json", `{"agent":"ghost"}`, "unknown agent"},
		{"POST", "/api/chats/" + id + "/takeover", "application/json", `nope`, "bad JSON"},
		{"GET", "/api/kb", "", "", "q is required"},
		{"GET", "/api/kb?q=" + strings.Repeat("x", 300), "", "", "longer than"},
		{"GET", "/api/chats/" + strings.Repeat("x", 80), "", "", "bad conversation id"},
	}
	for _, c := range cases {
		st, b := sam.raw(c.method, c.path, c.ctype, c.body, true)
		if st != http.StatusBadRequest || !strings.Contains(string(b), c.want) {
			t.Errorf("%s %s %q: %d %s (want 400 with %q)", c.method, c.path, c.body, st, b, c.want)
		}
		var e map[string]string
		if json.Unmarshal(b, &e) != nil || e["error"] == "" {
			t.Errorf("%s %s: error body is not {\"error\":…}: %s", c.method, c.path, b)
		}
	}
}

func TestConsole_AuthorizationAndCSRF(t *testing.T) {
	s := newStack(t, stackOpts{})
	alice, carol, mgr := s.login("alice"), s.login("carol"), s.login("mgr")
	alice.do("POST", "/api/status", `{"status":"online"}`, nil)
	carol.do("POST", "/api/status", `{"status":"online"}`, nil)
	s.customerSays("openid-z", "转人工")
	var q queueView
	waitFor(t, 5*time.Second, "assigned", func() bool { alice.do("GET", "/api/queue", "", &q); return len(q.Mine) == 1 })
	id := string(q.Mine[0].ID)
	// carol (store s3) can neither read nor act on alice's s1 chat.
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/api/chats/" + id, ""},
		{"POST", "/api/chats/" + id + "/accept", `{}`},
		{"POST", "/api/chats/" + id + "/reply", `{"client_id":"x1","text":"hi"}`},
		{"POST", "/api/chats/" + id + "/note", `{"text":"hi"}`},
		{"POST", "/api/chats/" + id + "/transfer", `{"to":"carol"}`},
		{"POST", "/api/chats/" + id + "/close", `{"disposition":"咨询","resolved":true}`},
		{"POST", "/api/chats/" + id + "/assign", `{"agent":"carol"}`},
		{"POST", "/api/chats/" + id + "/takeover", `{}`},
	} {
		if st := carol.do(c.method, c.path, c.body, nil); st != http.StatusForbidden {
			t.Errorf("carol %s %s: %d, want 403", c.method, c.path, st)
		}
	}
	var cq queueView
	carol.do("GET", "/api/queue", "", &cq)
	if len(cq.Queue)+len(cq.Mine)+len(cq.Ongoing) != 0 {
		t.Errorf("carol sees %+v", cq)
	}
	// A store manager of s3 cannot read it either.
	if st := mgr.do("GET", "/api/chats/"+id, "", nil); st != http.StatusForbidden {
		t.Errorf("manager of s3 reads s1 chat: %d", st)
	}
	// CSRF: a state-changing call without the token is refused.
	if st, _ := alice.raw("POST", "/api/chats/"+id+"/accept", "application/json", `{}`, false); st != http.StatusForbidden {
		t.Errorf("accept without CSRF token: %d", st)
	}
	bad := *alice
	bad.csrf = "0000"
	if st := bad.do("POST", "/api/chats/"+id+"/accept", `{}`, nil); st != http.StatusForbidden {
		t.Errorf("accept with a wrong CSRF token: %d", st)
	}
	// The owner can.
	if st := alice.do("POST", "/api/chats/"+id+"/accept", `{}`, nil); st != 200 {
		t.Errorf("owner accept: %d", st)
	}
	// Logout ends the session.
	alice.do("POST", "/api/logout", `{}`, nil)
	if st := alice.do("GET", "/api/queue", "", nil); st != http.StatusUnauthorized {
		t.Errorf("after logout: %d", st)
	}
}

func TestConsole_SessionExpiryAndLockout(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s := newStack(t, stackOpts{now: clock, tune: func(c *Config) { c.SessionTTL = time.Hour; c.LoginLockout = 3 }})
	alice := s.login("alice")
	if st := alice.do("GET", "/api/me", "", nil); st != 200 {
		t.Fatalf("me: %d", st)
	}
	mu.Lock()
	now = now.Add(time.Hour + time.Second)
	mu.Unlock()
	if st := alice.do("GET", "/api/me", "", nil); st != http.StatusUnauthorized {
		t.Fatalf("expired session: %d", st)
	}
	c := s.anon()
	for i := 0; i < 3; i++ {
		c.do("POST", "/api/login", `{"user":"carol","password":"wrong password"}`, nil)
	}
	if st := c.do("POST", "/api/login", `{"user":"carol","password":"`+testPass+`"}`, nil); st != http.StatusTooManyRequests {
		t.Fatalf("after 3 failures: %d, want 429", st)
	}
}

func TestConsole_LiveUpdatesOverSSE(t *testing.T) {
	s := newStack(t, stackOpts{})
	sam := s.login("sam")
	req, _ := http.NewRequest("GET", s.url+"/api/events", nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resp, err := sam.http.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	want := func(prefix string) string {
		t.Helper()
		timeout := time.After(5 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatal("stream ended")
				}
				if strings.HasPrefix(l, prefix) {
					return l
				}
			case <-timeout:
				t.Fatalf("no %q line", prefix)
			}
		}
	}
	want("event: hello")
	s.customerSays("openid-sse", "转人工")
	want("event: update")
	if l := want("data: "); !strings.Contains(l, `"state":"queued"`) {
		t.Fatalf("update = %s", l)
	}
}

func TestConsole_MountPutsPrincipalInContext(t *testing.T) {
	s := newStack(t, stackOpts{})
	var got conv.Principal
	s.console.Mount("/surveys/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, _ = conv.PrincipalFrom(r.Context())
		_, _ = w.Write([]byte("ok"))
	}), conv.RoleStoreManager, conv.RoleAdmin)
	if st, _ := s.anon().raw("GET", "/surveys/x", "", "", false); st != http.StatusUnauthorized {
		t.Errorf("anonymous mounted page: %d", st)
	}
	if st := s.login("alice").do("GET", "/surveys/x", "", nil); st != http.StatusForbidden {
		t.Errorf("agent on a manager page: %d", st)
	}
	mgr := s.login("mgr")
	if st, _ := mgr.raw("GET", "/surveys/x", "", "", false); st != 200 || got.User != "mgr" || got.Role != conv.RoleStoreManager {
		t.Errorf("manager: %d %+v", st, got)
	}
	// A same-origin JSON POST without the header is accepted for mounted
	// pages; a form POST is not.
	if st, _ := mgr.raw("POST", "/surveys/x", "application/json", `{}`, false); st != 200 {
		t.Errorf("JSON POST: %d", st)
	}
	if st, _ := mgr.raw("POST", "/surveys/x", "application/x-www-form-urlencoded", `a=1`, false); st != http.StatusForbidden {
		t.Errorf("form POST without CSRF: %d", st)
	}
}

func TestConfig_Validate(t *testing.T) {
	h := passwordHash(t)
	ok := DefaultConfig()
	ok.Users = []User{{Name: "a", PasswordHash: h, Role: conv.RoleAgent}}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	cases := map[string]func(*Config){
		"console.session_ttl":              func(c *Config) { c.SessionTTL = 0 },
		"console.users[0].password_hash":   func(c *Config) { c.Users[0].PasswordHash = "plain" },
		"console.users[0].role":            func(c *Config) { c.Users[0].Role = "boss" },
		"console.users[1].name: duplicate": func(c *Config) { c.Users = append(c.Users, c.Users[0]) },
		"console.users[0].name":            func(c *Config) { c.Users[0].Name = "" },
		"console.users[0].stores":          func(c *Config) { c.Users[0].Role = conv.RoleStoreManager },
		"console.users[0].max_chats":       func(c *Config) { c.Users[0].MaxChats = -1 },
	}
	for want, mut := range cases {
		c := ok
		c.Users = append([]User(nil), ok.Users...)
		mut(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v", want, err)
		}
	}
	if a := ok.Agents(); len(a) != 1 || a[0].MaxChats != DefaultMaxChats {
		t.Errorf("Agents() = %+v", a)
	}
}

func TestHashPassword(t *testing.T) {
	if _, err := HashPassword("short"); err == nil {
		t.Error("short password accepted")
	}
	h, err := HashPassword(testPass)
	if err != nil {
		t.Fatal(err)
	}
	if bcrypt.CompareHashAndPassword([]byte(h), []byte(testPass)) != nil {
		t.Error("hash does not verify")
	}
	if cost, _ := bcrypt.Cost([]byte(h)); cost != PasswordCost {
		t.Errorf("cost %d", cost)
	}
}

// TestConsole_TwoInstancesOnOneRedis: a login made on one instance works
// on the other (sessions live in the engine), and a change made through
// one instance reaches the live stream of the other (engine pub/sub).
func TestConsole_TwoInstancesOnOneRedis(t *testing.T) {
	srv := testredis.Start(t)
	a := newStack(t, stackOpts{eng: engine.NewRedis(srv.Client(), "kefu:")})
	b := newStack(t, stackOpts{eng: engine.NewRedis(srv.Client(), "kefu:")})
	sam := a.login("sam")
	onB := *sam
	onB.base = b.url // same host: the cookie jar sends the session along
	var me struct {
		User string `json:"user"`
	}
	if st := onB.do("GET", "/api/me", "", &me); st != 200 || me.User != "sam" {
		t.Fatalf("session from A on B: %d %+v", st, me)
	}
	req, _ := http.NewRequest("GET", b.url+"/api/events", nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resp, err := onB.http.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			got <- sc.Text()
		}
	}()
	deadline := time.After(10 * time.Second)
	hello := false
	for {
		select {
		case l := <-got:
			if l == "event: hello" && !hello {
				hello = true
				a.customerSays("openid-x", "转人工") // through instance A
			}
			if strings.HasPrefix(l, "data: ") && strings.Contains(l, `"state":"queued"`) {
				return
			}
		case <-deadline:
			t.Fatal("B's live stream did not see A's handoff")
		}
	}
}

// TestConsole_ServeShutsDownWithOpenStreams: the console's own listener
// serves the page and stops promptly even with a live stream open.
func TestConsole_ServeShutsDownWithOpenStreams(t *testing.T) {
	s := newStack(t, stackOpts{})
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.console.Serve(ctx, ln) }()
	c := s.login("sam")
	c.base = "http://" + ln.Addr().String()
	st, page := c.raw("GET", "/", "", "", false)
	if st != 200 || !strings.Contains(string(page), "坐席工作台") {
		t.Fatalf("page: %d", st)
	}
	if st, js := c.raw("GET", "/static/app.js", "", "", false); st != 200 || !strings.Contains(string(js), "EventSource") {
		t.Fatalf("app.js: %d", st)
	}
	if st, _ := c.raw("GET", "/static/", "", "", false); st != http.StatusNotFound {
		t.Fatalf("static directory listing: %d", st)
	}
	resp, err := c.http.Get(c.base + "/api/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Serve did not return with a stream open")
	}
}

// TestConsole_KFHandoffFollowsSessionStates runs a WeChat KF handoff
// through the gateway and the simulator, which enforces the session state
// rules: queue (state 2) with the queue notice sent by its msg_code,
// accept moves the session to the agent (state 3), the agent answers in
// the WeCom client (origin 5) and it shows in the transcript, close ends
// the session (state 4) and hands the end-of-session code to the hook.
func TestConsole_KFHandoffFollowsSessionStates(t *testing.T) {
	s := newStack(t, stackOpts{})
	ctx := context.Background()
	alice := s.login("alice")
	alice.do("POST", "/api/status", `{"status":"online"}`, nil)
	if _, err := s.kf.CustomerSends(ctx, testKFID, "ext-1", "转人工"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "queue notice through send_msg_on_event", func() bool {
		for _, m := range s.sim.Inbox("ext-1") {
			if m.Channel == "kf_event" && strings.Contains(m.Content, "前面还有") {
				return true
			}
		}
		return false
	})
	if st, _, err := s.gw.KFServiceState(ctx, "kf", testKFID, "ext-1"); err != nil || st != 2 {
		t.Fatalf("KF state after handoff = %d (%v), want 2", st, err)
	}
	var q queueView
	waitFor(t, 5*time.Second, "assigned", func() bool { alice.do("GET", "/api/queue", "", &q); return len(q.Mine) == 1 })
	id := string(q.Mine[0].ID)
	if st := alice.do("POST", "/api/chats/"+id+"/accept", `{}`, nil); st != 200 {
		t.Fatalf("accept: %d", st)
	}
	if st, servicer, err := s.gw.KFServiceState(ctx, "kf", testKFID, "ext-1"); err != nil || st != 3 || servicer != "agent1" {
		t.Fatalf("KF state after accept = %d %q (%v), want 3 agent1", st, servicer, err)
	}
	var cv chatView
	alice.do("GET", "/api/chats/"+id, "", &cv)
	if cv.Quota.CanReply {
		t.Fatalf("console offers replies in KF state 3: %+v", cv.Quota)
	}
	if st := alice.do("POST", "/api/chats/"+id+"/reply", `{"client_id":"k1","text":"hi"}`, nil); st != http.StatusConflict {
		t.Fatalf("console reply in KF state 3: %d, want 409", st)
	}
	tok, err := s.sim.KFAgentSends(testKFID, "ext-1", "agent1", "您好，我来处理")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.kf.SendEvent(ctx, tok, testKFID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "WeCom client message in the transcript", func() bool {
		alice.do("GET", "/api/chats/"+id, "", &cv)
		for _, tr := range cv.Transcript {
			if tr.Role == conv.TurnAgent && tr.Text == "您好，我来处理" {
				return true
			}
		}
		return false
	})
	if st := alice.do("POST", "/api/chats/"+id+"/close", `{"disposition":"故障报修","resolved":false}`, nil); st != 200 {
		t.Fatalf("close: %d", st)
	}
	select {
	case e := <-s.closed:
		if e.KFCode == "" || e.ChannelType != conv.ChannelWeComKF || e.Disposition != "故障报修" || e.Resolved {
			t.Fatalf("ContactEnded = %+v", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("closed hook did not fire")
	}
	if st, _, _ := s.gw.KFServiceState(ctx, "kf", testKFID, "ext-1"); st != 4 {
		t.Fatalf("KF state after close = %d, want 4", st)
	}
	for _, c := range s.sim.Calls("/cgi-bin/kf/send_msg") {
		if c.ErrCode != 0 {
			t.Errorf("send_msg refused: %d %s", c.ErrCode, c.ErrMsg)
		}
	}
}

func TestConfig_YAML(t *testing.T) {
	src := `
listen: 127.0.0.1:8090
session_ttl: 8h
users:
  - name: alice
    password_hash: "` + passwordHash(t) + `"
    role: agent
    stores: [s1, s2]
    skills: [vip]
    max_chats: 3
    display: 小爱
    number: "1001"
    wecom_userid: alice.w
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
	a := cfg.Agents()
	if cfg.SessionTTL != 8*time.Hour || len(a) != 1 || a[0].MaxChats != 3 || a[0].Stores[1] != "s2" || a[0].WeComUserID != "alice.w" || a[0].Number != "1001" {
		t.Fatalf("decoded %+v / %+v", cfg, a)
	}
}
