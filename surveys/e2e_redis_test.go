package surveys_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"kefu/conv"
	"kefu/engine"
	"kefu/internal/testredis"
	"kefu/surveys"
	"kefu/wxsim"
)

// Two instances on one Redis, each running its timers and its sender:
// every contact's hook fires on both, each customer has a second contact
// on the other instance, and every answer is delivered to both. No
// customer gets two surveys and no case is alerted twice.
func TestTwoInstances_NoDoubleSurveyNoDoubleAlert(t *testing.T) {
	rs := testredis.Start(t)
	sim, base := newSim(t)
	cfg := e2eConfig()
	cfg.Delay = 0
	cfg.Alerts.Hold = 0
	a := startInstance(t, engine.NewRedis(rs.Client(), "kefu:"), base, cfg)
	b := startInstance(t, engine.NewRedis(rs.Client(), "kefu:"), base, cfg)
	ctx := context.Background()
	const n = 12
	now := time.Now()
	contact := func(i int, convID string) conv.ContactEnded {
		user := fmt.Sprintf("o-user-%02d", i)
		return conv.ContactEnded{Conv: conv.ConvID(convID), Customer: conv.NewCustomerID("demo", user), Channel: "demo", ChannelType: conv.ChannelWeChatOA,
			ExternalUser: user, Store: "store-001", Agent: agentUser, HandedOff: true, Outcome: "closed", StartedAt: now.Add(-time.Minute), EndedAt: now, LastCustomerMsgAt: now}
	}
	var wg sync.WaitGroup
	for i := range n {
		sim.UserInteracted(appID, fmt.Sprintf("o-user-%02d", i), wxsim.InteractMessage, now)
		first, second := contact(i, fmt.Sprintf("a-%d", i)), contact(i, fmt.Sprintf("b-%d", i))
		for _, call := range []func() error{
			func() error { return a.svc.Schedule(ctx, first) },
			func() error { return b.svc.Schedule(ctx, first) }, // the hook fired twice
			func() error { return b.svc.Schedule(ctx, second) },
		} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := call(); err != nil {
					t.Error(err)
				}
			}()
		}
	}
	wg.Wait()
	questions := func() int {
		total := 0
		for i := range n {
			for _, s := range sim.Inbox(fmt.Sprintf("o-user-%02d", i)) {
				if s.Content == surveys.DefaultQuestion {
					total++
				}
			}
		}
		return total
	}
	throttled := func() int {
		c := 0
		for _, in := range []*instance{a, b} {
			for _, e := range in.events(conv.EvSurveyNotSent) {
				if e.Reason == "throttled" {
					c++
				}
			}
		}
		return c
	}
	waitFor(t, 20*time.Second, "every customer surveyed and every second contact throttled", func() bool { return questions() >= n && throttled() >= n })
	time.Sleep(500 * time.Millisecond) // anything doubled would show by now
	if q, th := questions(), throttled(); q != n || th != n {
		t.Fatalf("questions=%d throttled=%d, want %d each", q, th, n)
	}
	for i := range n {
		if got := len(sim.Inbox(fmt.Sprintf("o-user-%02d", i))); got != 1 {
			t.Fatalf("customer %d received %d messages", i, got)
		}
	}

	// Every customer answers as a detractor; the message reaches both instances.
	for i := range n {
		c := contact(i, "")
		msg := conv.Message{ID: fmt.Sprintf("oa:m:%d", i), Channel: "demo", ChannelType: conv.ChannelWeChatOA, Customer: c.Customer, ExternalUser: c.ExternalUser,
			Store: "store-001", Kind: conv.MsgText, Text: fmt.Sprintf("2分，问题%02d", i), CreatedAt: time.Now()}
		for _, in := range []*instance{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				replies, handled, err := in.svc.Route(ctx, msg)
				if err != nil || !handled || len(replies) != 1 {
					t.Errorf("route on one instance: %v %v %v", replies, handled, err)
				}
			}()
		}
	}
	wg.Wait()
	appAlerts := func() map[string]int {
		seen := map[string]int{}
		for _, c := range sim.Calls("/cgi-bin/message/send") {
			for i := range n {
				if strings.Contains(string(c.Body), fmt.Sprintf("问题%02d", i)) && strings.Contains(string(c.Body), "差评预警") {
					seen[fmt.Sprint(i)]++
				}
			}
		}
		return seen
	}
	robotLines := func() int {
		total := 0
		for _, s := range sim.Inbox(robotKey) {
			total += strings.Count(s.Content, "差评预警")
		}
		return total
	}
	waitFor(t, 30*time.Second, "one alert per case", func() bool { return len(appAlerts()) == n && robotLines() >= n })
	time.Sleep(time.Second)
	for k, v := range appAlerts() {
		if v != 1 {
			t.Errorf("case of customer %s: %d WeCom app alert calls", k, v)
		}
	}
	if got := robotLines(); got != n {
		t.Errorf("robot alert lines = %d, want %d (posts: %d)", got, n, len(sim.Inbox(robotKey)))
	}
	cases, err := a.svc.Cases(ctx, surveys.CaseFilter{})
	if err != nil || len(cases) != n {
		t.Fatalf("cases = %d, %v", len(cases), err)
	}
	opened := len(a.events(conv.EvCaseOpened)) + len(b.events(conv.EvCaseOpened))
	if opened != n {
		t.Fatalf("case_opened events = %d, want %d", opened, n)
	}
	t.Logf("%d customers, 3 schedules each over 2 instances: %d surveys, %d throttled; %d detractor answers delivered twice: %d cases, each alerted once in %d WeCom app messages and %d robot posts",
		n, questions(), throttled(), n, len(cases), len(sim.Calls("/cgi-bin/message/send")), len(sim.Inbox(robotKey)))
}
