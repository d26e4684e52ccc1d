package handoff

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"kefu/conv"
	"kefu/engine"
	"kefu/internal/testredis"
)

// scaleAgents is a roster of n agents serving every store with cap 5.
func scaleAgents(n int) []conv.AgentProfile {
	var out []conv.AgentProfile
	for i := 0; i < n; i++ {
		out = append(out, conv.AgentProfile{Name: fmt.Sprintf("agent%02d", i), Role: conv.RoleAgent, MaxChats: 5})
	}
	return out
}

// TestService_TwoInstancesOneRedis hands 200 customers over at once through
// two instances sharing one Redis, with 10 agents of cap 5 working the
// chats through both instances: no chat is assigned twice, none is lost,
// no agent ever holds more than 5.
func TestService_TwoInstancesOneRedis(t *testing.T) {
	const customers, agents, capacity = 200, 10, 5
	srv := testredis.Start(t)
	rec := &recorder{}
	var instances []*Service
	for i := 0; i < 2; i++ {
		eng := engine.NewRedis(srv.Client(), "kefu:")
		cfg := DefaultConfig()
		cfg.QueueCapacity = customers
		cfg.AcceptTimeout = time.Hour // offers never time out here: every assignment is final
		s, err := New(cfg, Deps{Engine: eng, Sender: newFakeSender(t, time.Now), Agents: scaleAgents(agents), Emit: rec.emit})
		if err != nil {
			t.Fatal(err)
		}
		s.OnClosed(rec.closed)
		instances = append(instances, s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for _, s := range instances {
		wg.Add(1)
		go func() { defer wg.Done(); _ = s.Run(ctx) }()
	}
	for i := 0; i < agents; i++ {
		if err := instances[i%2].SetStatus(ctx, principal0(fmt.Sprintf("agent%02d", i)), conv.AgentOnline); err != nil {
			t.Fatal(err)
		}
	}

	// Invariant watcher: reads every agent record directly.
	var violations atomic.Int64
	var maxSeen atomic.Int64
	watchCtx, stopWatch := context.WithCancel(ctx)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for watchCtx.Err() == nil {
			owner := map[conv.ConvID]string{}
			for i := 0; i < agents; i++ {
				name := fmt.Sprintf("agent%02d", i)
				a, err := instances[0].agent(watchCtx, name)
				if err != nil {
					continue
				}
				if int64(len(a.Chats)) > maxSeen.Load() {
					maxSeen.Store(int64(len(a.Chats)))
				}
				if len(a.Chats) > capacity {
					violations.Add(1)
					t.Errorf("%s holds %d chats", name, len(a.Chats))
				}
				for _, id := range a.Chats {
					if o, dup := owner[id]; dup {
						violations.Add(1)
						t.Errorf("%s held by %s and %s", id, o, name)
					}
					owner[id] = name
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()

	// 200 simultaneous handoffs, alternating instances.
	start := make(chan struct{})
	var hw sync.WaitGroup
	for i := 0; i < customers; i++ {
		hw.Add(1)
		go func() {
			defer hw.Done()
			<-start
			user := fmt.Sprintf("cust%03d", i)
			m := conv.Message{ID: "m-" + user, Channel: "oa", ChannelType: conv.ChannelWeChatOA, Customer: conv.NewCustomerID("oa", user),
				ExternalUser: user, Store: conv.StoreID(fmt.Sprintf("s%d", i%4)), Kind: conv.MsgText, Text: "人工", CreatedAt: time.Now()}
			if err := instances[i%2].Handoff(ctx, m, "explicit_request"); err != nil {
				t.Errorf("handoff %s: %v", user, err)
			}
		}()
	}
	close(start)
	hw.Wait()

	// The dispatchers fill every seat (10 × 5) and keep the rest queued.
	fillBy := time.Now().Add(20 * time.Second)
	for {
		full := 0
		for i := 0; i < agents; i++ {
			a, err := instances[1].agent(ctx, fmt.Sprintf("agent%02d", i))
			if err == nil && len(a.Chats) == capacity {
				full++
			}
		}
		if full == agents {
			break
		}
		if time.Now().After(fillBy) {
			t.Fatalf("only %d of %d agents filled to their cap", full, agents)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if q, err := instances[0].Queue(ctx, conv.Principal{User: "hq", Role: conv.RoleAdmin}); err != nil || len(q) != customers-agents*capacity {
		t.Fatalf("queued = %d (err %v), want %d", len(q), err, customers-agents*capacity)
	}

	// Agents work: accept, then close, through alternating instances.
	var closed atomic.Int64
	var aw sync.WaitGroup
	deadline := time.Now().Add(60 * time.Second)
	for i := 0; i < agents; i++ {
		aw.Add(1)
		go func() {
			defer aw.Done()
			p := principal0(fmt.Sprintf("agent%02d", i))
			for n := 0; closed.Load() < customers && time.Now().Before(deadline); n++ {
				s := instances[n%2]
				mine, err := s.Mine(ctx, p)
				if err != nil {
					t.Errorf("mine: %v", err)
					return
				}
				for _, c := range mine {
					if err := s.Accept(ctx, p, c.ID); err != nil {
						t.Errorf("accept %s: %v", c.ID, err)
						continue
					}
					if err := s.Close(ctx, p, c.ID, "咨询", true); err != nil {
						t.Errorf("close %s: %v", c.ID, err)
						continue
					}
					closed.Add(1)
				}
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	aw.Wait()
	stopWatch()
	cancel()
	wg.Wait()

	if got := closed.Load(); got != customers {
		t.Fatalf("closed %d of %d (lost chats)", got, customers)
	}
	ended := rec.endedList()
	seen := map[conv.ConvID]bool{}
	for _, e := range ended {
		if seen[e.Conv] {
			t.Errorf("%s ended twice", e.Conv)
		}
		seen[e.Conv] = true
	}
	if len(seen) != customers {
		t.Fatalf("closed hooks for %d conversations, want %d", len(seen), customers)
	}
	assigned := map[conv.ConvID]int{}
	rec.mu.Lock()
	for _, e := range rec.events {
		if e.Type == conv.EvAssigned {
			assigned[e.Conv]++
		}
	}
	rec.mu.Unlock()
	for id, n := range assigned {
		if n != 1 {
			t.Errorf("%s assigned %d times", id, n)
		}
	}
	if len(assigned) != customers || violations.Load() != 0 {
		t.Fatalf("assigned %d distinct, %d invariant violations", len(assigned), violations.Load())
	}
	if maxSeen.Load() != capacity {
		t.Fatalf("max concurrent chats seen per agent: %d, want the cap %d", maxSeen.Load(), capacity)
	}
}

// principal0 is an agent principal serving all stores.
func principal0(name string) conv.Principal {
	return conv.Principal{User: name, Name: name, Role: conv.RoleAgent}
}

// TestService_TimersFireOnceAcrossInstances: two instances on one Redis
// race to fire the same 50 queue timeouts; each conversation is abandoned
// once, with one ticket and one closed hook.
func TestService_TimersFireOnceAcrossInstances(t *testing.T) {
	srv := testredis.Start(t)
	clk := newClock()
	rec := &recorder{}
	var desks []*Service
	for i := 0; i < 2; i++ {
		s, err := New(DefaultConfig(), Deps{Engine: engine.NewRedis(srv.Client(), "kefu:"), Sender: newFakeSender(t, clk.Now),
			Agents: testAgents(), Emit: rec.emit, Now: clk.Now})
		if err != nil {
			t.Fatal(err)
		}
		s.OnClosed(rec.closed)
		desks = append(desks, s)
	}
	ctx := context.Background()
	for i := 0; i < 50; i++ {
		user := fmt.Sprintf("t%02d", i)
		m := conv.Message{ID: "m-" + user, Channel: "oa", ChannelType: conv.ChannelWeChatOA, Customer: conv.NewCustomerID("oa", user),
			ExternalUser: user, Store: "s3", Kind: conv.MsgText, Text: "人工", CreatedAt: clk.Now()}
		if err := desks[i%2].Handoff(ctx, m, "explicit_request"); err != nil {
			t.Fatal(err)
		}
	}
	clk.Advance(DefaultMaxWait + time.Second)
	var wg sync.WaitGroup
	for _, s := range desks {
		for w := 0; w < 3; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for s.FireTimers(ctx) > 0 {
				}
			}()
		}
	}
	wg.Wait()
	ended := map[conv.ConvID]int{}
	for _, e := range rec.endedList() {
		ended[e.Conv]++
	}
	if len(ended) != 50 {
		t.Fatalf("%d conversations ended, want 50", len(ended))
	}
	for id, n := range ended {
		if n != 1 {
			t.Errorf("%s ended %d times", id, n)
		}
	}
	tickets, err := desks[0].Tickets(ctx, conv.Principal{User: "hq", Role: conv.RoleAdmin})
	if err != nil || len(tickets) != 50 {
		t.Fatalf("tickets = %d (%v)", len(tickets), err)
	}
	if n := rec.count(conv.EvAbandoned); n != 50 {
		t.Fatalf("abandoned events = %d", n)
	}
}
