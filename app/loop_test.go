package app

import (
	"context"
	"strings"
	"testing"
	"time"

	"kefu/conv"
	"kefu/wxsim"
)

// The whole product loop through the wiring in app: a customer asks for a
// human → the desk queues and assigns the chat → the agent replies (via the
// simulated custom/send) and closes it → the NPS survey arrives in the same
// chat → "3分，等太久了" opens a detractor case → the store manager gets a
// WeCom app message and the store group's robot a post.
func TestApp_HandoffSurveyDetractorLoop(t *testing.T) {
	cfg := loadSample(t)
	// Keep business hours and quiet hours out of the way whatever the time
	// of day the test runs at; shorten the survey delay and alert hold.
	var open func(n *conv.StoreNode)
	open = func(n *conv.StoreNode) {
		n.Hours = nil
		for i := range n.Children {
			open(&n.Children[i])
		}
	}
	open(&cfg.Stores)
	cfg.Surveys.QuietStart, cfg.Surveys.QuietEnd = "", ""
	cfg.Surveys.Delay = 0
	cfg.Surveys.Alerts.Hold = 0
	a := startApp(t, cfg)
	ctx := context.Background()
	ch := cfg.Channels[0] // demo OA, store-001
	c := &wxsim.OAClient{URL: "http://" + cfg.Listen + "/wechat/oa/" + ch.Name, Token: ch.Token, AppID: ch.AppID,
		EncodingAESKey: ch.EncodingAESKey, OriginalID: "gh_demo", Mode: wxsim.ModeSafe, API: a.Sim, RetryWait: -1}
	const user = "o_loop_customer"
	if _, err := c.SendText(ctx, user, "营业时间是几点", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SendText(ctx, user, "转人工", 0); err != nil {
		t.Fatal(err)
	}
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
