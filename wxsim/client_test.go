package wxsim

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/silenceper/wechat/v2/util"
)

const (
	tToken  = "kefuToken123"
	tAppID  = "wx1234567890abcdef"
	tGhID   = "gh_0123456789ab"
	tCorpID = "ww0123456789abcdef"
)

var tAESKey = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG" // 43 chars

// fakeGateway is a minimal OA/WeCom callback receiver built on silenceper's
// util, i.e. the *other* implementation: the simulator talks to it, so every
// passing round trip is an interoperability proof.
type fakeGateway struct {
	t       *testing.T
	wecom   bool   // WeCom/KF style: msg_signature only, receive id = corpid
	receive string // appid or corpid
	// reply returns the plaintext reply XML for a decoded message, or "" for "success".
	reply func(msg map[string]string) string
	// delay per delivery number (1-based); status per delivery number.
	delay  func(n int) time.Duration
	status func(n int) int
	n      atomic.Int32
	mu     sync.Mutex
	got    []map[string]string
	bodies [][]byte
}

func (g *fakeGateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	ts, nonce := q.Get("timestamp"), q.Get("nonce")
	if r.Method == http.MethodGet {
		if g.wecom {
			echo := q.Get("echostr")
			if util.Signature(tToken, ts, nonce, echo) != q.Get("msg_signature") {
				http.Error(w, "bad sig", http.StatusForbidden)
				return
			}
			_, plain, err := util.DecryptMsg(g.receive, echo, tAESKey)
			if err != nil {
				http.Error(w, err.Error(), 400)
				return
			}
			_, _ = w.Write(plain)
			return
		}
		if util.Signature(tToken, ts, nonce) != q.Get("signature") {
			http.Error(w, "bad sig", http.StatusForbidden)
			return
		}
		_, _ = io.WriteString(w, q.Get("echostr"))
		return
	}
	n := int(g.n.Add(1))
	body, _ := io.ReadAll(r.Body)
	if g.delay != nil {
		select {
		case <-time.After(g.delay(n)):
		case <-r.Context().Done():
			return
		}
	}
	if g.status != nil && g.status(n) != 200 {
		w.WriteHeader(g.status(n))
		return
	}
	encrypted := g.wecom || q.Get("encrypt_type") == "aes"
	if !g.wecom && util.Signature(tToken, ts, nonce) != q.Get("signature") {
		http.Error(w, "bad signature", http.StatusForbidden)
		return
	}
	plain := body
	if encrypted {
		var env struct{ Encrypt string }
		if err := xml.Unmarshal(body, &env); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		if util.Signature(tToken, ts, nonce, env.Encrypt) != q.Get("msg_signature") {
			http.Error(w, "bad msg_signature", http.StatusForbidden)
			return
		}
		var err error
		if _, plain, err = util.DecryptMsg(g.receive, env.Encrypt, tAESKey); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
	}
	m := parseFlatXML(g.t, plain)
	g.mu.Lock()
	g.got = append(g.got, m)
	g.bodies = append(g.bodies, body)
	g.mu.Unlock()
	rep := ""
	if g.reply != nil {
		rep = g.reply(m)
	}
	if rep == "" {
		_, _ = io.WriteString(w, "success")
		return
	}
	if !encrypted {
		_, _ = io.WriteString(w, rep)
		return
	}
	enc, err := util.EncryptMsg([]byte("0123456789abcdef"), []byte(rep), g.receive, tAESKey)
	if err != nil {
		g.t.Error(err)
	}
	sig := util.Signature(tToken, ts, nonce, string(enc))
	fmt.Fprintf(w, "<xml><Encrypt><![CDATA[%s]]></Encrypt><MsgSignature><![CDATA[%s]]></MsgSignature><TimeStamp>%s</TimeStamp><Nonce><![CDATA[%s]]></Nonce></xml>", enc, sig, ts, nonce)
}

// parseFlatXML reads <xml><A>..</A>…</xml> into a map.
func parseFlatXML(t *testing.T, b []byte) map[string]string {
	dec := xml.NewDecoder(strings.NewReader(string(b)))
	out := map[string]string{}
	var cur string
	depth := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("bad xml %q: %v", b, err)
		}
		switch v := tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 2 {
				cur = v.Name.Local
				out[cur] = ""
			}
		case xml.CharData:
			if depth == 2 {
				out[cur] += string(v)
			}
		case xml.EndElement:
			depth--
		}
	}
	return out
}

func textReply(m map[string]string, content string) string {
	return fmt.Sprintf("<xml><ToUserName><![CDATA[%s]]></ToUserName><FromUserName><![CDATA[%s]]></FromUserName><CreateTime>%d</CreateTime><MsgType><![CDATA[text]]></MsgType><Content>%s</Content></xml>",
		m["FromUserName"], m["ToUserName"], time.Now().Unix(), cdata(content))
}

func newOA(t *testing.T, g *fakeGateway, mode Mode) *OAClient {
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	g.t = t
	if g.receive == "" {
		g.receive = tAppID
	}
	return &OAClient{URL: srv.URL + "/wx/oa?x=1", Token: tToken, AppID: tAppID, EncodingAESKey: tAESKey, OriginalID: tGhID, Mode: mode,
		Timeout: 300 * time.Millisecond, RetryWait: time.Millisecond}
}

func TestOAClientModesRoundTrip(t *testing.T) {
	for _, mode := range []Mode{ModePlain, ModeCompat, ModeSafe} {
		t.Run(mode.String(), func(t *testing.T) {
			g := &fakeGateway{reply: func(m map[string]string) string { return textReply(m, "echo: "+m["Content"]) }}
			c := newOA(t, g, mode)
			d, err := c.SendText(context.Background(), "oUser1", "你好 ]]> <b>", 42)
			if err != nil {
				t.Fatal(err)
			}
			if len(d.Attempts) != 1 || !d.Acked {
				t.Fatalf("attempts %d acked %v", len(d.Attempts), d.Acked)
			}
			got := g.got[0]
			if got["Content"] != "你好 ]]> <b>" || got["MsgId"] != "42" || got["FromUserName"] != "oUser1" || got["ToUserName"] != tGhID || got["MsgType"] != "text" {
				t.Fatalf("gateway decoded %v", got)
			}
			if d.Reply == nil || d.Reply.Content != "echo: 你好 ]]> <b>" || d.Reply.Encrypted != (mode != ModePlain) {
				t.Fatalf("reply %+v", d.Reply)
			}
			body := string(g.bodies[0])
			switch mode {
			case ModePlain:
				if strings.Contains(body, "Encrypt") {
					t.Fatal("plain body has Encrypt")
				}
			case ModeCompat:
				if !strings.Contains(body, "<Encrypt>") || !strings.Contains(body, "<Content>") {
					t.Fatalf("compat body lacks plaintext+Encrypt: %s", body)
				}
			case ModeSafe:
				if strings.Contains(body, "Content") || !strings.Contains(body, "<ToUserName><![CDATA["+tGhID) {
					t.Fatalf("safe body: %s", body)
				}
			}
		})
	}
}

func TestOAQueryParams(t *testing.T) {
	for _, mode := range []Mode{ModePlain, ModeSafe} {
		c := &OAClient{URL: "https://gw.example/wx", Token: tToken, AppID: tAppID, EncodingAESKey: tAESKey, OriginalID: tGhID, Mode: mode}
		r, err := c.BuildOARequest(&Message{FromUserName: "oU", MsgType: "event", Event: "subscribe"})
		if err != nil {
			t.Fatal(err)
		}
		u := must(t, r.URL)
		q := u.Query()
		for _, k := range []string{"signature", "timestamp", "nonce", "openid"} {
			if q.Get(k) == "" {
				t.Errorf("%v: missing %s", mode, k)
			}
		}
		if q.Get("signature") != util.Signature(tToken, q.Get("timestamp"), q.Get("nonce")) {
			t.Errorf("signature mismatch")
		}
		if mode == ModeSafe {
			var env struct{ Encrypt string }
			_ = xml.Unmarshal(r.Body, &env)
			if q.Get("encrypt_type") != "aes" || q.Get("msg_signature") != util.Signature(tToken, q.Get("timestamp"), q.Get("nonce"), env.Encrypt) {
				t.Errorf("bad aes params %v", q)
			}
			_, plain, err := util.DecryptMsg(tAppID, env.Encrypt, tAESKey)
			if err != nil || string(plain) != string(r.Plain) {
				t.Errorf("silenceper decrypt: %v %q", err, plain)
			}
		} else if q.Has("encrypt_type") || q.Has("msg_signature") {
			t.Errorf("plain mode sent aes params")
		}
		if strings.Contains(string(r.Plain), "MsgId") {
			t.Errorf("event carries MsgId: %s", r.Plain)
		}
	}
}

func TestOARetriesIdenticalRequest(t *testing.T) {
	g := &fakeGateway{
		delay:  func(n int) time.Duration { return map[bool]time.Duration{true: time.Second, false: 0}[n <= 2] },
		status: func(n int) int { return 200 },
	}
	c := newOA(t, g, ModeSafe)
	c.Timeout = 100 * time.Millisecond
	d, err := c.SendText(context.Background(), "oU", "hi", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Attempts) != 3 || !d.Attempts[0].TimedOut || !d.Attempts[1].TimedOut || d.Attempts[2].Status != 200 {
		t.Fatalf("attempts: %+v", d.Attempts)
	}
	if len(g.bodies) != 1 { // the first two were abandoned before the gateway recorded them
		t.Fatalf("gateway saw %d complete", len(g.bodies))
	}
	// Every delivery of a built request is byte-identical.
	r, _ := c.BuildOARequest(&Message{FromUserName: "oU", MsgType: "text", Content: "x"})
	var urls, bodies []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		urls, bodies = append(urls, req.URL.String()), append(bodies, string(b))
		w.WriteHeader(500)
	}))
	defer srv.Close()
	r.URL = srv.URL + r.URL[strings.Index(r.URL, "/wx"):]
	d, err = c.Deliver(context.Background(), r)
	if !errors.Is(err, ErrNotAcked) || len(d.Attempts) != 1+DefaultRetries || !d.UserSawError() {
		t.Fatalf("err %v attempts %d", err, len(d.Attempts))
	}
	for i := range urls {
		if urls[i] != urls[0] || bodies[i] != bodies[0] {
			t.Fatalf("delivery %d differs", i)
		}
	}
	c.Retries = NoRetries
	d, _ = c.Deliver(context.Background(), r)
	if len(d.Attempts) != 1 {
		t.Fatalf("NoRetries made %d attempts", len(d.Attempts))
	}
}

func TestOAReplyValidation(t *testing.T) {
	cases := []struct {
		name  string
		mode  Mode
		reply string // written raw
		ok    bool
	}{
		{"empty", ModeSafe, "", true},
		{"success", ModePlain, "success", true},
		{"success-newline", ModePlain, "success\n", false},
		{"json", ModePlain, `{"ok":true}`, false},
		{"plain in safe", ModeSafe, textReply(map[string]string{"FromUserName": "oU", "ToUserName": tGhID}, "x"), false},
		{"plain in compat", ModeCompat, textReply(map[string]string{"FromUserName": "oU", "ToUserName": tGhID}, "x"), true},
		{"wrong user", ModePlain, textReply(map[string]string{"FromUserName": "oOther", "ToUserName": tGhID}, "x"), false},
		{"unknown type", ModePlain, strings.Replace(textReply(map[string]string{"FromUserName": "oU", "ToUserName": tGhID}, "x"), "[text]", "[markdown]", 1), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, tc.reply) }))
			defer srv.Close()
			c := &OAClient{URL: srv.URL, Token: tToken, AppID: tAppID, EncodingAESKey: tAESKey, OriginalID: tGhID, Mode: tc.mode}
			d, err := c.SendText(context.Background(), "oU", "hi", 0)
			if tc.ok != (err == nil) {
				t.Fatalf("err = %v", err)
			}
			if !tc.ok && (!errors.Is(err, ErrBadReply) || !d.UserSawError() || len(d.Attempts) != 1) {
				t.Fatalf("want one attempt and ErrBadReply, got %v / %d", err, len(d.Attempts))
			}
		})
	}
}

func TestOAEncryptedReplyChecks(t *testing.T) {
	c := &OAClient{Token: tToken, AppID: tAppID, EncodingAESKey: tAESKey, OriginalID: tGhID, Mode: ModeSafe}
	rep := textReply(map[string]string{"FromUserName": "oU", "ToUserName": tGhID}, "hello")
	env := func(appID, sigToken string) []byte {
		enc, _ := util.EncryptMsg([]byte("0123456789abcdef"), []byte(rep), appID, tAESKey)
		sig := util.Signature(sigToken, "1700000000", "n1", string(enc))
		return fmt.Appendf(nil, "<xml><Encrypt><![CDATA[%s]]></Encrypt><MsgSignature><![CDATA[%s]]></MsgSignature><TimeStamp>1700000000</TimeStamp><Nonce><![CDATA[n1]]></Nonce></xml>", enc, sig)
	}
	if r, err := c.DecodeReply("oU", env(tAppID, tToken)); err != nil || r.Content != "hello" || !r.Encrypted {
		t.Fatalf("good envelope: %v %+v", err, r)
	}
	if _, err := c.DecodeReply("oU", env("wxOTHER", tToken)); !errors.Is(err, ErrReceiveID) {
		t.Fatalf("wrong appid: %v", err)
	}
	if _, err := c.DecodeReply("oU", env(tAppID, "otherToken")); !errors.Is(err, ErrSignature) {
		t.Fatalf("wrong signature: %v", err)
	}
	pc := *c
	pc.Mode = ModePlain
	if _, err := pc.DecodeReply("oU", env(tAppID, tToken)); !errors.Is(err, ErrBadReply) {
		t.Fatalf("encrypted reply in plain mode: %v", err)
	}
}

func TestOATamperRejectedBySilenceperGateway(t *testing.T) {
	g := &fakeGateway{}
	c := newOA(t, g, ModeSafe)
	c.Retries = NoRetries
	ctx := context.Background()
	for name, tam := range map[string]Tamper{
		"signature":     WrongSignature(),
		"msg_signature": WrongMsgSignature(),
		"appid":         WrongReceiveID("wxEVIL"),
		"aeskey":        WrongAESKey(GenerateEncodingAESKey()),
	} {
		d, err := c.Send(ctx, &Message{FromUserName: "oU", MsgType: "text", Content: "x"}, tam)
		if !errors.Is(err, ErrNotAcked) || d.Attempts[0].Status == 200 {
			t.Errorf("%s: gateway accepted a tampered request (%v)", name, err)
		}
	}
	r, _ := c.BuildOARequest(&Message{FromUserName: "oU", MsgType: "text", Content: "x"}, StaleTimestamp(time.Hour))
	if ts := must(t, r.URL).Query().Get("timestamp"); ts != fmt.Sprint(time.Now().Add(-time.Hour).Unix()) {
		t.Errorf("stale timestamp %s", ts)
	}
	if err := c.Verify(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Verify(ctx, WrongSignature()); !errors.Is(err, ErrVerify) {
		t.Fatalf("verify with wrong signature: %v", err)
	}
}

func TestOAMessageShapes(t *testing.T) {
	g := &fakeGateway{}
	c := newOA(t, g, ModeSafe)
	ctx := context.Background()
	steps := []func() (*Delivery, error){
		func() (*Delivery, error) { return c.SendEvent(ctx, "oU", "subscribe", "qrscene_store42") },
		func() (*Delivery, error) { return c.SendImage(ctx, "oU", "http://pic", "MEDIA1", 0) },
		func() (*Delivery, error) { return c.SendVoice(ctx, "oU", "MEDIA2", "", "语音识别", 0) },
		func() (*Delivery, error) { return c.SendLocation(ctx, "oU", 23.134521, 113.358803, 20, "广州", 0) },
		func() (*Delivery, error) { return c.SendLink(ctx, "oU", "T", "D", "http://l", 0) },
		func() (*Delivery, error) { return c.SendMenuClick(ctx, "oU", "101", "满意") },
	}
	for _, f := range steps {
		if _, err := f(); err != nil {
			t.Fatal(err)
		}
	}
	want := []map[string]string{
		{"MsgType": "event", "Event": "subscribe", "EventKey": "qrscene_store42"},
		{"MsgType": "image", "PicUrl": "http://pic", "MediaId": "MEDIA1"},
		{"MsgType": "voice", "MediaId": "MEDIA2", "Format": "amr", "Recognition": "语音识别"},
		{"MsgType": "location", "Location_X": "23.134521", "Location_Y": "113.358803", "Scale": "20", "Label": "广州"},
		{"MsgType": "link", "Title": "T", "Description": "D", "Url": "http://l"},
		{"MsgType": "text", "Content": "满意", "bizmsgmenuid": "101"},
	}
	for i, w := range want {
		for k, v := range w {
			if g.got[i][k] != v {
				t.Errorf("msg %d field %s = %q, want %q (%v)", i, k, g.got[i][k], v, g.got[i])
			}
		}
	}
}

func TestWeComClient(t *testing.T) {
	g := &fakeGateway{wecom: true, receive: tCorpID, t: t,
		reply: func(m map[string]string) string {
			return fmt.Sprintf("<xml><ToUserName><![CDATA[%s]]></ToUserName><FromUserName><![CDATA[%s]]></FromUserName><CreateTime>1700000000</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[ok]]></Content></xml>", m["FromUserName"], tCorpID)
		}}
	srv := httptest.NewServer(g)
	defer srv.Close()
	c := &WeComClient{URL: srv.URL, Token: tToken, CorpID: tCorpID, AgentID: 1000002, EncodingAESKey: tAESKey, Timeout: time.Second}
	ctx := context.Background()
	if err := c.Verify(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Verify(ctx, WrongMsgSignature()); !errors.Is(err, ErrVerify) {
		t.Fatal(err)
	}
	d, err := c.SendText(ctx, "zhangsan", "告警", 7)
	if err != nil {
		t.Fatal(err)
	}
	if d.Reply == nil || d.Reply.Content != "ok" || g.got[0]["AgentID"] != "1000002" || g.got[0]["ToUserName"] != tCorpID {
		t.Fatalf("reply %+v got %v", d.Reply, g.got[0])
	}
	q := must(t, d.Request.URL).Query()
	if q.Has("signature") || q.Has("encrypt_type") || !q.Has("msg_signature") {
		t.Fatalf("wecom query %v", q)
	}
	if !strings.Contains(string(d.Request.Body), "<AgentID>") {
		t.Fatalf("outer body lacks AgentID: %s", d.Request.Body)
	}
}

func TestKFClientSignal(t *testing.T) {
	g := &fakeGateway{wecom: true, receive: tCorpID, t: t}
	srv := httptest.NewServer(g)
	defer srv.Close()
	api := NewAPI(APIOptions{KF: []KFCorp{{CorpID: tCorpID, Secret: "kfsecret", Accounts: []string{"wkA"}}}})
	c := &KFClient{URL: srv.URL, Token: tToken, CorpID: tCorpID, EncodingAESKey: tAESKey, API: api, Timeout: time.Second}
	d, err := c.CustomerSends(context.Background(), "wkA", "wmCust", "在吗")
	if err != nil {
		t.Fatal(err)
	}
	m := g.got[0]
	if m["Event"] != "kf_msg_or_event" || m["OpenKfId"] != "wkA" || m["Token"] == "" || m["MsgType"] != "event" || d.Reply != nil {
		t.Fatalf("kf callback %v", m)
	}
	// silenceper's KF callback struct parses it too.
	if err := c.Verify(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := (replyDecoder{noPassive: true}).decode([]byte("<xml/>")); !errors.Is(err, ErrBadReply) {
		t.Fatal("KF accepted a passive reply")
	}
}

// httpHandlerFunc adapts a tiny (query, body) → (status, body) function.
type httpHandlerFunc func(q map[string]string, body []byte) (int, string)

func (f httpHandlerFunc) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	q := map[string]string{}
	for k, v := range r.URL.Query() {
		q[k] = v[0]
	}
	status, body := f(q, b)
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}
