package app

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"kefu/conv"
	"kefu/internal/testredis"
	"kefu/wxsim"
)

// The whole product loop through the wiring in app: a customer asks for a
// human → the desk queues and assigns the chat → the agent replies (via the
// simulated custom/send) and closes it → the NPS survey arrives in the same
// chat → "3分，等太久了" opens a detractor case → the store manager gets a
// WeCom app message and the store group's robot a post.
func TestApp_HandoffSurveyDetractorLoop(t *testing.T) {
	for _, eng := range []string{"embedded", "redis"} {
		t.Run(eng, func(t *testing.T) {
			cfg := loadSample(t)
			if eng == "redis" {
				// Every message reads its router keys ahead on Redis
				// (gateway.ReadAhead): the handoff, the survey answer and
				// the case must still see each earlier step's writes.
				cfg.Redis.Addr = testredis.Start(t).Addr
			}
			testHandoffSurveyDetractorLoop(t, cfg)
		})
	}
}

func testHandoffSurveyDetractorLoop(t *testing.T, cfg Config) {
	// Keep business hours and quiet hours out of the way whatever the time
	// of day the test runs at; shorten the survey delay and alert hold.
	alwaysOpen(&cfg.Stores)
	cfg.Surveys.QuietStart, cfg.Surveys.QuietEnd = "", ""
	cfg.Surveys.Delay = 0
	cfg.Surveys.Alerts.Hold = 0
	a := startApp(t, cfg)
	ctx := context.Background()
	c := oaClient(cfg, a)
	const user = "o_loop_customer"
	if _, err := c.SendText(ctx, user, "营业时间是几点", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SendText(ctx, user, "转人工", 0); err != nil {
		t.Fatal(err)
	}
	agent, id := queuedToAgent(t, a, user)
	if err := a.Desk.Accept(ctx, agent, id); err != nil {
		t.Fatal(err)
	}
	_, turns, err := a.Desk.Chat(ctx, agent, id)
	if err != nil {
		t.Fatal(err)
	}
	sawBot := false
	for _, tr := range turns {
		if tr.Role == conv.TurnBot && strings.Contains(tr.Text, "9:00") {
			sawBot = true
		}
	}
	if !sawBot {
		t.Fatalf("agent does not see the bot transcript: %+v", turns)
	}
	if err := a.Desk.Reply(ctx, agent, id, "r1", "您好，我来帮您处理。"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "agent reply via custom/send", func() bool { return inboxHas(a, user, "我来帮您处理") })
	if err := a.Desk.Close(ctx, agent, id, "咨询", true); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 15*time.Second, "NPS question", func() bool { return inboxHas(a, user, "推荐") })
	if _, err := c.SendText(ctx, user, "3分，等太久了", 0); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	waitUntil(t, 60*time.Second, "WeCom alert to the store manager", func() bool { return inboxHas(a, "zhang-manager", "") })
	t.Logf("detractor alert reached the manager %s after the reply", time.Since(start).Round(time.Millisecond))
	waitUntil(t, 30*time.Second, "robot post to the store group", func() bool { return inboxHas(a, "demo-robot-key-001", "") })
}

// alwaysOpen drops business hours from the store tree, so the desk takes
// chats whatever the time of day the test runs at.
func alwaysOpen(n *conv.StoreNode) {
	n.Hours = nil
	for i := range n.Children {
		alwaysOpen(&n.Children[i])
	}
}

// oaClient plays WeChat pushing to the sample config's demo OA channel in
// safe mode.
func oaClient(cfg Config, a *App) *wxsim.OAClient {
	ch := cfg.Channels[0] // demo OA, store-001
	return &wxsim.OAClient{URL: "http://" + cfg.Listen + "/wechat/oa/" + ch.Name, Token: ch.Token, AppID: ch.AppID,
		EncodingAESKey: ch.EncodingAESKey, OriginalID: "gh_demo", Mode: wxsim.ModeSafe, API: a.Sim, RetryWait: -1}
}

// queuedToAgent waits for user's queue notice, brings agent1 online and
// waits for the chat to be assigned to them.
func queuedToAgent(t *testing.T, a *App, user string) (conv.Principal, conv.ConvID) {
	t.Helper()
	ctx := context.Background()
	waitUntil(t, 10*time.Second, "queue position notice", func() bool { return inboxHas(a, user, "前面还有") })
	agent := conv.Principal{User: "agent1", Name: "agent1", Role: conv.RoleAgent, Stores: []conv.StoreID{"east"}}
	if err := a.Desk.SetStatus(ctx, agent, conv.AgentOnline); err != nil {
		t.Fatal(err)
	}
	var id conv.ConvID
	waitUntil(t, 10*time.Second, "chat assigned to agent1", func() bool {
		mine, err := a.Desk.Mine(ctx, agent)
		if err != nil || len(mine) == 0 {
			return false
		}
		id = mine[0].ID
		return true
	})
	return agent, id
}

func inboxHas(a *App, to, substr string) bool {
	for _, s := range a.Sim.Inbox(to) {
		if strings.Contains(s.Content, substr) {
			return true
		}
	}
	return false
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s", d, what)
}

// An agent's replies count the messages still queued for the customer:
// with the send API busy, the console offers exactly the slots left after
// the queue notice, the greeting and earlier replies, refuses the next
// reply at once, and every accepted reply is delivered once the API
// recovers — none ends as a quota_exhausted dead letter.
func TestApp_AgentRepliesCountQueuedMessages(t *testing.T) {
	cfg := loadSample(t)
	alwaysOpen(&cfg.Stores)
	cfg.Gateway.Outbound.BaseBackoff, cfg.Gateway.Outbound.MaxBackoff = 50*time.Millisecond, 200*time.Millisecond
	cfg.Gateway.Outbound.MaxAttempts = 1000
	a := startApp(t, cfg)
	ctx := context.Background()
	ch := cfg.Channels[0] // demo OA
	c := oaClient(cfg, a)
	const user = "o_quota_customer"
	if _, err := c.SendText(ctx, user, "转人工", 0); err != nil {
		t.Fatal(err)
	}
	agent, id := queuedToAgent(t, a, user)
	// The API is busy from here on: the greeting and the replies queue.
	const path = "/cgi-bin/message/custom/send"
	a.Sim.FailNext(path, -1, 1_000_000)
	// A slow bot answer still queued for the customer (sent through the
	// API, not by the desk).
	if err := a.Gateway.Sender.Send(ctx, conv.Outbound{ID: "r:slow-bot-answer", Channel: ch.Name, To: user,
		Reply: conv.Text("机器人的迟到回答"), Source: "reply"}); err != nil {
		t.Fatal(err)
	}
	if err := a.Desk.Accept(ctx, agent, id); err != nil {
		t.Fatal(err)
	}
	q, err := a.Desk.Quota(ctx, agent, id)
	if err != nil {
		t.Fatal(err)
	}
	// Notice delivered, bot answer and greeting queued: 2 of 5 left.
	if q.Remaining != 2 || !q.CanReply {
		t.Fatalf("quota after the notice, a queued bot answer and a queued greeting = %+v, want 2", q)
	}
	for i := range q.Remaining {
		if err := a.Desk.Reply(ctx, agent, id, fmt.Sprintf("r%d", i), fmt.Sprintf("回复%d", i)); err != nil {
			t.Fatalf("reply %d of %d: %v", i+1, q.Remaining, err)
		}
	}
	if err := a.Desk.Reply(ctx, agent, id, "over", "超出的回复"); !errors.Is(err, conv.ErrQuotaExhausted) {
		t.Fatalf("reply beyond the allowance: %v, want ErrQuotaExhausted", err)
	}
	if q, _ := a.Desk.Quota(ctx, agent, id); q.Remaining != 0 || q.CanReply {
		t.Fatalf("quota with every slot queued = %+v", q)
	}
	a.Sim.ClearFaults(path)
	waitUntil(t, 20*time.Second, "greeting and replies delivered", func() bool {
		return inboxHas(a, user, "很高兴为您服务") && inboxHas(a, user, "回复0") && inboxHas(a, user, "回复1") && inboxHas(a, user, "机器人的迟到回答")
	})
	if inboxHas(a, user, "超出的回复") {
		t.Fatal("the refused reply was sent")
	}
	dead, err := a.Gateway.Sender.DeadLetters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dead {
		if d.Job.To == user {
			t.Fatalf("dead letter for the customer: %+v", d)
		}
	}
	if n := len(a.Sim.Inbox(user)); n != 5 {
		t.Fatalf("customer got %d messages, want 5 (notice, bot answer, greeting, 2 replies)", n)
	}
}
