package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"kefu/conv"
	"kefu/wxsim"
)

func deadReasons(t *testing.T, s *Sender) map[string]string {
	t.Helper()
	d, err := s.DeadLetters(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, x := range d {
		out[x.Job.ID] = x.Reason
	}
	return out
}

// The OA quota is 5 messages per customer message within 48 h; the 6th is
// dead-lettered without calling the API, and a new customer message resets it.
func TestSender_OAQuotaAndWindow(t *testing.T) {
	forEachEngine(t, func(t *testing.T, kind engineKind) {
		e := newEnv(t, kind)
		ctx := context.Background()
		first := time.Now()
		e.sim.UserInteracted(testAppID, "u-q", wxsim.InteractMessage, first)
		for i := 0; i < 6; i++ {
			if err := e.gw.Sender.Send(ctx, conv.Outbound{ID: fmt.Sprintf("q%d", i), Channel: "demo", To: "u-q", Reply: conv.Text(fmt.Sprint("msg", i)), TriggerAt: first}); err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, 5*time.Second, "5 sent + 1 dead", func() bool {
			return len(e.sim.Inbox("u-q")) == 5 && len(deadReasons(t, e.gw.Sender)) == 1
		})
		if got := len(e.sim.Calls("/cgi-bin/message/custom/send")); got != 5 {
			t.Fatalf("custom/send called %d times; the 6th must not reach the API", got)
		}
		for _, r := range deadReasons(t, e.gw.Sender) {
			if r != "quota_exhausted" {
				t.Fatalf("reason %q", r)
			}
		}
		left, until, err := e.gw.Sender.Quota(ctx, "demo", "u-q", first)
		if err != nil || left != 0 || until.Sub(first) > QuotaWindow || until.Sub(first) < QuotaWindow-time.Millisecond {
			t.Fatalf("quota = %d until %s (%v)", left, until, err)
		}
		// The customer writes again: the quota resets to 5 (it does not add up).
		second := first.Add(time.Minute)
		e.sim.UserInteracted(testAppID, "u-q", wxsim.InteractMessage, second)
		if left, _, _ := e.gw.Sender.Quota(ctx, "demo", "u-q", second); left != 5 {
			t.Fatalf("after a new message quota = %d, want 5", left)
		}
		if err := e.gw.Sender.Send(ctx, conv.Outbound{ID: "q-after", Channel: "demo", To: "u-q", Reply: conv.Text("again"), TriggerAt: second}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 5*time.Second, "send after reset", func() bool { return len(e.sim.Inbox("u-q")) == 6 })
		// 48 h after the last message the window is closed.
		e.gw.SetClock(func() time.Time { return time.Now().Add(49 * time.Hour) })
		if err := e.gw.Sender.Send(ctx, conv.Outbound{ID: "q-late", Channel: "demo", To: "u-q", Reply: conv.Text("late"), TriggerAt: second}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 5*time.Second, "late send dead-lettered", func() bool { return deadReasons(t, e.gw.Sender)["q-late"] == "window_expired" })
	})
}

// When our book and the platform disagree, the platform's 45047 wins and
// the message is dead-lettered, not retried.
func TestSender_PlatformQuotaErrorStops(t *testing.T) {
	e := newEnv(t, embeddedEngine)
	ctx := context.Background()
	now := time.Now()
	e.sim.UserInteracted(testAppID, "u-p", wxsim.InteractMessage, now)
	e.sim.FailNext("/cgi-bin/message/custom/send", 45047, 1)
	_ = e.gw.Sender.Send(ctx, conv.Outbound{ID: "p1", Channel: "demo", To: "u-p", Reply: conv.Text("x"), TriggerAt: now})
	waitFor(t, 5*time.Second, "dead letter", func() bool { return deadReasons(t, e.gw.Sender)["p1"] == "quota_exhausted" })
	if left, _, _ := e.gw.Sender.Quota(ctx, "demo", "u-p", now); left != 0 {
		t.Fatalf("book not corrected: %d left", left)
	}
	if n := len(e.sim.Calls("/cgi-bin/message/custom/send")); n != 1 {
		t.Fatalf("retried a permanent error: %d calls", n)
	}
}

// An expired or revoked token is refreshed once and the call retried;
// rate limits (45009) and system errors are retried with backoff; an
// unknown permanent error is dead-lettered with its errcode; a replay
// sends a dead letter again.
func TestSender_ErrcodeMapping(t *testing.T) {
	e := newEnv(t, embeddedEngine)
	ctx := context.Background()
	now := time.Now()
	e.sim.UserInteracted(testAppID, "u-e", wxsim.InteractMessage, now)
	send := func(id string) {
		if err := e.gw.Sender.Send(ctx, conv.Outbound{ID: id, Channel: "demo", To: "u-e", Reply: conv.Text(id), TriggerAt: now}); err != nil {
			t.Fatal(err)
		}
	}
	send("warmup")
	waitFor(t, 5*time.Second, "warm-up send", func() bool { return contains(inboxTexts(e.sim, "u-e"), "warmup") })
	e.sim.RevokeTokens(testAppID)
	send("after-revoke")
	waitFor(t, 5*time.Second, "send after token revoke", func() bool { return contains(inboxTexts(e.sim, "u-e"), "after-revoke") })

	e.sim.FailNext("/cgi-bin/message/custom/send", 45009, 2)
	send("rate-limited")
	waitFor(t, 10*time.Second, "send after 45009 backoff", func() bool { return contains(inboxTexts(e.sim, "u-e"), "rate-limited") })

	e.sim.FailNext("/cgi-bin/message/custom/send", 48001, 1)
	send("no-perm")
	waitFor(t, 5*time.Second, "48001 dead letter", func() bool { return deadReasons(t, e.gw.Sender)["no-perm"] != "" })
	if r := deadReasons(t, e.gw.Sender)["no-perm"]; !strings.HasPrefix(r, "no_permission") {
		t.Fatalf("reason %q", r)
	}

	n, err := e.gw.Sender.Replay(ctx, "no-perm")
	if err != nil || n != 1 {
		t.Fatalf("replay: %d %v", n, err)
	}
	waitFor(t, 5*time.Second, "replayed send", func() bool { return contains(inboxTexts(e.sim, "u-e"), "no-perm") })
	if len(deadReasons(t, e.gw.Sender)) != 0 {
		t.Fatal("replayed letter still in the dead-letter list")
	}
	if _, err := e.gw.Sender.Replay(ctx, "nope"); err == nil {
		t.Fatal("replay of an unknown id succeeded")
	}
}

// A send that keeps failing for transient reasons ends in the dead-letter
// list after max_attempts, never silently dropped.
func TestSender_GivesUpAfterMaxAttempts(t *testing.T) {
	e := newEnv(t, embeddedEngine, func(c *Config) { c.Outbound.MaxAttempts = 3 })
	now := time.Now()
	e.sim.UserInteracted(testAppID, "u-m", wxsim.InteractMessage, now)
	e.sim.FailNext("/cgi-bin/message/custom/send", -1, 100)
	_ = e.gw.Sender.Send(context.Background(), conv.Outbound{ID: "m1", Channel: "demo", To: "u-m", Reply: conv.Text("x"), TriggerAt: now})
	waitFor(t, 10*time.Second, "dead letter", func() bool { return strings.HasPrefix(deadReasons(t, e.gw.Sender)["m1"], "max_attempts") })
	if n := len(e.sim.Calls("/cgi-bin/message/custom/send")); n != 3 {
		t.Fatalf("attempts = %d, want 3", n)
	}
}

// Sending the same ID twice delivers once.
func TestSender_IdempotentByID(t *testing.T) {
	e := newEnv(t, embeddedEngine)
	now := time.Now()
	e.sim.UserInteracted(testAppID, "u-i", wxsim.InteractMessage, now)
	job := conv.Outbound{ID: "same", Channel: "demo", To: "u-i", Reply: conv.Text("once"), TriggerAt: now}
	_ = e.gw.Sender.Send(context.Background(), job)
	waitFor(t, 5*time.Second, "first send", func() bool { return len(e.sim.Inbox("u-i")) == 1 })
	_ = e.gw.Sender.Send(context.Background(), job)
	time.Sleep(700 * time.Millisecond)
	if n := len(e.sim.Inbox("u-i")); n != 1 {
		t.Fatalf("delivered %d times", n)
	}
}

// Robots: ≤20 per minute per key; the 21st waits for the next minute
// instead of failing.
func TestSender_RobotRateLimit(t *testing.T) {
	e := newEnv(t, embeddedEngine)
	for i := 0; i < 21; i++ {
		_ = e.gw.Sender.Send(context.Background(), conv.Outbound{ID: fmt.Sprint("rb", i), Kind: conv.OutRobot, To: "robot-key-1", Reply: conv.Reply{Kind: conv.ReplyMarkdown, Text: fmt.Sprint("**alert** ", i)}})
	}
	waitFor(t, 5*time.Second, "20 robot posts", func() bool { return len(e.sim.Inbox("robot-key-1")) == 20 })
	time.Sleep(500 * time.Millisecond)
	if n := len(e.sim.Inbox("robot-key-1")); n != 20 {
		t.Fatalf("robot got %d in the first minute", n)
	}
	for _, c := range e.sim.Calls("/cgi-bin/webhook/send") {
		if c.ErrCode == 45009 {
			t.Fatal("the sender hit the platform's robot limit instead of pacing itself")
		}
	}
	if len(deadReasons(t, e.gw.Sender)) != 0 {
		t.Fatal("the 21st robot message was dead-lettered instead of deferred")
	}
}

// Many concurrent callers share one token fetch per app.
func TestTokens_OneRefreshForManyCallers(t *testing.T) {
	forEachEngine(t, func(t *testing.T, kind engineKind) {
		e := newEnv(t, kind)
		before := e.sim.TokenCalls(testAppID)
		var wg sync.WaitGroup
		var failed atomic.Int32
		for i := 0; i < 50; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := e.gw.Tokens.Get(context.Background(), oaApp(e.gw.byName["demo"])); err != nil {
					failed.Add(1)
				}
			}()
		}
		wg.Wait()
		if failed.Load() != 0 {
			t.Fatalf("%d token gets failed", failed.Load())
		}
		if got := e.sim.TokenCalls(testAppID) - before; got != 1 {
			t.Fatalf("token endpoint called %d times, want 1", got)
		}
		// KF and the WeCom app of the same corp keep separate tokens.
		kf, err := e.gw.Tokens.Get(context.Background(), kfApp(e.gw.byName["kf"]))
		if err != nil {
			t.Fatal(err)
		}
		app, err := e.gw.Tokens.Get(context.Background(), wecomApp(e.gw.byName["mgr"]))
		if err != nil {
			t.Fatal(err)
		}
		if kf == app {
			t.Fatal("KF and app tokens collide")
		}
	})
}

// WeCom app messages and JSON callbacks go out through their channels.
func TestSender_WeComAppAndJSONCallback(t *testing.T) {
	var mu sync.Mutex
	var got []string
	cb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ts := r.Header.Get("X-Kefu-Timestamp")
		body := make([]byte, r.ContentLength)
		_, _ = r.Body.Read(body)
		if r.Header.Get("X-Kefu-Signature") != signJSON(body, ts) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		mu.Lock()
		got = append(got, string(body))
		mu.Unlock()
	}))
	defer cb.Close()
	e := newEnv(t, embeddedEngine, func(c *Config) {
		for i := range c.Channels {
			if c.Channels[i].Name == "web" {
				c.Channels[i].CallbackURL = cb.URL
			}
		}
	})
	ctx := context.Background()
	_ = e.gw.Sender.Send(ctx, conv.Outbound{ID: "w1", Kind: conv.OutWeComApp, Channel: "mgr", To: "manager1", Reply: conv.Reply{Kind: conv.ReplyMarkdown, Text: "差评提醒"}})
	_ = e.gw.Sender.Send(ctx, conv.Outbound{ID: "j1", Channel: "web", To: "web-u", Reply: conv.Text("回调回复"), TriggerAt: time.Now()})
	waitFor(t, 5*time.Second, "wecom app message", func() bool { return contains(inboxTexts(e.sim, "manager1"), "差评提醒") })
	waitFor(t, 5*time.Second, "json callback", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == 1 && strings.Contains(got[0], "回调回复")
	})
}

// A custom-menu click opens 3 messages within a minute; a msgmenu click
// opens nothing (WECHAT.md §2.1).
func TestSender_ShortWindowAndMenuClick(t *testing.T) {
	e := newEnv(t, embeddedEngine, func(c *Config) { c.PassiveBudget = 50 * time.Millisecond })
	e.h.set(func(s *scripted) {
		s.delay = 100 * time.Millisecond // miss the passive budget: everything goes via the API
		s.replies = func(m conv.Message) []conv.Reply {
			return []conv.Reply{conv.Text("a"), conv.Text("b"), conv.Text("c"), conv.Text("d")}
		}
	})
	c := e.oa("demo", wxsim.ModeSafe)
	if _, err := c.SendEvent(context.Background(), "u-click", "CLICK", "MENU_HOURS"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "3 sends and 1 dead letter", func() bool {
		return len(e.sim.Inbox("u-click")) == 3 && len(deadReasons(t, e.gw.Sender)) == 1
	})
	for _, r := range deadReasons(t, e.gw.Sender) {
		if r != "quota_exhausted" {
			t.Fatalf("reason %q", r)
		}
	}
	// A msgmenu click from a customer with no open window: nothing may be sent.
	if _, err := c.SendMenuClick(context.Background(), "u-menu", "101", "满意"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "window_expired dead letters", func() bool {
		n := 0
		for id, r := range deadReasons(t, e.gw.Sender) {
			if strings.Contains(id, "u-menu") && r == "window_expired" {
				n++
			}
		}
		return n == 4
	})
	if len(e.sim.Inbox("u-menu")) != 0 {
		t.Fatal("sent to a customer without an open window")
	}
}

// EngineCache satisfies silenceper's cache contract on both engines: string
// values (its token code type-asserts string), nil on miss, TTLs clamped.
func TestEngineCache_SilenceperContract(t *testing.T) {
	forEachEngine(t, func(t *testing.T, kind engineKind) {
		c := NewEngineCache(openEngine(t, kind))
		if c.Get("missing") != nil || c.IsExist("missing") {
			t.Fatal("miss must be nil / false")
		}
		if err := c.Set("k", "tok-1", 500*time.Millisecond); err != nil { // clamped to 1 s, never 0
			t.Fatal(err)
		}
		if v, ok := c.Get("k").(string); !ok || v != "tok-1" {
			t.Fatalf("Get = %#v", c.Get("k"))
		}
		if err := c.Set("b", []byte("bytes"), time.Minute); err != nil {
			t.Fatal(err)
		}
		if v, _ := c.Get("b").(string); v != "bytes" {
			t.Fatalf("[]byte value came back as %#v", c.Get("b"))
		}
		if err := c.Delete("k"); err != nil || c.IsExist("k") {
			t.Fatal("delete failed")
		}
		_ = c.Set("short", "x", time.Nanosecond)
		time.Sleep(1200 * time.Millisecond)
		if c.IsExist("short") {
			t.Fatal("clamped TTL did not expire")
		}
	})
}

// Queued customer messages hold their slot of the allowance before they
// are delivered: Quota counts them, a send marked RefuseOverQuota is
// refused at Send once queued ones fill the allowance, a send queued
// without a slot never takes a held one, and a dead letter frees its slot.
func TestSender_QueuedSendsHoldTheAllowance(t *testing.T) {
	forEachEngine(t, func(t *testing.T, kind engineKind) {
		e := newEnv(t, kind, func(c *Config) {
			c.Outbound.BaseBackoff, c.Outbound.MaxBackoff, c.Outbound.MaxAttempts = 20*time.Millisecond, 100*time.Millisecond, 1000
		})
		ctx := context.Background()
		const path = "/cgi-bin/message/custom/send"
		first := time.Now()
		e.sim.UserInteracted(testAppID, "u-h", wxsim.InteractMessage, first)
		// "System busy" keeps every send queued (retrying) for now.
		e.sim.FailNext(path, -1, 1_000_000)
		send := func(id string, refuse bool) error {
			return e.gw.Sender.Send(ctx, conv.Outbound{ID: id, Channel: "demo", To: "u-h", Reply: conv.Text(id),
				TriggerAt: first, Source: "test", RefuseOverQuota: refuse})
		}
		for _, id := range []string{"bot-0", "bot-1"} {
			if err := send(id, false); err != nil {
				t.Fatal(err)
			}
		}
		if left, _, err := e.gw.Sender.Quota(ctx, "demo", "u-h", first); err != nil || left != 3 {
			t.Fatalf("quota with 2 queued = %d (%v), want 3", left, err)
		}
		for _, id := range []string{"agent-0", "agent-1", "agent-2"} {
			if err := send(id, true); err != nil {
				t.Fatalf("%s: %v", id, err)
			}
		}
		if err := send("agent-1", true); err != nil { // a retried click holds nothing more
			t.Fatalf("re-sending a queued ID: %v", err)
		}
		if err := send("agent-3", true); !errors.Is(err, conv.ErrQuotaExhausted) {
			t.Fatalf("6th send with RefuseOverQuota: %v, want ErrQuotaExhausted", err)
		}
		if err := send("bot-2", false); err != nil { // queued without a slot
			t.Fatal(err)
		}
		if left, _, _ := e.gw.Sender.Quota(ctx, "demo", "u-h", first); left != 0 {
			t.Fatalf("quota with 5 held = %d, want 0", left)
		}
		e.sim.ClearFaults(path)
		waitFor(t, 10*time.Second, "5 delivered, 1 dead", func() bool {
			return len(e.sim.Inbox("u-h")) == 5 && deadReasons(t, e.gw.Sender)["bot-2"] != ""
		})
		got := inboxTexts(e.sim, "u-h")
		for _, id := range []string{"bot-0", "bot-1", "agent-0", "agent-1", "agent-2"} {
			if !contains(got, id) {
				t.Fatalf("held send %s not delivered; inbox %q", id, got)
			}
		}
		if r := deadReasons(t, e.gw.Sender)["bot-2"]; r != "quota_exhausted" {
			t.Fatalf("send without a slot: %q, want quota_exhausted", r)
		}
		if left, _, _ := e.gw.Sender.Quota(ctx, "demo", "u-h", first); left != 0 {
			t.Fatalf("quota after 5 delivered = %d", left)
		}

		// A new customer message opens a new allowance; a held send that
		// dies (48001) gives its slot back.
		second := first.Add(time.Minute)
		e.sim.UserInteracted(testAppID, "u-h", wxsim.InteractMessage, second)
		e.sim.FailNext(path, 48001, 1)
		if err := e.gw.Sender.Send(ctx, conv.Outbound{ID: "agent-x", Channel: "demo", To: "u-h", Reply: conv.Text("x"), TriggerAt: second, RefuseOverQuota: true}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 5*time.Second, "48001 dead letter", func() bool { return deadReasons(t, e.gw.Sender)["agent-x"] != "" })
		if left, _, _ := e.gw.Sender.Quota(ctx, "demo", "u-h", second); left != 5 {
			t.Fatalf("quota after a held send died = %d, want 5", left)
		}
		// Outside the window a refusing send is refused at once.
		e.gw.SetClock(func() time.Time { return time.Now().Add(49 * time.Hour) })
		if err := e.gw.Sender.Send(ctx, conv.Outbound{ID: "agent-late", Channel: "demo", To: "u-h", Reply: conv.Text("late"), TriggerAt: second, RefuseOverQuota: true}); !errors.Is(err, conv.ErrWindowClosed) {
			t.Fatalf("send after 48 h: %v, want ErrWindowClosed", err)
		}
	})
}
