package console

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"kefu/conv"
)

const chromiumPath = "/usr/bin/chromium"

// browser starts a headless Chromium with an empty profile.
func browser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("KEFU_REQUIRE_BROWSER") != "" {
			t.Fatalf("%s not found and KEFU_REQUIRE_BROWSER is set: run scripts/install-test-deps.sh", chromiumPath)
		}
		t.Skipf("%s not found (run scripts/install-test-deps.sh; set KEFU_REQUIRE_BROWSER=1 to make this a failure)", chromiumPath)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 900),
	)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelAlloc)
	// Any uncaught exception in the page fails the test.
	bctx, cancelBrowser := chromedp.NewContext(actx, chromedp.WithListener(func(ev any) {
		if e, ok := ev.(*runtime.EventExceptionThrown); ok {
			t.Errorf("page exception: %s %+v", e.ExceptionDetails.Text, e.ExceptionDetails.Exception)
		}
	}))
	t.Cleanup(cancelBrowser)
	return bctx
}

// artifacts is where screenshots go: $KEFU_ARTIFACTS or the test's temp dir.
func artifacts(t *testing.T) string {
	dir := os.Getenv("KEFU_ARTIFACTS")
	if dir == "" {
		return t.TempDir()
	}
	dir = filepath.Join(dir, t.Name())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func shot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	p := filepath.Join(dir, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s", p)
}

// poll waits until the JavaScript predicate holds in the page.
func poll(t *testing.T, ctx context.Context, what, js string) {
	t.Helper()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](js, chromedp.WithPollingTimeout(15*time.Second), chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

// clickList clicks the first element matching sel from JavaScript,
// retrying until it exists: lists are re-rendered on every live update, so
// a node found by one CDP call may be gone by the next.
func clickList(t *testing.T, ctx context.Context, what, sel string) {
	t.Helper()
	poll(t, ctx, what, `(() => { const e = document.querySelector(`+"`"+sel+"`"+`); if (!e) return false; e.click(); return true; })()`)
}

func do(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// TestBrowser_AgentHandlesHandoff drives the console in a real headless
// Chromium against the real gateway and WeChat simulator: a customer asks
// the bot, then for a human; the chat appears in the agent's queue live;
// the agent goes online, accepts, sees the bot transcript with the KB entry
// and the messages written while queued, inserts a suggested answer,
// replies (delivered by the simulated custom/send), and closes with a
// disposition; the closed hook fires.
func TestBrowser_AgentHandlesHandoff(t *testing.T) {
	ctx := browser(t)
	dir := artifacts(t)
	s := newStack(t, stackOpts{kb: testKB})

	do(t, ctx, "open login page",
		chromedp.Navigate(s.url),
		chromedp.WaitVisible(chromedp.ID("login-user")),
		chromedp.SendKeys(chromedp.ID("login-user"), "alice"),
		chromedp.SendKeys(chromedp.ID("login-pass"), testPass),
		chromedp.Click(chromedp.ID("login-btn")),
		chromedp.WaitVisible(chromedp.ID("app-view")),
	)
	poll(t, ctx, "live updates connected", `document.getElementById("live").dataset.ready === "1"`)
	shot(t, ctx, dir, "01-logged-in")

	// The customer talks to the bot, then asks for a human; alice is
	// offline, so the chat waits in the queue — and shows up there live.
	s.customerSays("openid-web", "怎么退货")
	s.customerSays("openid-web", "转人工")
	poll(t, ctx, "chat in the queue", `document.querySelectorAll("#queue li").length === 1`)
	s.customerSays("openid-web", "有人吗？") // written while queued
	shot(t, ctx, dir, "02-queued")

	// Going online assigns it to her.
	do(t, ctx, "go online", chromedp.Evaluate[chromedp.Void](`(() => { const s = document.getElementById("status"); s.value = "online"; s.dispatchEvent(new Event("change")); })()`))
	poll(t, ctx, "chat in my chats", `document.querySelectorAll("#mine li").length === 1 && document.querySelectorAll("#queue li").length === 0`)
	clickList(t, ctx, "open chat", "#mine li")
	do(t, ctx, "accept visible", chromedp.WaitVisible(chromedp.ID("accept")))
	do(t, ctx, "accept", chromedp.Click(chromedp.ID("accept")))
	poll(t, ctx, "accepted", `document.getElementById("accept").classList.contains("hidden") && !document.getElementById("reply-send").disabled`)

	// The whole bot transcript, the entry that answered, the queued message.
	poll(t, ctx, "bot transcript", `[...document.querySelectorAll("#transcript .turn.bot")].some(e => e.textContent.includes("7天无理由退货") && e.textContent.includes("faq-return"))`)
	poll(t, ctx, "message written while queued", `[...document.querySelectorAll("#transcript .turn.customer.queued")].some(e => e.textContent.includes("有人吗"))`)
	poll(t, ctx, "greeting with number", `[...document.querySelectorAll("#transcript .turn.agent")].some(e => e.textContent.includes("1001"))`)
	poll(t, ctx, "quota shown", `document.getElementById("quota").textContent.includes("剩余可发送")`)
	shot(t, ctx, dir, "03-chat")

	// One-click insert of the suggested answer, then send.
	clickList(t, ctx, "insert suggestion", "#suggestions button.insert")
	poll(t, ctx, "reply box filled", `document.getElementById("reply-text").value.includes("7天无理由退货")`)
	do(t, ctx, "send", chromedp.Click(chromedp.ID("reply-send")))
	waitFor(t, 10*time.Second, "customer receives the agent's reply", func() bool {
		for _, m := range s.received("openid-web") {
			if strings.Contains(m, "请保留小票") {
				return true
			}
		}
		return false
	})
	poll(t, ctx, "reply in transcript", `[...document.querySelectorAll("#transcript .turn.agent")].some(e => e.textContent.includes("请保留小票"))`)
	shot(t, ctx, dir, "04-replied")

	// Close with a disposition.
	do(t, ctx, "choose disposition", chromedp.Evaluate[chromedp.Void](`document.getElementById("disposition").value = "服务申请"`))
	do(t, ctx, "close", chromedp.Click(chromedp.ID("close-btn")))
	var ended conv.ContactEnded
	select {
	case ended = <-s.closed:
	case <-time.After(10 * time.Second):
		t.Fatal("closed hook did not fire")
	}
	if ended.Agent != "alice" || ended.Disposition != "服务申请" || !ended.Resolved || ended.Outcome != "closed" {
		t.Fatalf("ContactEnded = %+v", ended)
	}
	poll(t, ctx, "chat shown closed", `document.getElementById("chat-state").textContent === "已结束" && document.querySelectorAll("#mine li").length === 0`)
	shot(t, ctx, dir, "05-closed")
}

func login(t *testing.T, ctx context.Context, url, user string) {
	t.Helper()
	do(t, ctx, "log in "+user,
		chromedp.Navigate(url),
		chromedp.WaitVisible(chromedp.ID("login-user")),
		chromedp.SendKeys(chromedp.ID("login-user"), user),
		chromedp.SendKeys(chromedp.ID("login-pass"), testPass),
		chromedp.Click(chromedp.ID("login-btn")),
		chromedp.WaitVisible(chromedp.ID("app-view")),
	)
	poll(t, ctx, user+"'s live updates", `document.getElementById("live").dataset.ready === "1"`)
}

func setStatus(t *testing.T, ctx context.Context, status string) {
	t.Helper()
	do(t, ctx, "status "+status, chromedp.Evaluate[chromedp.Void](`(() => { const s = document.getElementById("status"); s.value = "`+status+`"; s.dispatchEvent(new Event("change")); })()`))
}

// TestBrowser_SupervisorAssignsAndTakesOver: two users in two isolated
// browser contexts. The supervisor sees the queue and assigns a chat to an
// agent who is away; it appears live on the agent's page; the agent
// accepts and replies; the supervisor sees it ongoing, takes it over
// (logged as a transfer), adds an internal note and closes it.
func TestBrowser_SupervisorAssignsAndTakesOver(t *testing.T) {
	agentCtx := browser(t)
	dir := artifacts(t)
	s := newStack(t, stackOpts{kb: testKB})
	login(t, agentCtx, s.url, "alice")
	setStatus(t, agentCtx, "away") // takes no chats from the dispatcher, but may be assigned
	supCtx, cancel := chromedp.NewContext(agentCtx, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	login(t, supCtx, s.url, "sam")
	poll(t, supCtx, "supervisor panels", `!document.getElementById("ongoing-box").classList.contains("hidden") && document.querySelectorAll("#agents li").length >= 2`)

	s.customerSays("openid-sup", "我要投诉，转人工")
	poll(t, supCtx, "queued chat on the supervisor's page", `document.querySelectorAll("#queue li").length === 1`)
	clickList(t, supCtx, "open queued chat", "#queue li")
	do(t, supCtx, "assign box", chromedp.WaitVisible(chromedp.ID("assign-box")))
	do(t, supCtx, "assign to alice",
		chromedp.Evaluate[chromedp.Void](`document.getElementById("assign-box").open = true`),
		chromedp.SendKeys(chromedp.ID("assign-agent"), "alice"),
		chromedp.Click(chromedp.ID("assign-btn")),
	)
	poll(t, agentCtx, "assigned chat on alice's page", `document.querySelectorAll("#mine li").length === 1`)
	clickList(t, agentCtx, "alice opens the chat", "#mine li")
	do(t, agentCtx, "alice accepts", chromedp.WaitVisible(chromedp.ID("accept")), chromedp.Click(chromedp.ID("accept")))
	poll(t, agentCtx, "reply enabled", `!document.getElementById("reply-send").disabled`)
	do(t, agentCtx, "alice replies", chromedp.SendKeys(chromedp.ID("reply-text"), "非常抱歉，我来帮您处理"), chromedp.Click(chromedp.ID("reply-send")))
	waitFor(t, 10*time.Second, "customer receives alice's reply", func() bool {
		return strings.Contains(strings.Join(s.received("openid-sup"), "|"), "我来帮您处理")
	})

	poll(t, supCtx, "ongoing chat with alice", `[...document.querySelectorAll("#ongoing li")].some(e => e.textContent.includes("alice"))`)
	shot(t, supCtx, dir, "01-supervisor-overview")
	clickList(t, supCtx, "open ongoing chat", "#ongoing li")
	poll(t, supCtx, "take-over button", `!document.getElementById("takeover").classList.contains("hidden")`)
	do(t, supCtx, "take over", chromedp.Click(chromedp.ID("takeover")))
	poll(t, agentCtx, "chat gone from alice's list", `document.querySelectorAll("#mine li").length === 0`)
	poll(t, supCtx, "supervisor owns it", `document.getElementById("chat-meta").textContent.includes("sam") && !document.getElementById("reply-send").disabled`)
	do(t, supCtx, "internal note",
		chromedp.Evaluate[chromedp.Void](`document.querySelectorAll(".tools details").forEach(d => d.open = true)`),
		chromedp.SendKeys(chromedp.ID("note-text"), "客户情绪激动，已安抚"),
		chromedp.Click(chromedp.ID("note-add")),
	)
	poll(t, supCtx, "note in transcript", `[...document.querySelectorAll("#transcript .turn.note")].some(e => e.textContent.includes("已安抚"))`)
	shot(t, supCtx, dir, "02-taken-over")
	do(t, supCtx, "close as complaint, not resolved",
		chromedp.Evaluate[chromedp.Void](`document.getElementById("disposition").value = "投诉"; document.getElementById("resolved").checked = false`),
		chromedp.Click(chromedp.ID("close-btn")),
	)
	select {
	case e := <-s.closed:
		if e.Agent != "sam" || e.Disposition != "投诉" || e.Resolved {
			t.Fatalf("ContactEnded = %+v", e)
		}
		c, err := s.desk.Conversation(context.Background(), e.Conv)
		if err != nil || len(c.Transfers) != 1 || c.Transfers[0].From != "alice" || c.Transfers[0].To != "sam" {
			t.Fatalf("transfers = %+v (%v)", c.Transfers, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("closed hook did not fire")
	}
	// Notes never reach the customer.
	for _, m := range s.received("openid-sup") {
		if strings.Contains(m, "已安抚") {
			t.Fatal("internal note sent to the customer")
		}
	}
}
