package app

import (
	"context"
	"strings"
	"testing"
	"time"

	"kefu/wxsim"
)

// A KF customer served by the bot is moved from state 0 to 1 (由智能助手接待)
// on the first bot turn, and later turns of the same session cost no more
// service_state calls.
func TestKF_BotKeepsSessionInState1(t *testing.T) {
	cfg := loadSample(t)
	a := startApp(t, cfg)
	var kfName, kfid string
	for _, ch := range cfg.Channels {
		if ch.Type == "wecom_kf" {
			kfName = ch.Name
			for id := range ch.Scenes {
				kfid = id
			}
			kc := &wxsim.KFClient{URL: "http://" + cfg.Listen + "/wecom/kf/" + ch.Name, Token: ch.Token, CorpID: ch.AppID, EncodingAESKey: ch.EncodingAESKey}
			send := func(text string) {
				t.Helper()
				tok, _, err := a.Sim.KFCustomerSends(kfid, "wmKFBot", text)
				if err != nil {
					t.Fatal(err)
				}
				if d, err := kc.SendEvent(context.Background(), tok, kfid); err != nil || !d.Acked {
					t.Fatalf("callback: %v %+v", err, d)
				}
			}
			send("营业时间是几点")
			waitUntil(t, 10*time.Second, "bot answer and state 1", func() bool {
				st, _ := a.Sim.KFState(kfid, "wmKFBot")
				return st == 1 && len(a.Sim.Inbox("wmKFBot")) >= 1
			})
			if got := a.Sim.Inbox("wmKFBot")[0].Content; !strings.Contains(got, "营业时间") {
				t.Fatalf("bot answer = %q", got)
			}
			send("会员积分怎么查")
			waitUntil(t, 10*time.Second, "second answer", func() bool { return len(a.Sim.Inbox("wmKFBot")) >= 2 })
		}
	}
	if kfName == "" {
		t.Fatal("the sample config has no wecom_kf channel")
	}
	if n := len(a.Sim.Calls("/cgi-bin/kf/service_state/get")); n != 1 {
		t.Fatalf("%d service_state/get calls for one session, want 1", n)
	}
	if n := len(a.Sim.Calls("/cgi-bin/kf/service_state/trans")); n != 1 {
		t.Fatalf("%d service_state/trans calls, want 1", n)
	}
}
