package handoff

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"kefu/conv"
	"kefu/engine"
	"kefu/internal/testredis"
)

// benchEngines runs f on Redis and on the embedded engine. On Redis it
// also reports round trips per op (commands + pipelines sent), a figure
// that does not depend on how loaded the machine is.
func benchEngines(b *testing.B, f func(b *testing.B, eng engine.Engine)) {
	b.Run("redis", func(b *testing.B) {
		client := testredis.Start(b).Client()
		trips := &tripCounter{}
		client.AddHook(trips)
		eng := engine.NewRedis(client, "kefu:")
		f(b, &timedEngine{Engine: eng, b: b, trips: trips})
	})
	b.Run("embedded", func(b *testing.B) { f(b, embeddedEngine(b)) })
}

// tripCounter counts Redis round trips.
type tripCounter struct{ n atomic.Int64 }

func (c *tripCounter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *tripCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { c.n.Add(1); return next(ctx, cmd) }
}
func (c *tripCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { c.n.Add(1); return next(ctx, cmds) }
}

// timedEngine carries the counter to reportTrips.
type timedEngine struct {
	engine.Engine
	b     *testing.B
	trips *tripCounter
}

// startTrips resets the round-trip counter (call after setup, with
// b.ResetTimer); reportTrips reports trips/op.
func startTrips(eng engine.Engine) {
	if te, ok := eng.(*timedEngine); ok {
		te.trips.n.Store(0)
	}
}

func reportTrips(b *testing.B, eng engine.Engine) {
	if te, ok := eng.(*timedEngine); ok {
		b.ReportMetric(float64(te.trips.n.Load())/float64(b.N), "redis-trips/op")
	}
}

func benchDesk(b *testing.B, eng engine.Engine, agents, maxChats int) *Service {
	cfg := DefaultConfig()
	cfg.QueueCapacity = 1 << 30
	cfg.AcceptTimeout = time.Hour
	roster := scaleAgents(agents)
	for i := range roster {
		roster[i].MaxChats = maxChats
	}
	s, err := New(cfg, Deps{Engine: eng, Sender: newFakeSender(b, time.Now), Agents: roster})
	if err != nil {
		b.Fatal(err)
	}
	for _, a := range roster {
		if err := s.SetStatus(context.Background(), principal0(a.Name), conv.AgentOnline); err != nil {
			b.Fatal(err)
		}
	}
	return s
}

func benchMsg(i int) conv.Message {
	user := fmt.Sprintf("bench%07d", i)
	return conv.Message{ID: "m-" + user, Channel: "oa", ChannelType: conv.ChannelWeChatOA, Customer: conv.NewCustomerID("oa", user),
		ExternalUser: user, Store: "s1", Kind: conv.MsgText, Text: "人工", CreatedAt: time.Now()}
}

// BenchmarkDispatch measures assignment throughput: b.N queued
// conversations assigned to 10 agents (one op = one assignment).
func BenchmarkDispatch(b *testing.B) {
	benchEngines(b, func(b *testing.B, eng engine.Engine) {
		ctx := context.Background()
		s := benchDesk(b, eng, 10, b.N+1)
		for i := 0; i < b.N; i++ {
			if err := s.Handoff(ctx, benchMsg(i), "bench"); err != nil {
				b.Fatal(err)
			}
		}
		b.ResetTimer()
		startTrips(eng)
		total := 0
		for total < b.N {
			n, err := s.Dispatch(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if n == 0 {
				b.Fatalf("dispatch stalled at %d of %d", total, b.N)
			}
			total += n
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "assign/s")
		reportTrips(b, eng)
	})
}

// BenchmarkHandoff measures queueing a customer (one op = one handoff,
// including the queue notice and position).
func BenchmarkHandoff(b *testing.B) {
	benchEngines(b, func(b *testing.B, eng engine.Engine) {
		ctx := context.Background()
		s := benchDesk(b, eng, 10, 5)
		b.ResetTimer()
		startTrips(eng)
		for i := 0; i < b.N; i++ {
			if err := s.Handoff(ctx, benchMsg(i), "bench"); err != nil {
				b.Fatal(err)
			}
		}
		reportTrips(b, eng)
	})
}

// BenchmarkPickupLatency measures handoff → assigned as a console sees it:
// from the Handoff call until the "assigned" live update arrives through
// the engine's pub/sub, with Run dispatching (one op = one pickup).
func BenchmarkPickupLatency(b *testing.B) {
	benchEngines(b, func(b *testing.B, eng engine.Engine) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		s := benchDesk(b, eng, 10, 5)
		updates, err := s.Updates(ctx)
		if err != nil {
			b.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		p := principal0("")
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			m := benchMsg(i)
			if err := s.Handoff(ctx, m, "bench"); err != nil {
				b.Fatal(err)
			}
			var got conv.DeskUpdate
			for got.State != conv.StateAssigned {
				select {
				case got = <-updates:
				case <-time.After(10 * time.Second):
					b.Fatal("no assignment within 10s")
				}
			}
			b.StopTimer()
			c, err := s.Conversation(ctx, got.Conv)
			if err != nil {
				b.Fatal(err)
			}
			p.User = c.Agent
			if err := s.Close(ctx, p, c.ID, "咨询", true); err != nil {
				b.Fatal(err)
			}
			// Drain this conversation's remaining notices.
			for drained := false; !drained; {
				select {
				case <-updates:
				case <-time.After(2 * time.Millisecond):
					drained = true
				}
			}
			b.StartTimer()
		}
		b.StopTimer()
		cancel()
		<-done
	})
}
