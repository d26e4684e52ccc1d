package gateway

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"kefu/conv"
	"kefu/engine"
	"kefu/wxsim"
)

// Test identities. The AES keys are 43 characters like WeChat's.
const (
	testAppID    = "wx1234567890abcdef"
	testOAToken  = "oatoken"
	testOAKey    = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
	testCorpID   = "ww0011223344556677"
	testKFToken  = "kftoken"
	testKFKey    = "ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zyxwvut"
	testKFSecret = "kf-secret"
	testKFID     = "wkTESTKF01"
	testAppToken = "apptoken"
	testAppKey   = "0123456789abcdefghijABCDEFGHIJklmnopqrstUVW"
	testJSONKey  = "json-hmac-secret-0123456789"
)

// env is one gateway under test: a real fasthttp server on loopback, a
// real engine, the WeChat API simulator and a scripted handler.
type env struct {
	t    testing.TB
	gw   *Gateway
	eng  engine.Engine
	sim  *wxsim.API
	url  string
	h    *scripted
	stop func()
}

// scripted answers "echo:<text>" and records every call; Delay slows it.
type scripted struct {
	mu      sync.Mutex
	calls   []conv.Message
	delay   time.Duration
	replies func(conv.Message) []conv.Reply
	fail    error
}

func (s *scripted) Handle(ctx context.Context, m conv.Message) ([]conv.Reply, error) {
	s.mu.Lock()
	s.calls = append(s.calls, m)
	d, f, fail := s.delay, s.replies, s.fail
	s.mu.Unlock()
	if d > 0 {
		time.Sleep(d)
	}
	if fail != nil {
		return nil, fail
	}
	if f != nil {
		return f(m), nil
	}
	if m.Kind == conv.MsgText {
		return []conv.Reply{conv.Text("echo:" + m.Text)}, nil
	}
	return nil, nil
}

func (s *scripted) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.calls)
}

func (s *scripted) set(f func(s *scripted)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

type engineKind string

const (
	embeddedEngine engineKind = "embedded"
	redisEngine    engineKind = "redis"
)

// forEachEngine runs f on the embedded engine and on a real Redis.
func forEachEngine(t *testing.T, f func(t *testing.T, kind engineKind)) {
	t.Run("embedded", func(t *testing.T) { f(t, embeddedEngine) })
	t.Run("redis", func(t *testing.T) { f(t, redisEngine) })
}

func openEngine(t testing.TB, kind engineKind) engine.Engine {
	t.Helper()
	switch kind {
	case redisEngine:
		return newRedisEngine(t)
	default:
		e, err := engine.OpenEmbedded(t.TempDir(), engine.EmbeddedOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = e.Close() })
		return e
	}
}

func testLogger() *slog.Logger {
	if os.Getenv("KEFU_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// newEnv starts a gateway on kind with all four channel types.
func newEnv(t testing.TB, kind engineKind, tune ...func(*Config)) *env {
	t.Helper()
	sim := wxsim.NewAPI(wxsim.APIOptions{
		OA:     []wxsim.OAApp{{AppID: testAppID, Secret: "oa-secret"}},
		WeCom:  []wxsim.WeComApp{{CorpID: testCorpID, AgentID: 1000002, Secret: "app-secret"}},
		KF:     []wxsim.KFCorp{{CorpID: testCorpID, Secret: testKFSecret, Accounts: []string{testKFID}, Servicers: []string{"agent1"}}},
		Robots: []string{"robot-key-1"},
	})
	base := sim.Start()
	t.Cleanup(sim.Close)
	return newEnvWith(t, openEngine(t, kind), sim, base, tune...)
}

func newEnvWith(t testing.TB, eng engine.Engine, sim *wxsim.API, base string, tune ...func(*Config)) *env {
	t.Helper()
	cfg := DefaultConfig()
	cfg.APIBase, cfg.WeComAPIBase = base, base
	cfg.PassiveBudget = time.Second
	cfg.Outbound.BaseBackoff = 50 * time.Millisecond
	cfg.Outbound.MaxBackoff = 200 * time.Millisecond
	cfg.Channels = []ChannelConfig{
		{Name: "demo", Type: conv.ChannelWeChatOA, AppID: testAppID, AppSecret: "oa-secret", Token: testOAToken, EncodingAESKey: testOAKey, Store: "store-001", Scenes: map[string]conv.StoreID{"1002": "store-002"}},
		{Name: "plain", Type: conv.ChannelWeChatOA, AppID: testAppID, AppSecret: "oa-secret", Token: testOAToken, Store: "store-001"},
		{Name: "kf", Type: conv.ChannelWeComKF, AppID: testCorpID, AppSecret: testKFSecret, Token: testKFToken, EncodingAESKey: testKFKey, Store: "store-001"},
		{Name: "mgr", Type: conv.ChannelWeComApp, AppID: testCorpID, AppSecret: "app-secret", AgentID: 1000002, Token: testAppToken, EncodingAESKey: testAppKey},
		{Name: "web", Type: conv.ChannelJSON, Token: testJSONKey, Store: "store-001"},
	}
	for _, f := range tune {
		f(&cfg)
	}
	h := &scripted{}
	gw, err := New(cfg, eng, h, Options{Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: gw.HTTPHandler(), MaxRequestBodySize: cfg.MaxBodyBytes, ReadTimeout: 5 * time.Second, ErrorHandler: ErrorHandler}
	go func() { _ = srv.Serve(ln) }()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = gw.Sender.Run(ctx) }()
	go func() { defer wg.Done(); _ = gw.RunKFPuller(ctx) }()
	e := &env{t: t, gw: gw, eng: eng, sim: sim, url: "http://" + ln.Addr().String(), h: h}
	e.stop = func() {
		cancel()
		_ = srv.Shutdown()
		wg.Wait()
		_ = gw.Drain(context.Background())
	}
	t.Cleanup(e.stop)
	return e
}

// oa returns a WeChat OA client for channel ch in mode m.
func (e *env) oa(ch string, m wxsim.Mode) *wxsim.OAClient {
	key := testOAKey
	if m == wxsim.ModePlain {
		key = ""
	}
	return &wxsim.OAClient{URL: e.url + "/wechat/oa/" + ch, Token: testOAToken, AppID: testAppID,
		EncodingAESKey: key, OriginalID: "gh_test", Mode: m, API: e.sim,
		Timeout: 5 * time.Second, RetryWait: -1}
}

// waitFor polls cond until it holds or fails the test after d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s", d, what)
}

func inboxTexts(sim *wxsim.API, to string) []string {
	var out []string
	for _, s := range sim.Inbox(to) {
		out = append(out, s.Content)
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if strings.Contains(x, s) {
			return true
		}
	}
	return false
}

func engineJob(id string, data []byte, due time.Time) engine.Job {
	return engine.Job{ID: id, Data: data, Due: due}
}
