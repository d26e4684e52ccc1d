package app

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"kefu/bot"
	"kefu/conv"
	"kefu/engine"
	"kefu/internal/testredis"
	"kefu/wxsim"
)

// lateGets records GET commands for one customer's keys that did not
// come in a read-ahead group: a GET of the customer's dedupe record (or,
// for a message answered through the send API, of their handoff key)
// followed, in the same pipeline, by GETs of their other keys. The
// engine's batcher may put other callers' commands before or after a
// group, never inside it.
type lateGets struct {
	user string
	mu   sync.Mutex
	keys []string
}

func (s *lateGets) DialHook(next redis.DialHook) redis.DialHook { return next }

func (s *lateGets) getOf(cmd redis.Cmder) (string, bool) {
	args := cmd.Args()
	if len(args) != 2 || !strings.EqualFold(cmd.Name(), "get") {
		return "", false
	}
	k, _ := args[1].(string)
	return k, strings.Contains(k, s.user)
}

func (s *lateGets) note(cmds []redis.Cmder) {
	inGroup := false
	for _, cmd := range cmds {
		k, mine := s.getOf(cmd)
		switch {
		case mine && (strings.Contains(k, ":d:") || strings.Contains(k, ":a:")):
			// The dedupe record opens a group (passive replies); on the
			// queued path (KF) the handoff's active-conversation key does.
			inGroup = true
		case mine && inGroup:
		case mine:
			s.mu.Lock()
			s.keys = append(s.keys, k)
			s.mu.Unlock()
		default:
			inGroup = false
		}
	}
}

func (s *lateGets) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		s.note([]redis.Cmder{cmd})
		return next(ctx, cmd)
	}
}

func (s *lateGets) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		s.note(cmds)
		return next(ctx, cmds)
	}
}

func (s *lateGets) all() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.keys)
}

// On Redis every key the router reads for a customer's FAQ question — the
// dedupe record, the handoff, survey and bot state, and the bot contact the
// survey bookkeeping reads after the answer — comes in the dedupe record's
// round trip (gateway.ReadAhead), so none is fetched on its own. A key a
// domain starts reading without naming it in ReadAheadKeys fails here.
func TestApp_RedisReadsRouterKeysAhead(t *testing.T) {
	srv := testredis.Start(t)
	client := srv.Client()
	const user, kfUser = "o_read_ahead", "wmReadAhead"
	gets, kfGets := &lateGets{user: user}, &lateGets{user: kfUser}
	client.AddHook(gets)
	client.AddHook(kfGets)
	cfg := loadSample(t)
	cfg.Redis.Addr = srv.Addr
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	a, err := build(cfg, log, engine.NewRedis(client, cfg.Redis.Prefix))
	if err != nil {
		t.Fatal(err)
	}
	// Told once the bookkeeping after a bot answer (the survey's bot
	// contact among it) is done: the hooks run in order, this one last.
	turns := make(chan struct{}, 4)
	a.Router.OnBotTurn = append(a.Router.OnBotTurn, func(context.Context, conv.Message, bot.Decision) { turns <- struct{}{} })
	serveApp(t, a)

	c := oaClient(cfg, a)
	for i, q := range []string{"你们营业时间是几点", "会员积分怎么获得"} {
		d, err := c.SendText(context.Background(), user, q, 0)
		if err != nil {
			t.Fatal(err)
		}
		if d.Reply == nil || d.Reply.Content == "" {
			t.Fatalf("question %d: no passive reply: %+v", i, d)
		}
		// The next question comes once this one's bookkeeping is done,
		// as a customer's next message would.
		select {
		case <-turns:
		case <-time.After(10 * time.Second):
			t.Fatal("no bookkeeping after the bot's answer")
		}
		a.botState.flush(context.Background())
	}
	if keys := gets.all(); len(keys) != 0 {
		t.Fatalf("GETs of the customer's keys outside the read-ahead: %q (want all read ahead)", keys)
	}

	// A KF message is claimed by the puller and answered through the send
	// API; its handler's reads come in one round trip too.
	var kc *wxsim.KFClient
	var kfid string
	for _, ch := range cfg.Channels {
		if ch.Type == "wecom_kf" {
			kc = &wxsim.KFClient{URL: "http://" + cfg.Listen + "/wecom/kf/" + ch.Name, Token: ch.Token, CorpID: ch.AppID, EncodingAESKey: ch.EncodingAESKey}
			for id := range ch.Scenes {
				kfid = id
			}
		}
	}
	if kc == nil {
		t.Fatal("the sample config has no wecom_kf channel")
	}
	for i, q := range []string{"营业时间是几点", "会员积分怎么查"} {
		tok, _, err := a.Sim.KFCustomerSends(kfid, kfUser, q)
		if err != nil {
			t.Fatal(err)
		}
		if d, err := kc.SendEvent(context.Background(), tok, kfid); err != nil || !d.Acked {
			t.Fatalf("KF callback %d: %v %+v", i, err, d)
		}
		select {
		case <-turns:
		case <-time.After(10 * time.Second):
			t.Fatal("no bookkeeping after the bot's KF answer")
		}
		a.botState.flush(context.Background())
		waitUntil(t, 10*time.Second, "KF answer sent", func() bool { return len(a.Sim.Inbox(kfUser)) > i })
	}
	if keys := kfGets.all(); len(keys) != 0 {
		t.Fatalf("GETs of the KF customer's keys outside the read-ahead: %q (want all read ahead)", keys)
	}
}
