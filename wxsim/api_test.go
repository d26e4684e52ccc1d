package wxsim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

const (
	tSecret   = "oaSecret"
	tAppSec   = "appSecret"
	tKFSecret = "kfSecret"
	tAgent    = 1000002
	tKF       = "wkKF001"
	tRobotKey = "robot-key-1"
)

type harness struct {
	t    *testing.T
	api  *API
	base string
}

func newHarness(t *testing.T, mod func(*APIOptions)) *harness {
	t.Helper()
	start := time.Date(2026, 3, 2, 10, 0, 0, 0, cst)
	opts := APIOptions{
		Now:    func() time.Time { return start },
		OA:     []OAApp{{AppID: tAppID, Secret: tSecret, OriginalID: tGhID}},
		WeCom:  []WeComApp{{CorpID: tCorpID, AgentID: tAgent, Secret: tAppSec}},
		KF:     []KFCorp{{CorpID: tCorpID, Secret: tKFSecret, Accounts: []string{tKF, "wkKF002"}, Servicers: []string{"agent1", "agent2"}}},
		Robots: []string{tRobotKey},
	}
	if mod != nil {
		mod(&opts)
	}
	api := NewAPI(opts)
	base := api.Start()
	t.Cleanup(api.Close)
	return &harness{t: t, api: api, base: base}
}

func (h *harness) do(method, path string, q url.Values, body any) map[string]any {
	h.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, h.base+path+"?"+q.Encode(), rd)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		h.t.Fatalf("%s: non-JSON answer: %v", path, err)
	}
	if _, ok := m["errcode"]; !ok {
		h.t.Fatalf("%s: answer without errcode: %v", path, m)
	}
	return m
}

func (h *harness) post(path, token string, body any) map[string]any {
	h.t.Helper()
	q := url.Values{}
	if token != "" {
		q.Set("access_token", token)
	}
	return h.do(http.MethodPost, path, q, body)
}

func code(m map[string]any) int { return int(m["errcode"].(float64)) }

func (h *harness) expect(m map[string]any, want int) map[string]any {
	h.t.Helper()
	if got := code(m); got != want {
		h.t.Fatalf("errcode %d (%v), want %d", got, m["errmsg"], want)
	}
	return m
}

func (h *harness) oaToken() string {
	h.t.Helper()
	m := h.expect(h.do(http.MethodGet, "/cgi-bin/token", url.Values{"grant_type": {"client_credential"}, "appid": {tAppID}, "secret": {tSecret}}, nil), 0)
	return m["access_token"].(string)
}

func (h *harness) weComToken(secret string) string {
	h.t.Helper()
	m := h.expect(h.do(http.MethodGet, "/cgi-bin/gettoken", url.Values{"corpid": {tCorpID}, "corpsecret": {secret}}, nil), 0)
	return m["access_token"].(string)
}

func textMsg(to, content string) map[string]any {
	return map[string]any{"touser": to, "msgtype": "text", "text": map[string]any{"content": content}}
}

func TestTokenRotationAndExpiry(t *testing.T) {
	h := newHarness(t, nil)
	tpl := map[string]any{"touser": "oU", "template_id": "T1", "data": map[string]any{}}
	t1 := h.oaToken()
	t2 := h.oaToken()
	if t1 == t2 {
		t.Fatal("/cgi-bin/token did not rotate")
	}
	h.expect(h.post("/cgi-bin/message/template/send", t1, tpl), 0) // old token: 5 min grace
	h.api.Advance(5*time.Minute + time.Second)
	h.expect(h.post("/cgi-bin/message/template/send", t1, tpl), 40001)
	h.expect(h.post("/cgi-bin/message/template/send", t2, tpl), 0)
	h.api.Advance(2 * time.Hour)
	h.expect(h.post("/cgi-bin/message/template/send", t2, tpl), 42001)

	h.expect(h.post("/cgi-bin/message/template/send", "", tpl), 41001)
	h.expect(h.post("/cgi-bin/message/template/send", "garbage", tpl), 40014)
	h.expect(h.do(http.MethodGet, "/cgi-bin/token", url.Values{"grant_type": {"client_credential"}, "appid": {tAppID}, "secret": {"wrong"}}, nil), 40125)
	h.expect(h.do(http.MethodGet, "/cgi-bin/token", url.Values{"grant_type": {"client_credential"}, "appid": {"wxNOPE"}, "secret": {"x"}}, nil), 40013)
	h.expect(h.do(http.MethodGet, "/cgi-bin/token", url.Values{"grant_type": {"password"}, "appid": {tAppID}, "secret": {tSecret}}, nil), 40002)

	t3 := h.oaToken()
	h.api.RevokeToken(t3)
	h.expect(h.post("/cgi-bin/message/template/send", t3, tpl), 40001)
	if n := h.api.TokenCalls(tAppID); n != 5 {
		t.Fatalf("TokenCalls = %d, want 5", n)
	}
}

func TestTokenLifetimeOption(t *testing.T) {
	h := newHarness(t, func(o *APIOptions) { o.TokenTTL = time.Minute })
	tok := h.oaToken()
	h.api.Advance(61 * time.Second)
	h.expect(h.post("/cgi-bin/message/template/send", tok, map[string]any{"touser": "oU", "template_id": "T"}), 42001)
}

func TestStableToken(t *testing.T) {
	h := newHarness(t, nil)
	req := func(force bool) map[string]any {
		return h.post("/cgi-bin/stable_token", "", map[string]any{"grant_type": "client_credential", "appid": tAppID, "secret": tSecret, "force_refresh": force})
	}
	a := h.expect(req(false), 0)
	h.api.Advance(100 * time.Second)
	b := h.expect(req(false), 0)
	if a["access_token"] != b["access_token"] || b["expires_in"].(float64) != 7100 {
		t.Fatalf("normal mode changed token or lifetime: %v %v", a, b)
	}
	h.oaToken() // /cgi-bin/token is isolated from stable tokens
	tpl := map[string]any{"touser": "oU", "template_id": "T"}
	h.expect(h.post("/cgi-bin/message/template/send", b["access_token"].(string), tpl), 0)
	// Last 5 minutes: renewed early, the old one still works until expiry.
	h.api.Advance(7100*time.Second - 4*time.Minute)
	c := h.expect(req(false), 0)
	if c["access_token"] == b["access_token"] {
		t.Fatal("stable token not renewed in its last 5 minutes")
	}
	h.expect(h.post("/cgi-bin/message/template/send", b["access_token"].(string), tpl), 0)
	// force_refresh kills the previous token at once; 30 s spacing, 20/day.
	d := h.expect(req(true), 0)
	h.expect(h.post("/cgi-bin/message/template/send", c["access_token"].(string), tpl), 40001)
	h.expect(h.post("/cgi-bin/message/template/send", d["access_token"].(string), tpl), 0)
	h.expect(req(true), 45011)
	for i := 0; i < 19; i++ {
		h.api.Advance(31 * time.Second)
		h.expect(req(true), 0)
	}
	h.api.Advance(31 * time.Second)
	h.expect(req(true), 45009)
	h.expect(h.post("/cgi-bin/stable_token", "", map[string]any{"grant_type": "client_credential", "appid": tAppID, "secret": "bad"}), 40125)
}

func TestWeComTokensPerSecret(t *testing.T) {
	h := newHarness(t, nil)
	app, kf := h.weComToken(tAppSec), h.weComToken(tKFSecret)
	if app == kf {
		t.Fatal("app and KF secrets share a token")
	}
	if again := h.weComToken(tAppSec); again != app {
		t.Fatal("gettoken should return the same token while valid")
	}
	h.expect(h.do(http.MethodGet, "/cgi-bin/gettoken", url.Values{"corpid": {tCorpID}, "corpsecret": {"nope"}}, nil), 40001)
	h.expect(h.do(http.MethodGet, "/cgi-bin/gettoken", url.Values{"corpid": {"wwNOPE"}, "corpsecret": {"nope"}}, nil), 40013)
	h.expect(h.post("/cgi-bin/message/send", kf, map[string]any{"touser": "u1", "msgtype": "text", "agentid": tAgent, "text": map[string]any{"content": "x"}}), 48002)
	h.expect(h.post("/cgi-bin/kf/sync_msg", app, map[string]any{"open_kfid": tKF}), 48002)
	h.expect(h.post("/cgi-bin/message/custom/send", app, textMsg("oU", "x")), 40014)
	h.api.RevokeTokens(tCorpID)
	h.expect(h.post("/cgi-bin/kf/sync_msg", kf, map[string]any{"open_kfid": tKF}), 40001)
	if fresh := h.weComToken(tKFSecret); fresh == kf {
		t.Fatal("revoked token handed out again")
	}
}

// oaPair wires an OAClient (with API) to a gateway that acks with "success".
func oaPair(t *testing.T, h *harness) *OAClient {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "success") }))
	t.Cleanup(srv.Close)
	return &OAClient{URL: srv.URL, Token: tToken, AppID: tAppID, EncodingAESKey: tAESKey, OriginalID: tGhID, Mode: ModeSafe, API: h.api, Timeout: time.Second}
}

func TestCustomSendWindowAndQuota(t *testing.T) {
	h := newHarness(t, nil)
	c := oaPair(t, h)
	ctx := context.Background()
	tok := h.oaToken()
	send := func(to string) int { return code(h.post("/cgi-bin/message/custom/send", tok, textMsg(to, "hi"))) }

	if got := send("oNever"); got != 45015 {
		t.Fatalf("no interaction: %d", got)
	}
	if _, err := c.SendText(ctx, "oA", "hello", 0); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 5; i++ {
		if got := send("oA"); got != 0 {
			t.Fatalf("send %d: %d", i, got)
		}
	}
	if got := send("oA"); got != 45047 {
		t.Fatalf("6th send: %d, want 45047", got)
	}
	if left, open := h.api.OAQuota(tAppID, "oA"); left != 0 || !open {
		t.Fatalf("quota %d %v", left, open)
	}
	// A new message resets to 5; it does not accumulate.
	_, _ = c.SendText(ctx, "oA", "again", 0)
	h.expect(h.post("/cgi-bin/message/custom/send", tok, textMsg("oA", "1")), 0)
	_, _ = c.SendText(ctx, "oA", "and again", 0)
	for i := 0; i < 5; i++ {
		h.expect(h.post("/cgi-bin/message/custom/send", tok, textMsg("oA", "x")), 0)
	}
	h.expect(h.post("/cgi-bin/message/custom/send", tok, textMsg("oA", "x")), 45047)
	// 48 h later the window is closed.
	_, _ = c.SendText(ctx, "oA", "last", 0)
	h.api.Advance(48*time.Hour + time.Second)
	tok = h.oaToken()
	if got := send("oA"); got != 45015 {
		t.Fatalf("after 48 h: %d, want 45015", got)
	}
	if n := len(h.api.Inbox("oA")); n != 11 {
		t.Fatalf("inbox has %d messages, want 11", n)
	}

	// Follow: 3 within 1 minute.
	_, _ = c.SendEvent(ctx, "oB", "subscribe", "")
	for i := 0; i < 3; i++ {
		h.expect(h.post("/cgi-bin/message/custom/send", tok, textMsg("oB", "welcome")), 0)
	}
	h.expect(h.post("/cgi-bin/message/custom/send", tok, textMsg("oB", "x")), 45047)
	_, _ = c.SendEvent(ctx, "oB", "CLICK", "MENU_HELP")
	h.api.Advance(61 * time.Second)
	h.expect(h.post("/cgi-bin/message/custom/send", tok, textMsg("oB", "x")), 45015)

	// A msgmenu click grants nothing; VIEW neither.
	_, _ = c.SendMenuClick(ctx, "oC", "101", "满意")
	_, _ = c.SendEvent(ctx, "oC", "VIEW", "https://x")
	h.expect(h.post("/cgi-bin/message/custom/send", tok, textMsg("oC", "x")), 45015)

	// Unsubscribe closes everything.
	_, _ = c.SendText(ctx, "oD", "hi", 0)
	_, _ = c.SendEvent(ctx, "oD", "unsubscribe", "")
	h.expect(h.post("/cgi-bin/message/custom/send", tok, textMsg("oD", "x")), 45015)
	h.expect(h.post("/cgi-bin/message/template/send", tok, map[string]any{"touser": "oD", "template_id": "T"}), 43004)

	// Payment: unlimited for 48 h.
	h.api.UserInteracted(tAppID, "oE", InteractPayment, h.api.Now())
	for i := 0; i < 8; i++ {
		h.expect(h.post("/cgi-bin/message/custom/send", tok, textMsg("oE", "receipt")), 0)
	}
}

func TestCustomSendShapes(t *testing.T) {
	h := newHarness(t, func(o *APIOptions) { o.OA = append(o.OA, OAApp{AppID: "wxTEST", Secret: "s", TestAccount: true}) })
	h.api.UserInteracted(tAppID, "oU", InteractMessage, h.api.Now())
	tok := h.oaToken()
	p := func(body any) map[string]any { return h.post("/cgi-bin/message/custom/send", tok, body) }
	h.expect(p(`{"touser":`), 47001)
	h.expect(p(`{"touser":"oU","msgtype":"text","text":"hello"}`), 47001)
	h.expect(p(map[string]any{"touser": "oU", "msgtype": "text"}), 47001)
	h.expect(p(map[string]any{"touser": "oU", "msgtype": "sticker"}), 40008)
	h.expect(p(map[string]any{"touser": "", "msgtype": "text", "text": map[string]any{"content": "x"}}), 40003)
	h.expect(p(textMsg("oU", "")), 44004)
	h.expect(p(map[string]any{"touser": "oU", "msgtype": "image", "image": map[string]any{"media_id": ""}}), 40007)
	two := map[string]any{"title": "a", "url": "u"}
	h.expect(p(map[string]any{"touser": "oU", "msgtype": "news", "news": map[string]any{"articles": []any{two, two}}}), 45008)
	menu := map[string]any{"touser": "oU", "msgtype": "msgmenu", "msgmenu": map[string]any{"head_content": "满意吗?", "list": []any{map[string]any{"id": "101", "content": "满意"}, map[string]any{"id": "102", "content": "不满意"}}, "tail_content": "谢谢"}}
	h.expect(p(menu), 0)
	in := h.api.Inbox("oU")
	if len(in) != 1 || len(in[0].Menu) != 2 || in[0].Menu[1].ID != "102" || in[0].Head != "满意吗?" {
		t.Fatalf("inbox %+v", in)
	}
	// Test accounts cannot send msgmenu.
	h.api.UserInteracted("wxTEST", "oU", InteractMessage, h.api.Now())
	tt := h.expect(h.do(http.MethodGet, "/cgi-bin/token", url.Values{"grant_type": {"client_credential"}, "appid": {"wxTEST"}, "secret": {"s"}}, nil), 0)["access_token"].(string)
	h.expect(h.post("/cgi-bin/message/custom/send", tt, menu), 40200)
	// Method checks.
	h.expect(h.do(http.MethodGet, "/cgi-bin/message/custom/send", url.Values{"access_token": {tok}}, nil), 43002)
	h.expect(h.do(http.MethodPost, "/cgi-bin/token", nil, "{}"), 43001)
	// Typing needs a window but no quota.
	h.expect(h.post("/cgi-bin/message/custom/typing", tok, map[string]any{"touser": "oU", "command": "Typing"}), 0)
	if !h.api.Typing(tAppID, "oU") {
		t.Fatal("typing not recorded")
	}
	h.expect(h.post("/cgi-bin/message/custom/typing", tok, map[string]any{"touser": "oU", "command": "typing"}), 47001)
	h.expect(h.post("/cgi-bin/message/custom/typing", tok, map[string]any{"touser": "oNobody", "command": "Typing"}), 45015)
}

func TestDailyCustomLimit(t *testing.T) {
	h := newHarness(t, func(o *APIOptions) { o.OA[0].DailyCustomLimit = 2 })
	tok := h.oaToken()
	h.api.UserInteracted(tAppID, "oU", InteractMessage, h.api.Now())
	h.expect(h.post("/cgi-bin/message/custom/send", tok, textMsg("oU", "1")), 0)
	h.expect(h.post("/cgi-bin/message/custom/send", tok, textMsg("oU", "2")), 0)
	h.expect(h.post("/cgi-bin/message/custom/send", tok, textMsg("oU", "3")), 45009)
	h.api.Advance(24 * time.Hour)
	tok = h.oaToken()
	h.api.UserInteracted(tAppID, "oU", InteractMessage, h.api.Now())
	h.expect(h.post("/cgi-bin/message/custom/send", tok, textMsg("oU", "4")), 0)
}

func TestTemplateDedupe(t *testing.T) {
	h := newHarness(t, func(o *APIOptions) { o.OA[0].Templates = []string{"TPL_OK"} })
	tok := h.oaToken()
	body := map[string]any{"touser": "oU", "template_id": "TPL_OK", "client_msg_id": "case-9", "data": map[string]any{"first": map[string]any{"value": "您的工单已处理"}}}
	a := h.expect(h.post("/cgi-bin/message/template/send", tok, body), 0)
	b := h.expect(h.post("/cgi-bin/message/template/send", tok, body), 0)
	if a["msgid"] != b["msgid"] || len(h.api.Inbox("oU")) != 1 {
		t.Fatalf("client_msg_id not deduplicated: %v %v", a, b)
	}
	h.api.Advance(10*time.Minute + time.Second)
	c := h.expect(h.post("/cgi-bin/message/template/send", tok, body), 0)
	if c["msgid"] == a["msgid"] || len(h.api.Inbox("oU")) != 2 {
		t.Fatal("dedupe outlived 10 minutes")
	}
	body["template_id"] = "TPL_OTHER"
	h.expect(h.post("/cgi-bin/message/template/send", tok, body), 40037)
	h.expect(h.post("/cgi-bin/message/template/send", tok, `{"touser":"oU","template_id":"TPL_OK","data":[]}`), 47001)
}

func TestWeComAppSend(t *testing.T) {
	h := newHarness(t, func(o *APIOptions) { o.WeCom[0].Members = []string{"mgr1", "mgr2"} })
	tok := h.weComToken(tAppSec)
	msg := func(to, content string) map[string]any {
		return map[string]any{"touser": to, "msgtype": "text", "agentid": tAgent, "text": map[string]any{"content": content}}
	}
	for i := 0; i < 31; i++ {
		h.expect(h.post("/cgi-bin/message/send", tok, msg("mgr1", fmt.Sprint("alert ", i))), 0)
	}
	if n := len(h.api.Inbox("mgr1")); n != 30 {
		t.Fatalf("mgr1 got %d, want 30 (excess silently dropped)", n)
	}
	h.api.Advance(time.Minute)
	h.expect(h.post("/cgi-bin/message/send", tok, msg("mgr1", "later")), 0)
	if n := len(h.api.Inbox("mgr1")); n != 31 {
		t.Fatalf("after a minute: %d", n)
	}
	r := h.expect(h.post("/cgi-bin/message/send", tok, msg("mgr2|ghost", "x")), 0)
	if r["invaliduser"] != "ghost" {
		t.Fatalf("invaliduser %v", r["invaliduser"])
	}
	h.expect(h.post("/cgi-bin/message/send", tok, msg("ghost", "x")), 81013)
	other := msg("mgr2", "x")
	other["agentid"] = 1000003
	h.expect(h.post("/cgi-bin/message/send", tok, other), 301002)
	str := msg("mgr2", "string agentid")
	str["agentid"] = fmt.Sprint(tAgent)
	h.expect(h.post("/cgi-bin/message/send", tok, str), 0)
	long := msg("mgr2", strings.Repeat("长", 1000)) // 3000 bytes
	h.expect(h.post("/cgi-bin/message/send", tok, long), 0)
	in := h.api.Inbox("mgr2")
	if last := in[len(in)-1].Content; len(last) != 2046 {
		t.Fatalf("truncated to %d bytes, want 2046 (rune boundary ≤2048)", len(last))
	}
	dup := msg("mgr2", "dup")
	dup["enable_duplicate_check"] = 1
	h.expect(h.post("/cgi-bin/message/send", tok, dup), 0)
	h.expect(h.post("/cgi-bin/message/send", tok, dup), 0)
	n := 0
	for _, s := range h.api.Inbox("mgr2") {
		if s.Content == "dup" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("duplicate delivered %d times", n)
	}
	h.expect(h.post("/cgi-bin/message/send", tok, map[string]any{"touser": "mgr2", "msgtype": "markdown", "agentid": tAgent, "markdown": map[string]any{"content": "**x**"}}), 0)
	h.expect(h.post("/cgi-bin/message/send", tok, map[string]any{"touser": "mgr2", "msgtype": "textcard", "agentid": tAgent, "textcard": map[string]any{"title": "t"}}), 40058)
}

func TestStrictAgentID(t *testing.T) {
	h := newHarness(t, func(o *APIOptions) { o.StrictAgentID = true })
	tok := h.weComToken(tAppSec)
	h.expect(h.post("/cgi-bin/message/send", tok, map[string]any{"touser": "u", "msgtype": "text", "agentid": "1000002", "text": map[string]any{"content": "x"}}), 40056)
}

func TestRobotLimits(t *testing.T) {
	h := newHarness(t, nil)
	send := func(key string, body any) map[string]any {
		return h.do(http.MethodPost, "/cgi-bin/webhook/send", url.Values{"key": {key}}, body)
	}
	text := func(s string) map[string]any {
		return map[string]any{"msgtype": "text", "text": map[string]any{"content": s}}
	}
	h.expect(send("nope", text("x")), 93000)
	h.expect(send(tRobotKey, text(strings.Repeat("a", 2049))), 40058)
	h.expect(send(tRobotKey, map[string]any{"msgtype": "markdown", "markdown": map[string]any{"content": strings.Repeat("a", 4097)}}), 40058)
	h.expect(send(tRobotKey, map[string]any{"msgtype": "markdown", "markdown": map[string]any{"content": strings.Repeat("a", 4096)}}), 0)
	for i := 1; i < 20; i++ {
		h.expect(send(tRobotKey, text(fmt.Sprint(i))), 0)
	}
	h.expect(send(tRobotKey, text("21st")), 45009)
	if n := len(h.api.Inbox(tRobotKey)); n != 20 {
		t.Fatalf("robot inbox %d", n)
	}
	h.api.Advance(time.Minute)
	h.expect(send(tRobotKey, text("ok again")), 0)
	h.expect(send(tRobotKey, "{bad json"), 47001)
}

func TestFaultInjectionAndRecording(t *testing.T) {
	h := newHarness(t, nil)
	tok := h.oaToken()
	h.api.UserInteracted(tAppID, "oU", InteractMessage, h.api.Now())
	h.api.FailNext("/cgi-bin/message/custom/send", -1, 2)
	h.expect(h.post("/cgi-bin/message/custom/send", tok, textMsg("oU", "a")), -1)
	h.expect(h.post("/cgi-bin/message/custom/send", tok, textMsg("oU", "b")), -1)
	h.expect(h.post("/cgi-bin/message/custom/send", tok, textMsg("oU", "c")), 0)
	calls := h.api.Calls("/cgi-bin/message/custom/send")
	if len(calls) != 3 || calls[0].ErrCode != -1 || calls[2].ErrCode != 0 || !strings.Contains(string(calls[2].Body), `"c"`) {
		t.Fatalf("calls %+v", calls)
	}
	if in := h.api.Inbox("oU"); len(in) != 1 || in[0].Content != "c" {
		t.Fatalf("failed calls had effects: %+v", in)
	}
	h.api.SetLatency("/cgi-bin/message/custom/send", 150*time.Millisecond)
	start := time.Now()
	h.post("/cgi-bin/message/custom/send", tok, textMsg("oU", "slow"))
	if time.Since(start) < 150*time.Millisecond {
		t.Fatal("latency not applied")
	}
	resp, err := http.Get(h.base + "/cgi-bin/nope")
	if err != nil || resp.StatusCode != 404 {
		t.Fatalf("unknown path: %v %v", err, resp)
	}
	resp.Body.Close()
}

func TestCallLogBounded(t *testing.T) {
	h := newHarness(t, func(o *APIOptions) { o.MaxCalls = 10 })
	for i := 0; i < 25; i++ {
		h.oaToken()
	}
	if n := len(h.api.Calls("")); n > 10 || n < 5 {
		t.Fatalf("call log has %d entries", n)
	}
}
