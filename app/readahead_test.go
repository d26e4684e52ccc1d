package app

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"kefu/engine"
	"kefu/internal/testredis"
)

// singleGets records the keys of GET commands sent on their own (not in a
// pipeline).
type singleGets struct {
	mu   sync.Mutex
	keys []string
}

func (s *singleGets) DialHook(next redis.DialHook) redis.DialHook { return next }

func (s *singleGets) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if args := cmd.Args(); len(args) == 2 && strings.EqualFold(cmd.Name(), "get") {
			s.mu.Lock()
			s.keys = append(s.keys, args[1].(string))
			s.mu.Unlock()
		}
		return next(ctx, cmd)
	}
}

func (s *singleGets) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (s *singleGets) of(user string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, k := range s.keys {
		if strings.Contains(k, user) {
			out = append(out, k)
		}
	}
	return out
}

// On Redis every key the router reads for a customer's FAQ question — the
// dedupe record, the handoff, survey and bot state, and the bot contact the
// survey bookkeeping reads after the answer — comes in the dedupe record's
// round trip (gateway.ReadAhead), so none is fetched on its own. A key a
// domain starts reading without naming it in ReadAheadKeys fails here.
func TestApp_RedisReadsRouterKeysAhead(t *testing.T) {
	srv := testredis.Start(t)
	client := srv.Client()
	gets := &singleGets{}
	client.AddHook(gets)
	cfg := loadSample(t)
	cfg.Redis.Addr = srv.Addr
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	a, err := build(cfg, log, engine.NewRedis(client, cfg.Redis.Prefix))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp4", cfg.Listen)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		a.Close()
	})

	c := oaClient(cfg, a)
	const user = "o_read_ahead"
	botContact := cfg.Redis.Prefix + "sv:b:" + cfg.Channels[0].Name + ":" + user
	for i, q := range []string{"你们营业时间是几点", "会员积分怎么获得"} {
		d, err := c.SendText(context.Background(), user, q, 0)
		if err != nil {
			t.Fatal(err)
		}
		if d.Reply == nil || d.Reply.Content == "" {
			t.Fatalf("question %d: no passive reply: %+v", i, d)
		}
		// Wait for the bookkeeping after the answer (the bot contact is
		// its last engine write) before the next question.
		waitUntil(t, 10*time.Second, "bot contact written", func() bool {
			return srv.Client().Exists(context.Background(), botContact).Val() == 1
		})
		a.botState.flush(context.Background())
	}
	if keys := gets.of(user); len(keys) != 0 {
		t.Fatalf("GETs sent on their own for the customer's keys: %q (want all read ahead)", keys)
	}
}
