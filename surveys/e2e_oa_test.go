package surveys_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"kefu/conv"
	"kefu/surveys"
	"kefu/wxsim"
)

func oaContact(user string, lastMsg time.Time) conv.ContactEnded {
	now := time.Now()
	return conv.ContactEnded{Conv: conv.ConvID("oa-" + user), Customer: conv.NewCustomerID("demo", user), Channel: "demo", ChannelType: conv.ChannelWeChatOA,
		ExternalUser: user, Store: "store-001", Outcome: "bot_idle", StartedAt: lastMsg, EndedAt: now, LastCustomerMsgAt: lastMsg}
}

// OA through the gateway: the survey goes by custom/send inside the
// window; the score comes back as a message and the follow-up question is
// the passive reply; with menu style the question is an 11-item msgmenu
// and a tap is a score. A customer whose 5 messages are used up is not
// surveyed (the gateway's quota book), so WeChat never answers 45047.
func TestE2E_OACustomSendMenuAndQuota(t *testing.T) {
	sim, base := newSim(t)
	cfg := e2eConfig()
	cfg.Delay = 0
	cfg.Question.Style = "menu"
	in := startInstance(t, openEngine(t), base, cfg)
	ctx := context.Background()
	oa := &wxsim.OAClient{URL: in.url + "/wechat/oa/demo", Token: oaToken, AppID: appID, OriginalID: "gh_test", Mode: wxsim.ModePlain,
		API: sim, Timeout: 5 * time.Second, RetryWait: -1}

	// A bot-only contact: one message, answered passively.
	d, err := oa.SendText(ctx, "oa-user-1", "营业时间", 0)
	if err != nil || d.Reply == nil || d.Reply.Content != "bot:营业时间" {
		t.Fatalf("bot answer: %+v %v", d, err)
	}
	if err := in.svc.Schedule(ctx, oaContact("oa-user-1", time.Now())); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "menu question", func() bool { return len(sim.Inbox("oa-user-1")) == 1 })
	q := sim.Inbox("oa-user-1")[0]
	if q.Channel != "oa" || q.MsgType != "msgmenu" || q.Head != surveys.DefaultQuestion || len(q.Menu) != 11 || q.Menu[0].ID != "910" || q.Menu[10].ID != "900" {
		t.Fatalf("question = %+v", q)
	}
	// The customer taps "8分".
	d, err = oa.SendMenuClick(ctx, "oa-user-1", "908", "8分")
	if err != nil || d.Reply == nil || d.Reply.Content != surveys.DefaultFollowUp {
		t.Fatalf("after the tap: %+v %v", d.Reply, err)
	}
	d, err = oa.SendText(ctx, "oa-user-1", "回复挺快的", 0)
	if err != nil || d.Reply == nil || d.Reply.Content != surveys.DefaultThanks {
		t.Fatalf("after the reason: %+v %v", d.Reply, err)
	}
	if ev := in.events(conv.EvSurveyAnswered); len(ev) != 1 || ev[0].Data["score"] != "8" {
		t.Fatalf("answered: %+v", ev)
	}

	// Another customer: the agent used all 5 messages of the window.
	last := time.Now()
	if _, err := oa.SendText(ctx, "oa-user-2", "我要投诉", 0); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		err := in.gw.Sender.Send(ctx, conv.Outbound{ID: fmt.Sprintf("agent-%d", i), Channel: "demo", To: "oa-user-2", TriggerAt: last, Reply: conv.Text(fmt.Sprintf("坐席回复%d", i)), Source: "agent"})
		if err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "agent replies", func() bool { return len(sim.Inbox("oa-user-2")) == 5 })
	if err := in.svc.Schedule(ctx, oaContact("oa-user-2", last)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "quota_exhausted", func() bool {
		for _, e := range in.events(conv.EvSurveyNotSent) {
			if e.Customer == "demo:oa-user-2" {
				return e.Reason == "quota_exhausted"
			}
		}
		return false
	})
	for _, e := range in.events(conv.EvSurveySent) {
		if e.Customer == "demo:oa-user-2" {
			t.Fatal("a survey that never went out was reported sent")
		}
	}
	for _, c := range sim.Calls("/cgi-bin/message/custom/send") {
		if c.ErrCode != 0 || strings.Contains(string(c.Body), "oa-user-2") && strings.Contains(string(c.Body), "推荐") {
			t.Fatalf("a survey hit WeChat: %d %s", c.ErrCode, c.Body)
		}
	}
}
