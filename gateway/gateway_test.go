package gateway

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"kefu/conv"
	"kefu/engine"
	"kefu/internal/testredis"
	"kefu/wxsim"
)

func TestOA_PassiveReplyInEveryMode(t *testing.T) {
	forEachEngine(t, func(t *testing.T, kind engineKind) {
		e := newEnv(t, kind)
		for _, tc := range []struct {
			ch   string
			mode wxsim.Mode
		}{{"plain", wxsim.ModePlain}, {"demo", wxsim.ModeCompat}, {"demo", wxsim.ModeSafe}} {
			t.Run(tc.mode.String(), func(t *testing.T) {
				d, err := e.oa(tc.ch, tc.mode).SendText(context.Background(), "user-"+tc.mode.String(), "营业时间是几点", 0)
				if err != nil {
					t.Fatal(err)
				}
				if d.UserSawError() || d.Reply == nil {
					t.Fatalf("no passive reply: acked=%v replyErr=%v attempts=%d", d.Acked, d.ReplyErr, len(d.Attempts))
				}
				if d.Reply.Content != "echo:营业时间是几点" || d.Reply.ToUser != "user-"+tc.mode.String() {
					t.Fatalf("reply = %+v", d.Reply)
				}
				if tc.mode == wxsim.ModeSafe && !d.Reply.Encrypted {
					t.Fatal("safe mode reply must be encrypted")
				}
				if len(d.Attempts) != 1 {
					t.Fatalf("answered on delivery %d, want the first", len(d.Attempts))
				}
			})
		}
	})
}

func TestOA_URLVerification(t *testing.T) {
	e := newEnv(t, embeddedEngine)
	if err := e.oa("demo", wxsim.ModeSafe).Verify(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := e.oa("demo", wxsim.ModeSafe).Verify(context.Background(), wxsim.WrongSignature()); err == nil {
		t.Fatal("verification with a wrong signature succeeded")
	}
}

func TestOA_RejectsBadRequestsAndProcessesNothing(t *testing.T) {
	// A small body cap keeps the oversized body inside the socket buffers,
	// so the client reads the 413 instead of a reset from the early close.
	e := newEnv(t, embeddedEngine, func(c *Config) { c.MaxBodyBytes = 4096 })
	c := e.oa("demo", wxsim.ModeSafe)
	c.Retries = wxsim.NoRetries
	cases := []struct {
		name   string
		tamper wxsim.Tamper
		status int
	}{
		{"wrong signature", wxsim.WrongSignature(), 401},
		{"wrong msg_signature", wxsim.WrongMsgSignature(), 401},
		{"wrong receive id", wxsim.WrongReceiveID("wx_someone_else"), 500},
		{"wrong aes key", wxsim.WrongAESKey("ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ"), 500},
		{"stale timestamp", wxsim.StaleTimestamp(time.Hour), 403},
		{"missing signature", wxsim.OmitQuery("signature"), 401},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, err := c.Send(context.Background(), &wxsim.Message{FromUserName: "u1", MsgType: "text", Content: "hi"}, tc.tamper)
			if !errors.Is(err, wxsim.ErrNotAcked) {
				t.Fatalf("want ErrNotAcked, got %v", err)
			}
			if got := d.Attempts[0].Status; got != tc.status {
				t.Fatalf("status %d, want %d (body %q)", got, tc.status, d.Attempts[0].Body)
			}
		})
	}
	if n := e.h.count(); n != 0 {
		t.Fatalf("handler called %d times for rejected requests", n)
	}
	raw := func(method, path, body string) (int, string) {
		req, _ := http.NewRequest(method, e.url+path, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if st, _ := raw("POST", "/wechat/oa/nosuch", "<xml/>"); st != 404 {
		t.Fatalf("unknown channel: %d", st)
	}
	if st, _ := raw("POST", "/nowhere", ""); st != 404 {
		t.Fatalf("unknown path: %d", st)
	}
	// Garbage with a valid plain signature → 400.
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	sig := wxsim.Signature(testOAToken, ts, "n1")
	q := "?signature=" + sig + "&timestamp=" + ts + "&nonce=n1"
	if st, body := raw("POST", "/wechat/oa/plain"+q, "<xml><ToUserName>x</ToUser"); st != 400 {
		t.Fatalf("garbage XML: %d %q", st, body)
	}
	if st, _ := raw("POST", "/wechat/oa/plain"+q, `{"json":"not xml"}`); st != 400 {
		t.Fatalf("JSON body: %d", st)
	}
	if st, _ := raw("POST", "/wechat/oa/plain"+q, "<xml><MsgType>text</MsgType></xml>"); st != 400 {
		t.Fatalf("missing fields: %d", st)
	}
	big := "<xml><Content>" + strings.Repeat("a", 8192) + "</Content></xml>"
	if st, _ := raw("POST", "/wechat/oa/plain"+q, big); st != 413 {
		t.Fatalf("oversized body: %d", st)
	}
	if st, _ := raw("PUT", "/wechat/oa/plain"+q, ""); st != 405 {
		t.Fatalf("PUT: %d", st)
	}
	if n := e.h.count(); n != 0 {
		t.Fatalf("handler called %d times for rejected requests", n)
	}
}

// WeChat retries a message up to three more times; every delivery must get
// the same answer and the handler must run once.
func TestOA_RetriesYieldOneAnswer(t *testing.T) {
	forEachEngine(t, func(t *testing.T, kind engineKind) {
		e := newEnv(t, kind)
		c := e.oa("demo", wxsim.ModeSafe)
		req, err := c.BuildOARequest(&wxsim.Message{FromUserName: "u-retry", MsgType: "text", Content: "退货", MsgID: 777})
		if err != nil {
			t.Fatal(err)
		}
		var replies []string
		for i := 0; i < 4; i++ {
			d, err := c.Deliver(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			if d.Reply == nil {
				t.Fatalf("delivery %d: no reply", i)
			}
			replies = append(replies, d.Reply.Content)
		}
		for _, r := range replies {
			if r != "echo:退货" {
				t.Fatalf("replies = %q", replies)
			}
		}
		if n := e.h.count(); n != 1 {
			t.Fatalf("handler ran %d times, want 1", n)
		}
		time.Sleep(200 * time.Millisecond)
		if got := e.sim.Inbox("u-retry"); len(got) != 0 {
			t.Fatalf("a passive answer was also sent through the API: %+v", got)
		}
	})
}

// Concurrent duplicates (WeChat retrying while the first is still being
// answered) share one answer.
func TestOA_ConcurrentDuplicatesShareTheAnswer(t *testing.T) {
	e := newEnv(t, embeddedEngine)
	e.h.set(func(s *scripted) { s.delay = 300 * time.Millisecond })
	c := e.oa("demo", wxsim.ModeSafe)
	req, _ := c.BuildOARequest(&wxsim.Message{FromUserName: "u-conc", MsgType: "text", Content: "会员", MsgID: 4242})
	var wg sync.WaitGroup
	out := make([]string, 4)
	for i := range out {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := c.Deliver(context.Background(), req)
			if err == nil && d.Reply != nil {
				out[i] = d.Reply.Content
			}
		}()
	}
	wg.Wait()
	for i, r := range out {
		if r != "echo:会员" {
			t.Fatalf("delivery %d got %q", i, r)
		}
	}
	if n := e.h.count(); n != 1 {
		t.Fatalf("handler ran %d times, want 1", n)
	}
}

// An answer slower than the passive budget is acked at once and sent
// through custom/send, exactly once.
func TestOA_SlowAnswerGoesThroughCustomSend(t *testing.T) {
	forEachEngine(t, func(t *testing.T, kind engineKind) {
		e := newEnv(t, kind, func(c *Config) { c.PassiveBudget = 200 * time.Millisecond })
		e.h.set(func(s *scripted) { s.delay = 600 * time.Millisecond })
		// The handler takes 600 ms, the budget is 200 ms: a plain ack (not
		// the answer) proves the callback was answered at the budget.
		d, err := e.oa("demo", wxsim.ModeSafe).SendText(context.Background(), "u-slow", "配送多久", 0)
		if err != nil {
			t.Fatal(err)
		}
		if d.Reply != nil || !d.Acked || string(d.Body) != "success" {
			t.Fatalf("want a plain ack, got reply=%+v body=%q", d.Reply, d.Body)
		}
		waitFor(t, 5*time.Second, "custom/send", func() bool { return len(e.sim.Inbox("u-slow")) == 1 })
		time.Sleep(300 * time.Millisecond)
		if got := inboxTexts(e.sim, "u-slow"); len(got) != 1 || got[0] != "echo:配送多久" {
			t.Fatalf("inbox = %q", got)
		}
	})
}

// Without the engine nothing can be accepted durably: the gateway must
// answer non-200 so WeChat retries, never ack and lose.
func TestOA_EngineDownIsNotAcked(t *testing.T) {
	e := newEnv(t, embeddedEngine)
	_ = e.eng.Close()
	c := e.oa("demo", wxsim.ModeSafe)
	c.Retries = wxsim.NoRetries
	d, err := c.SendText(context.Background(), "u-down", "hi", 0)
	if !errors.Is(err, wxsim.ErrNotAcked) {
		t.Fatalf("want ErrNotAcked, got %v", err)
	}
	if d.Acked || d.Attempts[0].Status != 503 {
		t.Fatalf("engine down: status %d acked=%v", d.Attempts[0].Status, d.Acked)
	}
	if e.h.count() != 0 {
		t.Fatal("handler ran without durable accept")
	}
}

// A message accepted by a worker that died is answered by recovery.
func TestRecovery_AnswersMessagesOfADeadWorker(t *testing.T) {
	forEachEngine(t, func(t *testing.T, kind engineKind) {
		e := newEnv(t, kind, func(c *Config) { c.RecoveryAfter = 5 * time.Second })
		// Accept as a crashed instance would have: claim + enqueue, no answer.
		msg := conv.Message{ID: "oa:" + testAppID + ":m:u-crash:99", Channel: "demo", ChannelType: conv.ChannelWeChatOA,
			ExternalUser: "u-crash", Customer: "demo:u-crash", Kind: conv.MsgText, Text: "发票", CreatedAt: time.Now()}
		shard := e.gw.shard(msg.Customer)
		b, _ := json.Marshal(msg)
		st := dedupeState{S: "p", O: "dead-instance-1", At: time.Now().UnixMilli()}
		ctx := context.Background()
		claimKey := fmt.Sprintf("in:{%d}:d:%s", shard, msg.ID)
		if _, _, err := e.eng.ClaimAndEnqueue(ctx, claimKey, st.bytes(), time.Hour, fmt.Sprintf("in:{%d}", shard), engineJob(msg.ID, b, time.Now())); err != nil {
			t.Fatal(err)
		}
		e.sim.UserInteracted(testAppID, "u-crash", wxsim.InteractMessage, time.Now())
		e.gw.RecoverOnce(ctx)
		waitFor(t, 5*time.Second, "recovered answer", func() bool { return len(e.sim.Inbox("u-crash")) == 1 })
		// A second pass must not answer again.
		e.gw.RecoverOnce(ctx)
		time.Sleep(300 * time.Millisecond)
		if got := inboxTexts(e.sim, "u-crash"); len(got) != 1 || got[0] != "echo:发票" {
			t.Fatalf("inbox = %q", got)
		}
		// And a late WeChat retry of it is acked without a second answer.
		if e.h.count() != 1 {
			t.Fatalf("handler ran %d times", e.h.count())
		}
	})
}

func TestWeComApp_VerifyAndPassiveReply(t *testing.T) {
	e := newEnv(t, embeddedEngine)
	c := &wxsim.WeComClient{URL: e.url + "/wecom/app/mgr", Token: testAppToken, CorpID: testCorpID, AgentID: 1000002, EncodingAESKey: testAppKey, RetryWait: -1}
	if err := c.Verify(context.Background()); err != nil {
		t.Fatal("echostr verification:", err)
	}
	d, err := c.SendText(context.Background(), "manager1", "认领 123", 0)
	if err != nil {
		t.Fatal(err)
	}
	if d.Reply == nil || d.Reply.Content != "echo:认领 123" || !d.Reply.Encrypted {
		t.Fatalf("reply = %+v (err %v)", d.Reply, d.ReplyErr)
	}
	c.Retries = wxsim.NoRetries
	d, _ = c.Send(context.Background(), &wxsim.Message{FromUserName: "m", MsgType: "text", Content: "x"}, wxsim.WrongMsgSignature())
	if d == nil {
		t.Fatal("no delivery")
	}
	if d.Attempts[0].Status != 401 {
		t.Fatalf("bad msg_signature: %d", d.Attempts[0].Status)
	}
}

// A customer writes again while the gateway is pulling their account: the
// callback re-enqueues the account's sync job while the puller holds it.
// The puller must not delete that job with the one it finished, or the
// second message waits for the safety poll a minute later.
func TestKF_CallbackDuringPullIsNotLost(t *testing.T) {
	forEachEngine(t, func(t *testing.T, kind engineKind) {
		e := newEnv(t, kind)
		kc := &wxsim.KFClient{URL: e.url + "/wecom/kf/kf", Token: testKFToken, CorpID: testCorpID, EncodingAESKey: testKFKey, API: e.sim, RetryWait: -1}
		if err := kc.Verify(context.Background()); err != nil {
			t.Fatal(err)
		}
		second := make(chan error, 1)
		e.sim.AfterCall("/cgi-bin/kf/sync_msg", func() {
			// The page with the first message is computed; the puller
			// has not seen it yet and still holds its claim.
			d, err := kc.CustomerSends(context.Background(), testKFID, "ext-user-2", "问题B")
			if err == nil && (!d.Acked || len(d.Body) != 0) {
				err = fmt.Errorf("second callback not acked: %+v", d)
			}
			second <- err
		})
		if d, err := kc.CustomerSends(context.Background(), testKFID, "ext-user-2", "问题A"); err != nil || !d.Acked {
			t.Fatalf("first callback: %v", err)
		}
		if err := <-second; err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "both KF answers (the second well before the minute's safety poll)", func() bool { return len(e.sim.Inbox("ext-user-2")) == 2 })
		if got := inboxTexts(e.sim, "ext-user-2"); got[0] != "echo:问题A" || got[1] != "echo:问题B" {
			t.Fatalf("answers = %q", got)
		}
	})
}

func TestKF_CallbackPullAndReply(t *testing.T) {
	forEachEngine(t, func(t *testing.T, kind engineKind) {
		e := newEnv(t, kind)
		kc := &wxsim.KFClient{URL: e.url + "/wecom/kf/kf", Token: testKFToken, CorpID: testCorpID, EncodingAESKey: testKFKey, API: e.sim, RetryWait: -1}
		if err := kc.Verify(context.Background()); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 3; i++ {
			d, err := kc.CustomerSends(context.Background(), testKFID, "ext-user-1", fmt.Sprintf("问题%d", i))
			if err != nil || !d.Acked || len(d.Body) != 0 {
				t.Fatalf("callback: %v acked=%v body=%q", err, d != nil && d.Acked, d.Body)
			}
		}
		waitFor(t, 10*time.Second, "three KF answers", func() bool { return len(e.sim.Inbox("ext-user-1")) == 3 })
		got := inboxTexts(e.sim, "ext-user-1")
		for i := 0; i < 3; i++ {
			if got[i] != fmt.Sprintf("echo:问题%d", i) {
				t.Fatalf("answers out of order or wrong: %q", got)
			}
		}
		// The cursor is durable: a replayed callback pulls nothing new.
		_, err := kc.SendEvent(context.Background(), "", testKFID)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond)
		if e.h.count() != 3 {
			t.Fatalf("handler ran %d times, want 3", e.h.count())
		}
	})
}

func signJSON(body []byte, ts string) string {
	m := hmac.New(sha256.New, []byte(testJSONKey))
	m.Write([]byte(ts + "."))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

func TestJSON_SignedContract(t *testing.T) {
	e := newEnv(t, embeddedEngine)
	post := func(body []byte, sig string) (int, JSONResponse, string) {
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		if sig == "" {
			sig = signJSON(body, ts)
		}
		req, _ := http.NewRequest("POST", e.url+"/im/web", bytes.NewReader(body))
		req.Header.Set("X-Kefu-Timestamp", ts)
		req.Header.Set("X-Kefu-Signature", sig)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var out JSONResponse
		_ = json.Unmarshal(b, &out)
		return resp.StatusCode, out, string(b)
	}
	body := []byte(`{"message_id":"m1","user_id":"web-u1","type":"text","text":"你好"}`)
	st, out, raw := post(body, "")
	if st != 200 || len(out.Replies) != 1 || out.Replies[0].Text != "echo:你好" {
		t.Fatalf("%d %s", st, raw)
	}
	st, out, _ = post(body, "")
	if st != 200 || !out.Duplicate || out.Replies[0].Text != "echo:你好" {
		t.Fatalf("duplicate: %d %+v", st, out)
	}
	if st, _, _ := post(body, strings.Repeat("0", 64)); st != 401 {
		t.Fatalf("bad signature: %d", st)
	}
	for _, bad := range []string{`{`, `{"message_id":"m2","user_id":"u","type":"sticker"}`, `{"message_id":"","user_id":"u","type":"text","text":"x"}`, `{"message_id":"m3","user_id":"u","type":"text","text":"x","extra":1}`} {
		if st, _, raw := post([]byte(bad), ""); st != 400 {
			t.Fatalf("%s: %d %s", bad, st, raw)
		}
	}
	if e.h.count() != 1 {
		t.Fatalf("handler ran %d times", e.h.count())
	}
}

func TestOA_EventsDedupeAndStoreScene(t *testing.T) {
	e := newEnv(t, embeddedEngine)
	c := e.oa("demo", wxsim.ModeSafe)
	req, _ := c.BuildOARequest(&wxsim.Message{FromUserName: "u-ev", MsgType: "event", Event: "subscribe", EventKey: "qrscene_1002"})
	for i := 0; i < 2; i++ {
		if d, err := c.Deliver(context.Background(), req); err != nil || !d.Acked {
			t.Fatalf("event delivery %d: %v", i, err)
		}
	}
	if e.h.count() != 1 {
		t.Fatalf("event handled %d times", e.h.count())
	}
	e.h.mu.Lock()
	m := e.h.calls[0]
	e.h.mu.Unlock()
	if m.Kind != conv.MsgEvent || m.Event != "subscribe" || m.Store != "store-002" || m.Extra["scene"] != "1002" {
		t.Fatalf("event = %+v", m)
	}
	// Unknown message types are kept, not dropped.
	if _, err := c.Send(context.Background(), &wxsim.Message{FromUserName: "u-ev", MsgType: "hologram", MsgID: 5}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Second, "unknown kind", func() bool { return e.h.count() == 2 })
	e.h.mu.Lock()
	m = e.h.calls[1]
	e.h.mu.Unlock()
	if m.Kind != conv.MsgUnknown || !bytes.Contains(m.Raw, []byte("hologram")) {
		t.Fatalf("unknown = %+v", m)
	}
}

// The handler failing leaves the message for recovery instead of losing it.
func TestOA_HandlerErrorLeavesMessageForRecovery(t *testing.T) {
	e := newEnv(t, embeddedEngine, func(c *Config) { c.RecoveryAfter = 5 * time.Second })
	e.h.set(func(s *scripted) { s.fail = errors.New("bot index unavailable") })
	d, err := e.oa("demo", wxsim.ModeSafe).SendText(context.Background(), "u-fail", "积分", 0)
	if err != nil || !d.Acked || d.Reply != nil {
		t.Fatalf("want ack without reply: %v %+v", err, d)
	}
	e.h.set(func(s *scripted) { s.fail = nil })
	e.gw.SetClock(func() time.Time { return time.Now().Add(10 * time.Second) })
	e.gw.RecoverOnce(context.Background())
	waitFor(t, 5*time.Second, "recovered answer", func() bool { return len(e.sim.Inbox("u-fail")) == 1 })
}

// With Redis down the gateway answers 503 so WeChat retries; once Redis is
// back the retry is accepted and answered.
func TestOA_RedisDownThenBack(t *testing.T) {
	srv := testredis.Start(t)
	sim := wxsim.NewAPI(wxsim.APIOptions{OA: []wxsim.OAApp{{AppID: testAppID, Secret: "oa-secret"}}})
	base := sim.Start()
	t.Cleanup(sim.Close)
	e := newEnvWith(t, engine.NewRedis(srv.Client(), "kefu:"), sim, base)
	c := e.oa("demo", wxsim.ModeSafe)
	c.Retries = wxsim.NoRetries
	req, _ := c.BuildOARequest(&wxsim.Message{FromUserName: "u-rd", MsgType: "text", Content: "在吗", MsgID: 31337})
	srv.Kill()
	d, _ := c.Deliver(context.Background(), req)
	if d == nil || d.Acked || d.Attempts[0].Status != 503 {
		t.Fatalf("redis down: %+v", d)
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "redis back", func() bool { return e.eng.Ping(context.Background()) == nil })
	d, err := c.Deliver(context.Background(), req)
	if err != nil || d.Reply == nil || d.Reply.Content != "echo:在吗" {
		t.Fatalf("after restart: %v %+v", err, d)
	}
	if e.h.count() != 1 {
		t.Fatalf("handler ran %d times", e.h.count())
	}
}

// The gateway's keys work on Redis Cluster: the accept path (dedupe key +
// inbox in one Lua call), retries, slow answers through the outbox, quotas.
func TestGateway_OnRedisCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node Redis Cluster")
	}
	cl := testredis.StartCluster(t)
	sim := wxsim.NewAPI(wxsim.APIOptions{OA: []wxsim.OAApp{{AppID: testAppID, Secret: "oa-secret"}}})
	base := sim.Start()
	t.Cleanup(sim.Close)
	e := newEnvWith(t, engine.NewRedis(cl.Client(), "kefu:"), sim, base, func(c *Config) { c.PassiveBudget = 300 * time.Millisecond })
	c := e.oa("demo", wxsim.ModeSafe)
	for i := 0; i < 20; i++ {
		req, _ := c.BuildOARequest(&wxsim.Message{FromUserName: fmt.Sprint("cu", i), MsgType: "text", Content: fmt.Sprint("q", i), MsgID: int64(9000 + i)})
		for r := 0; r < 2; r++ {
			d, err := c.Deliver(context.Background(), req)
			if err != nil || d.Reply == nil || d.Reply.Content != fmt.Sprint("echo:q", i) {
				t.Fatalf("msg %d delivery %d: %v %+v", i, r, err, d)
			}
		}
	}
	if e.h.count() != 20 {
		t.Fatalf("handler ran %d times, want 20", e.h.count())
	}
	e.h.set(func(s *scripted) { s.delay = 600 * time.Millisecond })
	if _, err := c.SendText(context.Background(), "cu-slow", "慢", 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "slow answer via custom/send", func() bool { return len(sim.Inbox("cu-slow")) == 1 })
}

// A handler that panics does not take the gateway down: the callback is
// acked (the message is safe in the inbox) and recovery gives up after a
// bounded number of attempts instead of crash-looping.
func TestGateway_HandlerPanicIsContained(t *testing.T) {
	e := newEnv(t, embeddedEngine, func(c *Config) { c.RecoveryAfter = 5 * time.Second })
	e.h.set(func(s *scripted) {
		s.replies = func(conv.Message) []conv.Reply { panic("bug in a domain") }
	})
	d, err := e.oa("demo", wxsim.ModeSafe).SendText(context.Background(), "u-panic", "hi", 0)
	if err != nil || !d.Acked {
		t.Fatalf("panicking handler: %v %+v", err, d)
	}
	// The process is still serving.
	e.h.set(func(s *scripted) { s.replies = nil })
	if d, err := e.oa("demo", wxsim.ModeSafe).SendText(context.Background(), "u-ok", "你好", 0); err != nil || d.Reply == nil {
		t.Fatalf("after the panic: %v %+v", err, d)
	}
	e.h.set(func(s *scripted) {
		s.replies = func(conv.Message) []conv.Reply { panic("still broken") }
	})
	offset := time.Duration(0)
	for i := 0; i < maxRecoveryAttempts+2; i++ {
		offset += 2 * time.Minute
		o := offset
		e.gw.SetClock(func() time.Time { return time.Now().Add(o) })
		e.gw.RecoverOnce(context.Background())
	}
	n, err := e.eng.QueueLen(context.Background(), fmt.Sprintf("in:{%d}", e.gw.shard("demo:u-panic")))
	if err != nil || n != 0 {
		t.Fatalf("poison message still in the inbox: %d %v", n, err)
	}
}

// A message answered within the passive budget costs one durable write:
// its "done" dedupe state with the reply. Nothing goes through the inbox.
func TestOA_PassiveAnswerIsOneDurableWrite(t *testing.T) {
	e := newEnv(t, embeddedEngine)
	emb := e.eng.(*engine.Embedded)
	before := emb.Stats().Frames
	d, err := e.oa("demo", wxsim.ModeSafe).SendText(context.Background(), "u-one", "营业时间", 0)
	if err != nil || d.Reply == nil || d.Reply.Content != "echo:营业时间" {
		t.Fatalf("reply: %v %+v", err, d)
	}
	if n := emb.Stats().Frames - before; n != 1 {
		t.Fatalf("%d WAL frames for one answered message, want 1", n)
	}
	n, err := e.eng.QueueLen(context.Background(), fmt.Sprintf("in:{%d}", e.gw.shard("demo:u-one")))
	if err != nil || n != 0 {
		t.Fatalf("inbox length %d (%v), want 0", n, err)
	}
}

// If another worker claimed the message while this one was answering it (a
// retry reached another instance after this one's budget elsewhere), this
// worker's answer is dropped and the retry is answered as a duplicate: the
// owner is asked to send through the API.
func TestOA_AnswerForAMessageClaimedElsewhereIsDropped(t *testing.T) {
	forEachEngine(t, func(t *testing.T, kind engineKind) {
		e := newEnv(t, kind, func(c *Config) { c.PassiveBudget = 800 * time.Millisecond })
		c := e.oa("demo", wxsim.ModeSafe)
		c.Retries = wxsim.NoRetries
		msgID := int64(5151)
		key := fmt.Sprintf("in:{%d}:d:oa:%s:m:u-other:%d", e.gw.shard("demo:u-other"), testAppID, msgID)
		other := dedupeState{S: "p", O: "other-instance", At: time.Now().UnixMilli()}.bytes()
		e.h.set(func(s *scripted) {
			s.delay = 200 * time.Millisecond
			s.replies = func(m conv.Message) []conv.Reply {
				if err := e.eng.Set(context.Background(), key, other, time.Hour); err != nil {
					t.Error(err)
				}
				return []conv.Reply{conv.Text("echo:" + m.Text)}
			}
		})
		req, _ := c.BuildOARequest(&wxsim.Message{FromUserName: "u-other", MsgType: "text", Content: "退货", MsgID: msgID})
		d, err := c.Deliver(context.Background(), req)
		if err != nil || !d.Acked || d.Reply != nil {
			t.Fatalf("want a plain ack: err=%v acked=%v reply=%+v", err, d.Acked, d.Reply)
		}
		cur, err := e.eng.Get(context.Background(), key)
		if err != nil {
			t.Fatal(err)
		}
		st, _ := parseState(cur)
		if st.S != "p" || st.O != "other-instance" || !st.A {
			t.Fatalf("dedupe state %+v: want the other owner's, asked to answer through the API", st)
		}
		time.Sleep(200 * time.Millisecond)
		if got := e.sim.Inbox("u-other"); len(got) != 0 {
			t.Fatalf("this worker's answer was sent: %+v", got)
		}
	})
}
