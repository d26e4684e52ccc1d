package handoff

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"kefu/conv"
	"kefu/engine"
)

func TestService_FullLifecycle(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine.Engine) {
		ctx := context.Background()
		d := newDesk(t, eng)
		cust := conv.NewCustomerID("oa", "u1")
		// The router's transcript: customer question and the bot's answer.
		_ = d.Transcripts.Append(ctx, cust, conv.Turn{At: d.clock.Now(), Role: conv.TurnCustomer, Text: "怎么退货"})
		_ = d.Transcripts.Append(ctx, cust, conv.Turn{At: d.clock.Now(), Role: conv.TurnBot, Text: "7天无理由退货", EntryID: "faq-12", Intent: "confident"})
		c := d.handoff(t, "u1", "s1")
		if c.State != conv.StateQueued {
			t.Fatalf("state = %s", c.State)
		}
		notices := d.out.to("u1")
		if len(notices) != 1 || !strings.Contains(notices[0].Reply.Text, "前面还有0位") {
			t.Fatalf("queue notice = %+v", notices)
		}
		// A message while queued is kept and answered with the position at
		// most once per NoticeEvery.
		m := d.customerMsg("u1", "s1", "还要等多久")
		replies, handled, err := d.Route(ctx, m)
		if err != nil || !handled {
			t.Fatalf("route: handled=%v err=%v", handled, err)
		}
		if len(replies) != 0 { // the queue notice went out less than a minute ago
			t.Fatalf("replies = %+v", replies)
		}
		d.clock.Advance(2 * time.Minute)
		replies, _, _ = d.Route(ctx, d.customerMsg("u1", "s1", "在吗"))
		if len(replies) != 1 || !strings.Contains(replies[0].Text, "排队") {
			t.Fatalf("still-queued replies = %+v", replies)
		}
		// Nobody online: nothing assigned.
		if n := d.dispatch(t); n != 0 {
			t.Fatalf("assigned %d with nobody online", n)
		}
		d.online(t, "alice")
		if n := d.dispatch(t); n != 1 {
			t.Fatalf("assigned %d, want 1", n)
		}
		c = mustConv(t, d, c.ID)
		if c.State != conv.StateAssigned || c.Agent != "alice" || c.Accepted {
			t.Fatalf("after dispatch: %+v", c)
		}
		alice := principal("alice")
		wantErr(t, d.Reply(ctx, alice, c.ID, "r1", "hi"), conv.ErrConflict) // accept first
		if err := d.Accept(ctx, alice, c.ID); err != nil {
			t.Fatal(err)
		}
		// The agent sees the bot turns, the KB entry and the queued messages.
		_, turns, err := d.Chat(ctx, alice, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		var sawEntry, sawQueued, sawGreeting bool
		for _, tr := range turns {
			sawEntry = sawEntry || tr.EntryID == "faq-12"
			sawQueued = sawQueued || (tr.Role == conv.TurnCustomer && tr.State == conv.StateQueued && tr.Text == "还要等多久")
			sawGreeting = sawGreeting || (tr.Role == conv.TurnAgent && strings.Contains(tr.Text, "1001"))
		}
		if !sawEntry || !sawQueued || !sawGreeting {
			t.Fatalf("transcript entry=%v queued=%v greeting=%v: %+v", sawEntry, sawQueued, sawGreeting, turns)
		}
		if err := d.Reply(ctx, alice, c.ID, "r1", "您好，可以退货"); err != nil {
			t.Fatal(err)
		}
		if err := d.Reply(ctx, alice, c.ID, "r1", "您好，可以退货"); err != nil { // retried click
			t.Fatal(err)
		}
		var agentSends int
		for _, o := range d.out.to("u1") {
			if strings.HasPrefix(o.ID, "ho:a:") {
				agentSends++
				if !o.TriggerAt.Equal(mustConv(t, d, c.ID).LastCustomerMsgAt) {
					t.Errorf("reply trigger %s, want last customer message", o.TriggerAt)
				}
			}
		}
		if agentSends != 1 {
			t.Fatalf("agent sends = %d, want 1", agentSends)
		}
		q, err := d.Quota(ctx, alice, c.ID)
		// The last customer message opened a new book: greeting + reply used 2 of 5.
		if err != nil || q.Remaining != 3 || !q.CanReply {
			t.Fatalf("quota = %+v (err %v), want 3 left", q, err)
		}
		if err := d.Note(ctx, alice, c.ID, "客户要求加急"); err != nil {
			t.Fatal(err)
		}
		wantErr(t, d.Close(ctx, alice, c.ID, "随便", true), conv.ErrBadInput)
		if err := d.Close(ctx, alice, c.ID, "咨询", true); err != nil {
			t.Fatal(err)
		}
		ended := d.rec.endedList()
		if len(ended) != 1 {
			t.Fatalf("closed hooks = %d", len(ended))
		}
		e := ended[0]
		if e.Outcome != "closed" || e.Agent != "alice" || e.Disposition != "咨询" || !e.Resolved || e.Store != "s1" ||
			!slices.Contains(e.Entries, "faq-12") || !e.HandedOff || e.Channel != "oa" {
			t.Fatalf("ContactEnded = %+v", e)
		}
		if _, ok, _ := d.Active(ctx, cust); ok {
			t.Fatal("still active after close")
		}
		// Closing twice is a conflict, not a second hook.
		wantErr(t, d.Close(ctx, alice, c.ID, "咨询", true), conv.ErrConflict)
		if len(d.rec.endedList()) != 1 {
			t.Fatal("hook ran twice")
		}
		for _, ty := range []conv.EventType{conv.EvQueued, conv.EvAssigned, conv.EvAccepted, conv.EvAgentReply, conv.EvClosed} {
			if d.rec.count(ty) != 1 {
				t.Errorf("event %s emitted %d times", ty, d.rec.count(ty))
			}
		}
		// The report computes ASA and AHT from these.
		for _, ev := range d.rec.events {
			switch ev.Type {
			case conv.EvAccepted:
				if ev.Data["wait_ms"] != "120000" || ev.Agent != "alice" || ev.Conv != c.ID {
					t.Errorf("accepted event = %+v", ev)
				}
			case conv.EvClosed:
				if ev.Data["handle_ms"] != "0" || ev.Data["disposition"] != "咨询" || ev.Data["resolved"] != "true" || ev.Actor != "alice" {
					t.Errorf("closed event = %+v", ev)
				}
			}
		}
		// Back to the bot: the router gets the next message.
		if _, handled, _ := d.Route(ctx, d.customerMsg("u1", "s1", "谢谢")); handled {
			t.Fatal("closed conversation still routes to the desk")
		}
		h, _ := d.History(ctx, cust)
		if len(h) != 1 || h[0].Disposition != "咨询" {
			t.Fatalf("history = %+v", h)
		}
	})
}

func TestService_HandoffIsIdempotent(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine.Engine) {
		ctx := context.Background()
		d := newDesk(t, eng)
		m := d.customerMsg("u2", "s1", "人工")
		for i := 0; i < 3; i++ {
			if err := d.Handoff(ctx, m, "explicit_request"); err != nil {
				t.Fatal(err)
			}
		}
		q, err := d.Queue(ctx, principal("sam"))
		if err != nil || len(q) != 1 {
			t.Fatalf("queue = %d (%v)", len(q), err)
		}
		if n := len(d.out.to("u2")); n != 1 {
			t.Fatalf("notices = %d, want 1", n)
		}
		if d.rec.count(conv.EvQueued) != 1 {
			t.Fatalf("queued events = %d", d.rec.count(conv.EvQueued))
		}
		// Different messages of one customer racing: still one conversation.
		var wg sync.WaitGroup
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				m := d.customerMsg("racer", "s1", "人工")
				m.ID = fmt.Sprintf("race-%d", i)
				if err := d.Handoff(ctx, m, "explicit_request"); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		q, _ = d.Queue(ctx, principal("sam"))
		if len(q) != 2 {
			t.Fatalf("queue after racing handoffs = %d, want 2", len(q))
		}
	})
}

func TestService_ClosedHoursAndFullQueueCreateTickets(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine.Engine) {
		ctx := context.Background()
		d := newDesk(t, eng, func(c *Config, _ *Deps) { c.QueueCapacity = 1 })
		d.clock.Advance(12 * time.Hour) // 22:00
		m := d.customerMsg("night", "s1", "人工")
		if err := d.Handoff(ctx, m, "explicit_request"); err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := d.Active(ctx, m.Customer); ok {
			t.Fatal("queued outside business hours")
		}
		out := d.out.to("night")
		if len(out) != 1 || !strings.Contains(out[0].Reply.Text, "非工作时间") {
			t.Fatalf("closed-hours notice = %+v", out)
		}
		d.clock.Advance(12 * time.Hour) // next day 10:00
		d.handoff(t, "first", "s1")
		m2 := d.customerMsg("second", "s1", "人工")
		if err := d.Handoff(ctx, m2, "explicit_request"); err != nil {
			t.Fatal(err)
		}
		if out := d.out.to("second"); len(out) != 1 || !strings.Contains(out[0].Reply.Text, "咨询人数较多") {
			t.Fatalf("queue-full notice = %+v", out)
		}
		tickets, err := d.Tickets(ctx, principal("alice"))
		if err != nil {
			t.Fatal(err)
		}
		reasons := map[string]bool{}
		for _, tk := range tickets {
			reasons[tk.Reason] = true
		}
		if len(tickets) != 2 || !reasons["closed_hours"] || !reasons["queue_full"] {
			t.Fatalf("tickets = %+v", tickets)
		}
		// carol serves s3 only and sees none of them.
		if tk, _ := d.Tickets(ctx, principal("carol")); len(tk) != 0 {
			t.Fatalf("carol sees %d tickets", len(tk))
		}
		// A redelivered message creates no second ticket.
		if err := d.Handoff(ctx, m2, "explicit_request"); err != nil {
			t.Fatal(err)
		}
		if tk, _ := d.Tickets(ctx, principal("alice")); len(tk) != 2 || tk[0].Reason != "queue_full" {
			t.Fatalf("after redelivery (newest first): %+v", tk)
		}
		if d.rec.count(conv.EvTicketCreated) != 2 {
			t.Fatalf("ticket events = %d", d.rec.count(conv.EvTicketCreated))
		}
		// Unsubscribing drops the customer's tickets; retention the rest.
		if err := d.Forget(ctx, m2.Customer); err != nil {
			t.Fatal(err)
		}
		if tk, _ := d.Tickets(ctx, principal("alice")); len(tk) != 1 || tk[0].Reason != "closed_hours" {
			t.Fatalf("after Forget: %+v", tk)
		}
		d.clock.Advance(ticketRetention + time.Hour)
		if err := d.trimTickets(ctx); err != nil {
			t.Fatal(err)
		}
		if tk, _ := d.Tickets(ctx, principal("alice")); len(tk) != 0 {
			t.Fatalf("after retention: %+v", tk)
		}
	})
}

func TestOpenAt(t *testing.T) {
	tree := testStores(t)
	loc := time.FixedZone("CST", 8*3600)
	cases := []struct {
		at   time.Time
		want bool
	}{
		{time.Date(2026, 11, 18, 8, 59, 0, 0, loc), false},
		{time.Date(2026, 11, 18, 9, 0, 0, 0, loc), true},
		{time.Date(2026, 11, 18, 20, 59, 0, 0, loc), true},
		{time.Date(2026, 11, 18, 21, 0, 0, 0, loc), false},
		{time.Date(2026, 11, 21, 9, 30, 0, 0, loc), false}, // Saturday opens at 10
		{time.Date(2026, 11, 21, 10, 30, 0, 0, loc), true},
		{time.Date(2026, 10, 1, 12, 0, 0, 0, loc), false}, // holiday
	}
	for _, c := range cases {
		got, err := openAt(tree, "s1", c.at, loc)
		if err != nil || got != c.want {
			t.Errorf("openAt(%s) = %v, %v; want %v", c.at, got, err, c.want)
		}
	}
	if _, err := dayMatches("funday", time.Monday); err == nil {
		t.Error("bad weekday accepted")
	}
}

func TestService_AssignmentLeastBusyFairAndCapped(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine.Engine) {
		ctx := context.Background()
		d := newDesk(t, eng)
		d.online(t, "alice", "bob")
		var ids []conv.ConvID
		for i := 0; i < 6; i++ {
			ids = append(ids, d.handoff(t, "c"+string(rune('a'+i)), "s2").ID)
			d.clock.Advance(time.Second)
			d.dispatch(t)
		}
		count := map[string]int{}
		for _, id := range ids {
			c := mustConv(t, d, id)
			count[c.Agent]++
		}
		// Caps of 2 each: 4 assigned, alternating, 2 still queued.
		if count["alice"] != 2 || count["bob"] != 2 || count[""] != 2 {
			t.Fatalf("assignment = %v", count)
		}
		if a := mustConv(t, d, ids[0]).Agent; a == mustConv(t, d, ids[1]).Agent {
			t.Fatalf("first two both went to %s: not round robin", a)
		}
		// The oldest queued goes first when a seat frees up.
		first := mustConv(t, d, ids[0])
		if err := d.Accept(ctx, principal(first.Agent), first.ID); err != nil {
			t.Fatal(err)
		}
		if err := d.Close(ctx, principal(first.Agent), first.ID, "表扬", true); err != nil {
			t.Fatal(err)
		}
		d.dispatch(t)
		if c := mustConv(t, d, ids[4]); c.State != conv.StateAssigned || c.Agent != first.Agent {
			t.Fatalf("oldest queued after close: %+v", c)
		}
		if c := mustConv(t, d, ids[5]); c.State != conv.StateQueued {
			t.Fatalf("newest should still wait: %s", c.State)
		}
		// Skills: a vip chat goes to bob only.
		m := d.customerMsg("vip1", "s1", "人工")
		m.Extra = map[string]string{SkillExtra: "vip"}
		if err := d.Handoff(ctx, m, "explicit_request"); err != nil {
			t.Fatal(err)
		}
		c, _, _ := d.Active(ctx, m.Customer)
		if c.Skill != "vip" {
			t.Fatalf("skill = %q", c.Skill)
		}
	})
}

func TestService_OfferTimeoutGoesToNextAgent(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine.Engine) {
		ctx := context.Background()
		d := newDesk(t, eng)
		d.online(t, "alice", "bob")
		c := d.handoff(t, "slow", "s1")
		d.dispatch(t)
		first := mustConv(t, d, c.ID).Agent
		d.clock.Advance(DefaultAcceptTimeout + time.Second)
		if n := d.FireTimers(ctx); n == 0 {
			t.Fatal("no timer fired")
		}
		c = mustConv(t, d, c.ID)
		if c.State != conv.StateQueued || !slices.Contains(c.Declined, first) {
			t.Fatalf("after offer timeout: %+v", c)
		}
		d.dispatch(t)
		c = mustConv(t, d, c.ID)
		if c.State != conv.StateAssigned || c.Agent == first {
			t.Fatalf("re-offered to %q (first was %q)", c.Agent, first)
		}
		// The first agent's seat is free again.
		infos, _ := d.Agents(ctx, principal("sam"))
		for _, a := range infos {
			if a.Name == first && len(a.Chats) != 0 {
				t.Fatalf("%s still holds %v", first, a.Chats)
			}
		}
		if d.rec.count(conv.EvOfferTimeout) != 1 {
			t.Fatalf("offer timeouts = %d", d.rec.count(conv.EvOfferTimeout))
		}
	})
}

func TestService_QueueTimeoutAbandonsWithTicket(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine.Engine) {
		ctx := context.Background()
		d := newDesk(t, eng)
		c := d.handoff(t, "waiter", "s3")
		d.clock.Advance(DefaultMaxWait + time.Second)
		d.FireTimers(ctx)
		c = mustConv(t, d, c.ID)
		if c.State != conv.StateAbandoned || c.EndReason != "queue_timeout" {
			t.Fatalf("after max wait: %+v", c)
		}
		ended := d.rec.endedList()
		if len(ended) != 1 || ended[0].Outcome != "abandoned" {
			t.Fatalf("ended = %+v", ended)
		}
		tickets, _ := d.Tickets(ctx, principal("carol"))
		if len(tickets) != 1 || tickets[0].Reason != "queue_timeout" {
			t.Fatalf("tickets = %+v", tickets)
		}
		var told bool
		for _, o := range d.out.to("waiter") {
			told = told || strings.Contains(o.Reply.Text, "久等")
		}
		if !told {
			t.Fatal("customer not told about the timeout")
		}
		// Firing again (a re-claimed timer) changes nothing.
		d.clock.Advance(time.Hour)
		d.FireTimers(ctx)
		if len(d.rec.endedList()) != 1 {
			t.Fatal("abandoned twice")
		}
		// An instance that died between ending and acking its hook timer:
		// the safety net runs the hooks again (at least once).
		d.schedule(ctx, tEnded, &c, d.clock.Now())
		d.FireTimers(ctx)
		if e := d.rec.endedList(); len(e) != 2 || e[1].Conv != c.ID || e[1].Outcome != "abandoned" {
			t.Fatalf("safety-net hooks: %+v", e)
		}
	})
}

func TestService_IdleCloseAndNoReplyReminder(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine.Engine) {
		ctx := context.Background()
		d := newDesk(t, eng)
		d.online(t, "carol")
		c := d.handoff(t, "quiet", "s3")
		d.dispatch(t)
		if err := d.Accept(ctx, principal("carol"), c.ID); err != nil {
			t.Fatal(err)
		}
		if _, _, err := d.Route(ctx, d.customerMsg("quiet", "s3", "你好？")); err != nil {
			t.Fatal(err)
		}
		d.clock.Advance(DefaultNoReplyReminder + time.Second)
		d.FireTimers(ctx)
		if d.rec.count(conv.EvNoReplyWarning) != 1 {
			t.Fatalf("reminders = %d", d.rec.count(conv.EvNoReplyWarning))
		}
		d.clock.Advance(DefaultIdleClose)
		d.FireTimers(ctx)
		c = mustConv(t, d, c.ID)
		if c.State != conv.StateClosed || c.EndReason != "idle" {
			t.Fatalf("after idle: %+v", c)
		}
		if e := d.rec.endedList(); len(e) != 1 || e[0].Outcome != "closed" {
			t.Fatalf("ended = %+v", e)
		}
	})
}

// The idle timer is armed once, at accept; when it fires after later
// activity it re-arms itself for the new deadline. The claim it fired from
// must not then delete that re-armed timer, or the chat never closes.
func TestService_IdleTimerRearmedAfterActivity(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine.Engine) {
		ctx := context.Background()
		d := newDesk(t, eng)
		d.online(t, "carol")
		c := d.handoff(t, "busy", "s3")
		d.dispatch(t)
		if err := d.Accept(ctx, principal("carol"), c.ID); err != nil {
			t.Fatal(err)
		}
		d.clock.Advance(DefaultIdleClose * 2 / 3)
		if _, _, err := d.Route(ctx, d.customerMsg("busy", "s3", "还在吗？")); err != nil {
			t.Fatal(err)
		}
		d.clock.Advance(DefaultIdleClose/3 + time.Second) // the first deadline passes
		d.FireTimers(ctx)
		if c = mustConv(t, d, c.ID); c.State != conv.StateAssigned {
			t.Fatalf("closed although the customer wrote %s ago: %+v", DefaultIdleClose/3, c)
		}
		d.clock.Advance(DefaultIdleClose * 2 / 3) // past the re-armed deadline
		d.FireTimers(ctx)
		if c = mustConv(t, d, c.ID); c.State != conv.StateClosed || c.EndReason != "idle" {
			t.Fatalf("not closed after the re-armed idle deadline: %+v", c)
		}
	})
}

func TestService_TransferAndTakeOver(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine.Engine) {
		ctx := context.Background()
		d := newDesk(t, eng)
		d.online(t, "alice", "bob", "sam")
		c := d.handoff(t, "t1", "s1")
		if _, err := d.assign(ctx, c.ID, 0, "alice", "test", modeSupervisor); err != nil {
			t.Fatal(err)
		}
		alice, bob, sam := principal("alice"), principal("bob"), principal("sam")
		_ = d.Accept(ctx, alice, c.ID)
		wantErr(t, d.Transfer(ctx, bob, c.ID, "bob", "mine"), conv.ErrForbidden)
		wantErr(t, d.Transfer(ctx, alice, c.ID, "carol", "x"), conv.ErrBadInput) // carol serves s3
		if err := d.Transfer(ctx, alice, c.ID, "bob", "需要专家"); err != nil {
			t.Fatal(err)
		}
		c = mustConv(t, d, c.ID)
		if c.Agent != "bob" || c.Accepted || len(c.Transfers) != 1 || c.Transfers[0].From != "alice" {
			t.Fatalf("after transfer: %+v", c)
		}
		wantErr(t, d.Reply(ctx, alice, c.ID, "x1", "hi"), conv.ErrForbidden)
		wantErr(t, d.TakeOver(ctx, alice, c.ID), conv.ErrForbidden)
		if err := d.TakeOver(ctx, sam, c.ID); err != nil {
			t.Fatal(err)
		}
		c = mustConv(t, d, c.ID)
		if c.Agent != "sam" || !c.Accepted || len(c.Transfers) != 2 {
			t.Fatalf("after take-over: %+v", c)
		}
		if d.rec.count(conv.EvTransferred) != 2 {
			t.Fatalf("transfer events = %d", d.rec.count(conv.EvTransferred))
		}
		// Back to the queue.
		if err := d.Transfer(ctx, sam, c.ID, "queue:vip", "VIP"); err != nil {
			t.Fatal(err)
		}
		c = mustConv(t, d, c.ID)
		if c.State != conv.StateQueued || c.Skill != "vip" {
			t.Fatalf("after requeue: %+v", c)
		}
		d.dispatch(t)
		if c = mustConv(t, d, c.ID); c.Agent != "bob" {
			t.Fatalf("vip requeue went to %q", c.Agent)
		}
	})
}

func TestService_Authorization(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine.Engine) {
		ctx := context.Background()
		d := newDesk(t, eng)
		d.online(t, "alice", "carol")
		c := d.handoff(t, "auth1", "s1")
		d.dispatch(t)
		carol, alice := principal("carol"), principal("alice")
		_, _, err := d.Chat(ctx, carol, c.ID)
		wantErr(t, err, conv.ErrForbidden)
		wantErr(t, d.Accept(ctx, carol, c.ID), conv.ErrForbidden)
		wantErr(t, d.Close(ctx, carol, c.ID, "咨询", true), conv.ErrForbidden)
		wantErr(t, d.Note(ctx, carol, c.ID, "x"), conv.ErrForbidden)
		wantErr(t, d.Assign(ctx, alice, c.ID, "alice"), conv.ErrForbidden)
		q, _ := d.Queue(ctx, carol)
		mine, _ := d.Mine(ctx, carol)
		if len(q) != 0 || len(mine) != 0 {
			t.Fatalf("carol sees queue=%d mine=%d", len(q), len(mine))
		}
		mgr := conv.Principal{User: "m", Role: conv.RoleStoreManager, Stores: []conv.StoreID{"s3"}}
		_, _, err = d.Chat(ctx, mgr, c.ID)
		wantErr(t, err, conv.ErrForbidden)
		region := conv.Principal{User: "r", Role: conv.RoleStoreManager, Stores: []conv.StoreID{"north"}}
		if _, _, err := d.Chat(ctx, region, c.ID); err != nil {
			t.Fatalf("region manager cannot read its store's chat: %v", err)
		}
		wantErr(t, d.SetStatus(ctx, alice, "busy"), conv.ErrBadInput)
		wantErr(t, d.Reply(ctx, alice, c.ID, "bad id!", "x"), conv.ErrBadInput)
		_, _, err = d.Chat(ctx, alice, "nope")
		wantErr(t, err, conv.ErrNotFound)
	})
}

func TestService_UnsubscribeAbandons(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine.Engine) {
		ctx := context.Background()
		d := newDesk(t, eng)
		c := d.handoff(t, "gone", "s1")
		m := d.customerMsg("gone", "s1", "")
		m.Kind, m.Event = conv.MsgEvent, "unsubscribe"
		_, handled, err := d.Route(ctx, m)
		if err != nil || handled {
			t.Fatalf("unsubscribe: handled=%v err=%v (the router must still delete data)", handled, err)
		}
		if c = mustConv(t, d, c.ID); c.State != conv.StateAbandoned || c.EndReason != "customer_left" {
			t.Fatalf("after unsubscribe: %+v", c)
		}
		// Then the router's unsubscribe hook deletes the customer's data.
		if err := d.Forget(ctx, m.Customer); err != nil {
			t.Fatal(err)
		}
		if _, err := d.Conversation(ctx, c.ID); !errors.Is(err, conv.ErrNotFound) {
			t.Fatalf("conversation kept after Forget: %v", err)
		}
		if turns, _ := d.Transcripts.Read(ctx, m.Customer); len(turns) != 0 {
			t.Fatalf("transcript kept after Forget: %+v", turns)
		}
		if h, _ := d.History(ctx, m.Customer); len(h) != 0 {
			t.Fatalf("history kept after Forget: %+v", h)
		}
	})
}

func TestService_KFStates(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine.Engine) {
		ctx := context.Background()
		kf := &fakeKF{}
		d := newDesk(t, eng, func(_ *Config, dp *Deps) { dp.KF = kf })
		m := conv.Message{ID: "kf1", Channel: "kf", ChannelType: conv.ChannelWeComKF, Account: "wkA", Customer: "kf:ext1",
			ExternalUser: "ext1", Store: "s3", Kind: conv.MsgText, Text: "人工", CreatedAt: d.clock.Now()}
		if err := d.Handoff(ctx, m, "explicit_request"); err != nil {
			t.Fatal(err)
		}
		out := d.out.to("ext1")
		if len(out) != 1 || out[0].Kind != conv.OutKFEvent || out[0].Code != "code-2" {
			t.Fatalf("KF queue notice = %+v", out)
		}
		d.online(t, "carol")
		d.dispatch(t)
		c, _, _ := d.Active(ctx, m.Customer)
		if err := d.Accept(ctx, principal("carol"), c.ID); err != nil {
			t.Fatal(err)
		}
		q, _ := d.Quota(ctx, principal("carol"), c.ID)
		if q.CanReply {
			t.Fatal("KF chat in state 3 offers console replies")
		}
		// The agent answers from the WeCom client (origin 5).
		if err := d.AgentMessage(ctx, conv.Message{ID: "kf2", Channel: "kf", ChannelType: conv.ChannelWeComKF, Customer: "kf:ext1",
			ExternalUser: "ext1", Kind: conv.MsgText, Text: "我来帮您", Origin: 5, ServicerID: "carol"}); err != nil {
			t.Fatal(err)
		}
		_, turns, _ := d.Chat(ctx, principal("carol"), c.ID)
		if last := turns[len(turns)-1]; last.Role != conv.TurnAgent || last.Text != "我来帮您" {
			t.Fatalf("last turn = %+v", last)
		}
		if err := d.Close(ctx, principal("carol"), c.ID, "咨询", false); err != nil {
			t.Fatal(err)
		}
		if got := kf.states(); !slices.Equal(got, []int{2, 3, 4}) {
			t.Fatalf("KF transitions = %v", got)
		}
		if e := d.rec.endedList(); len(e) != 1 || e[0].KFCode != "code-4" {
			t.Fatalf("ended = %+v", e)
		}
	})
}

type fakeKF struct {
	calls []int
}

func (f *fakeKF) KFTransfer(_ context.Context, _, _, _ string, state int, servicer string) (string, error) {
	f.calls = append(f.calls, state)
	if state == 3 && servicer == "" {
		return "", conv.ErrBadInput
	}
	if state == 3 {
		return "", nil
	}
	return "code-" + string(rune('0'+state)), nil
}

func (f *fakeKF) states() []int { return f.calls }

func TestConfig_Validate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	cases := map[string]func(*Config){
		"handoff.queue_capacity":      func(c *Config) { c.QueueCapacity = 0 },
		"handoff.max_wait":            func(c *Config) { c.MaxWait = 0 },
		"handoff.accept_timeout":      func(c *Config) { c.AcceptTimeout = -1 },
		"handoff.timezone":            func(c *Config) { c.Timezone = "Mars/Olympus" },
		"handoff.messages.queue_full": func(c *Config) { c.Messages.QueueFull = "" },
		"handoff.default_max_chats":   func(c *Config) { c.DefaultMaxChats = 0 },
	}
	for path, mut := range cases {
		c := DefaultConfig()
		mut(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: err = %v", path, err)
		}
	}
}

func TestService_DispatchOldestFirstAcrossQueues(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine.Engine) {
		d := newDesk(t, eng)
		first := d.handoff(t, "q-s2", "s2")
		d.clock.Advance(time.Second)
		second := d.handoff(t, "q-s1a", "s1")
		d.clock.Advance(time.Second)
		third := d.handoff(t, "q-s1b", "s1")
		d.online(t, "alice") // serves s1 and s2, cap 2
		d.dispatch(t)
		if mustConv(t, d, first.ID).Agent != "alice" || mustConv(t, d, second.ID).Agent != "alice" {
			t.Fatalf("the two longest waiting were not served first")
		}
		if c := mustConv(t, d, third.ID); c.State != conv.StateQueued {
			t.Fatalf("newest: %s", c.State)
		}
	})
}

// TestService_RecoversFromCrashGaps simulates an instance dying between a
// state change and the index/timer writes that follow it.
func TestService_RecoversFromCrashGaps(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine.Engine) {
		ctx := context.Background()
		d := newDesk(t, eng)
		// Died after creating the conversation, before queueing it: the
		// queue timeout scheduled beforehand still frees the customer.
		c := d.handoff(t, "crash1", "s3")
		if _, err := eng.ZRem(ctx, queueKey(c.Store, c.Skill), string(c.ID)); err != nil {
			t.Fatal(err)
		}
		d.clock.Advance(DefaultMaxWait + time.Second)
		d.FireTimers(ctx)
		if c = mustConv(t, d, c.ID); c.State != conv.StateAbandoned {
			t.Fatalf("orphaned queued conversation: %s", c.State)
		}
		// Died in an offer timeout after requeueing, before the queue
		// writes: the re-claimed offer timer finishes them.
		d.online(t, "carol")
		c = d.handoff(t, "crash2", "s3")
		d.dispatch(t)
		offered := mustConv(t, d, c.ID)
		if err := d.offerTimedOut(ctx, offered); err != nil {
			t.Fatal(err)
		}
		_, _ = eng.ZRem(ctx, queueKey(c.Store, c.Skill), string(c.ID))
		_ = eng.Ack(ctx, timerQueue, tQueueTimeout+":"+string(c.ID))
		d.schedule(ctx, tAcceptTimeout, &offered, d.clock.Now())
		d.FireTimers(ctx)
		if _, err := eng.ZScore(ctx, queueKey(c.Store, c.Skill), string(c.ID)); err != nil {
			t.Fatalf("not back in its queue: %v", err)
		}
		if n, _ := eng.QueueLen(ctx, timerQueue); n == 0 {
			t.Fatal("queue timeout not rescheduled")
		}
		d.dispatch(t)
		if c = mustConv(t, d, c.ID); c.State != conv.StateAssigned {
			t.Fatalf("after repair: %s", c.State)
		}
	})
}

func TestService_JSONChannelHasNoQuota(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine.Engine) {
		ctx := context.Background()
		d := newDesk(t, eng)
		m := conv.Message{ID: "w1", Channel: "web", ChannelType: conv.ChannelJSON, Customer: "web:v1", ExternalUser: "v1",
			Store: "s3", Kind: conv.MsgText, Text: "人工", CreatedAt: d.clock.Now()}
		if err := d.Handoff(ctx, m, "explicit_request"); err != nil {
			t.Fatal(err)
		}
		d.online(t, "carol")
		d.dispatch(t)
		c, _, _ := d.Active(ctx, m.Customer)
		carol := principal("carol")
		if err := d.Accept(ctx, carol, c.ID); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 8; i++ { // more than any WeChat allowance
			if err := d.Reply(ctx, carol, c.ID, fmt.Sprintf("j%d", i), "ok"); err != nil {
				t.Fatal(err)
			}
		}
		q, _ := d.Quota(ctx, carol, c.ID)
		if q.Remaining != -1 || !q.CanReply {
			t.Fatalf("quota = %+v", q)
		}
		if n := len(d.out.to("v1")); n != 10 { // queue notice, greeting, 8 replies
			t.Fatalf("sent %d", n)
		}
	})
}

func TestService_GoingAwayReleasesOffers(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine.Engine) {
		ctx := context.Background()
		d := newDesk(t, eng)
		d.online(t, "alice")
		offered := d.handoff(t, "o1", "s1")
		d.dispatch(t)
		accepted := d.handoff(t, "o2", "s1")
		d.dispatch(t)
		if err := d.Accept(ctx, principal("alice"), accepted.ID); err != nil {
			t.Fatal(err)
		}
		if err := d.SetStatus(ctx, principal("alice"), conv.AgentAway); err != nil {
			t.Fatal(err)
		}
		if c := mustConv(t, d, offered.ID); c.State != conv.StateQueued {
			t.Fatalf("unaccepted offer after going away: %s", c.State)
		}
		if c := mustConv(t, d, accepted.ID); c.State != conv.StateAssigned || c.Agent != "alice" {
			t.Fatalf("accepted chat after going away: %+v", c)
		}
		if n := d.dispatch(t); n != 0 {
			t.Fatalf("assigned %d to an away agent", n)
		}
	})
}

// TestService_QuotaCountsSendsNotYetDelivered: ten simultaneous replies
// while the sender's outbox lags take at most the allowance left (the
// sender holds a slot per queued message and refuses replies beyond it),
// and what goes out never breaks the 5-per-message rule.
func TestService_QuotaCountsSendsNotYetDelivered(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine.Engine) {
		ctx := context.Background()
		d := newDesk(t, eng)
		d.online(t, "alice")
		c := d.handoff(t, "burst", "s1") // queue notice: 1 of 5
		d.dispatch(t)
		alice := principal("alice")
		if err := d.Accept(ctx, alice, c.ID); err != nil { // greeting: 2 of 5
			t.Fatal(err)
		}
		d.out.mu.Lock()
		d.out.lag = true
		d.out.mu.Unlock()
		var ok, refused atomic.Int64
		var wg sync.WaitGroup
		for i := 0; i < 10; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := d.Reply(ctx, alice, c.ID, fmt.Sprintf("b%d", i), "hi")
				switch {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, conv.ErrQuotaExhausted):
					refused.Add(1)
				default:
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if ok.Load() != 3 || refused.Load() != 7 {
			t.Fatalf("accepted %d, refused %d; want 3 and 7", ok.Load(), refused.Load())
		}
		if q, _ := d.Quota(ctx, alice, c.ID); q.Remaining != 0 || q.CanReply {
			t.Fatalf("quota before delivery = %+v", q)
		}
		d.out.flush() // the fake fails the test on a 6th message
	})
}

func TestConfig_YAML(t *testing.T) {
	src := `
queue_capacity: 50
max_wait: 5m
accept_timeout: 20s
messages:
  queue_full: 人太多了
`
	cfg := DefaultConfig()
	dec := yaml.NewDecoder(strings.NewReader(src))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.QueueCapacity != 50 || cfg.MaxWait != 5*time.Minute || cfg.AcceptTimeout != 20*time.Second ||
		cfg.Messages.QueueFull != "人太多了" || cfg.Messages.Queued == "" || cfg.IdleClose != DefaultIdleClose {
		t.Fatalf("decoded %+v", cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := yaml.NewDecoder(strings.NewReader("queue_capasity: 1\n"))
	bad.KnownFields(true)
	if err := bad.Decode(&cfg); err == nil {
		t.Fatal("unknown key accepted")
	}
}
