package app

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"kefu/conv"
	"kefu/engine"
	"kefu/internal/gctune"
	"kefu/internal/testnet"
	"kefu/wxsim"
)

// repoRoot finds the repository root (configs/ lives there).
func repoRoot(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

func freeAddr(t *testing.T) string { return testnet.FreeAddr(t) }

// loadSample loads configs/kefu.yaml with a temp data dir and free ports.
func loadSample(t *testing.T) Config {
	t.Helper()
	root := repoRoot(t)
	cfg, err := Load(filepath.Join(root, "configs/kefu.yaml"), nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DataDir = t.TempDir()
	cfg.Bot.KB = filepath.Join(root, "configs/kb.sample.jsonl")
	cfg.Listen = freeAddr(t)
	cfg.Simulator.Listen = freeAddr(t)
	cfg.Console.Listen = freeAddr(t)
	cfg.WeChat.APIBase = "http://" + cfg.Simulator.Listen
	cfg.WeChat.WeComAPIBase = cfg.WeChat.APIBase
	return cfg
}

func startApp(t *testing.T, cfg Config) *App {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	a, err := Build(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	serveApp(t, a)
	return a
}

// serveApp serves a built App on its configured address until the test
// ends, then checks Serve's error and closes the App.
func serveApp(t *testing.T, a *App) {
	t.Helper()
	ln, err := net.Listen("tcp4", a.Cfg.Listen)
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
}

// The sample product answers a FAQ end to end: a WeChat safe-mode push of
// "营业时间是几点" comes back as the passive reply with the KB's answer.
func TestApp_SampleKBAnswersThroughWeChat(t *testing.T) {
	cfg := loadSample(t)
	a := startApp(t, cfg)
	ch := cfg.Channels[0]
	c := &wxsim.OAClient{URL: "http://" + cfg.Listen + "/wechat/oa/" + ch.Name, Token: ch.Token, AppID: ch.AppID,
		EncodingAESKey: ch.EncodingAESKey, OriginalID: "gh_demo", Mode: wxsim.ModeSafe, API: a.Sim, RetryWait: -1}
	d, err := c.SendText(context.Background(), "o_app_test", "你们营业时间是几点", 0)
	if err != nil {
		t.Fatal(err)
	}
	if d.Reply == nil || !strings.Contains(d.Reply.Content, "9:00–22:00") {
		t.Fatalf("reply = %+v", d.Reply)
	}
	// An explicit request for a human reaches the handoff path: the desk
	// queues the customer and tells them their position.
	if _, err := c.SendText(context.Background(), "o_app_test", "转人工", 0); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "queue notice", func() bool { return inboxHas(a, "o_app_test", "人工客服") })
	// Events land in the durable log for reports.
	deadline := time.Now().Add(3 * time.Second)
	for {
		n, _ := a.Engine.LogLen(context.Background(), eventLog)
		if n >= 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("event log has %d events, want ≥4", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestConfig_UnknownKeysAndEnv(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	_ = os.WriteFile(bad, []byte("listen: 127.0.0.1:1\nredis: {adress: x}\n"), 0o600)
	if _, err := Load(bad, nil); err == nil || !strings.Contains(err.Error(), "adress") {
		t.Fatalf("unknown key: %v", err)
	}
	good := filepath.Join(repoRoot(t), "configs/kefu.yaml")
	cfg, err := Load(good, []string{"KEFU_REDIS_ADDR=10.0.0.1:6379", "KEFU_GATEWAY_PASSIVE_BUDGET=2s", "KEFU_CHANNELS_0_TOKEN=newtok", "KEFU_BOT_THRESHOLDS_ANSWER=0.7", "KEFU_EMBEDDED_COMMIT_GATHER=0s", "KEFU_EMBEDDED_STRING_SPILL_MIB=0", "PATH=/bin"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Embedded.CommitGather != 0 {
		t.Fatalf("KEFU_EMBEDDED_COMMIT_GATHER=0s gave %s", cfg.Embedded.CommitGather)
	}
	if o := cfg.Embedded.Options(); o.CommitGather >= 0 || o.StringSpillBytes >= 0 || o.LogMemoryBytes != 2<<20 {
		t.Fatalf("commit_gather 0 and string_spill_mib 0 must turn them off (negative options), log_memory_mib 2 must be 2 MiB: %+v", o)
	}
	if def, _ := Load(good, nil); def.Embedded.CommitGather != engine.DefaultCommitGather {
		t.Fatalf("commit_gather from configs/kefu.yaml = %s, want the default %s", def.Embedded.CommitGather, engine.DefaultCommitGather)
	}
	if cfg.Redis.Addr != "10.0.0.1:6379" || cfg.Gateway.PassiveBudget != 2*time.Second || cfg.Channels[0].Token != "newtok" || cfg.Bot.Answer != 0.7 {
		t.Fatalf("env overrides not applied: %+v %v %q %v", cfg.Redis, cfg.Gateway.PassiveBudget, cfg.Channels[0].Token, cfg.Bot.Answer)
	}
	if _, err := Load(good, []string{"KEFU_REDIS_ADRESS=x"}); err == nil {
		t.Fatal("unknown KEFU_ variable accepted")
	}
	if _, err := Load(good, []string{"KEFU_GATEWAY_PASSIVE_BUDGET=soon"}); err == nil {
		t.Fatal("bad duration accepted")
	}
}

func TestConfig_ValidateExplainsEveryError(t *testing.T) {
	cfg := loadSample(t)
	cfg.Gateway.PassiveBudget = 10 * time.Second
	cfg.Channels[0].EncodingAESKey = "short"
	cfg.Log.Level = "loud"
	cfg.Bot.KB = "/no/such/kb.jsonl"
	cfg.Embedded.CommitGather = time.Second
	cfg.Embedded.LogMemoryMiB = -1
	cfg.Runtime.GCPercent = 5
	cfg.Runtime.GCMinHeapMiB = 4
	err := cfg.Validate()
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	lines := ErrorLines(err)
	for _, want := range []string{"gateway.passive_budget", "channels[0].encoding_aes_key", "log.level", "bot.kb", "embedded.commit_gather", "embedded.log_memory_mib", "runtime.gc_percent", "runtime.gc_min_heap_mib"} {
		found := false
		for _, l := range lines {
			if strings.HasPrefix(l, want) {
				found = true
			}
		}
		if !found {
			t.Errorf("no error line for %s in %q", want, lines)
		}
	}
	if err := loadSample(t).Validate(); err != nil {
		t.Fatalf("sample config invalid: %v", err)
	}
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Health, readiness and Prometheus metrics after some traffic.
func TestApp_OpsEndpoints(t *testing.T) {
	cfg := loadSample(t)
	a := startApp(t, cfg)
	base := "http://" + cfg.Listen
	if st, body := httpGet(t, base+"/healthz"); st != 200 || body != "ok" {
		t.Fatalf("healthz %d %q", st, body)
	}
	if st, _ := httpGet(t, base+"/readyz"); st != 200 {
		t.Fatalf("readyz %d", st)
	}
	ch := cfg.Channels[0]
	c := &wxsim.OAClient{URL: base + "/wechat/oa/" + ch.Name, Token: ch.Token, AppID: ch.AppID,
		EncodingAESKey: ch.EncodingAESKey, Mode: wxsim.ModeSafe, API: a.Sim, RetryWait: -1}
	req, _ := c.BuildOARequest(&wxsim.Message{FromUserName: "o_ops", MsgType: "text", Content: "怎么退货", MsgID: 1})
	for i := 0; i < 2; i++ {
		if _, err := c.Deliver(context.Background(), req); err != nil {
			t.Fatal(err)
		}
	}
	st, body := httpGet(t, base+"/metrics")
	if st != 200 {
		t.Fatalf("metrics %d", st)
	}
	for _, want := range []string{
		`kefu_requests_total{channel="demo",outcome="accepted_replied"} 1`,
		`kefu_requests_total{channel="demo",outcome="duplicate_replied"} 1`,
		`kefu_dedupe_hits_total{channel="demo"} 1`,
		`kefu_ack_seconds_bucket{channel="demo"`,
		`kefu_queue_depth{queue="outbox"}`,
		`kefu_dead_letters 0`,
		`process_resident_memory_bytes`,
		`kefu_engine_wal_syncs_total`,
		`kefu_engine_cold_strings_total`,
		`kefu_engine_wal_commit_seconds_bucket{le="0.001"}`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// Every group commit is in the histogram: the message's writes made
	// some, and the +Inf bucket holds them all.
	count, inf := metricValue(body, "kefu_engine_wal_commit_seconds_count"), metricValue(body, `kefu_engine_wal_commit_seconds_bucket{le="+Inf"}`)
	if count < 1 || inf != count {
		t.Errorf("commit histogram: count %v, +Inf bucket %v", count, inf)
	}
	// Admin endpoints need the token.
	if st, _ := httpGet(t, base+"/admin/deadletters"); st != 401 {
		t.Fatalf("admin without token: %d", st)
	}
}

// SIGTERM drains: an answer still being computed when shutdown starts is
// delivered (through the API) before Serve returns.
func TestApp_GracefulShutdownFinishesAcceptedWork(t *testing.T) {
	cfg := loadSample(t)
	cfg.Gateway.PassiveBudget = 100 * time.Millisecond
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("KEFU_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	a, err := Build(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	slow := &slowStage{d: 800 * time.Millisecond}
	a.Router.stages = append(a.Router.stages, slow)
	ln, _ := net.Listen("tcp4", cfg.Listen)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	ch := cfg.Channels[0]
	c := &wxsim.OAClient{URL: "http://" + cfg.Listen + "/wechat/oa/" + ch.Name, Token: ch.Token, AppID: ch.AppID,
		EncodingAESKey: ch.EncodingAESKey, Mode: wxsim.ModeSafe, API: a.Sim, RetryWait: -1}
	d, err := c.SendText(context.Background(), "o_drain", "慢问题", 0)
	if err != nil || d.Reply != nil {
		t.Fatalf("want a plain ack: %v %+v", err, d)
	}
	cancel() // SIGTERM while the answer is still being computed
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := a.Sim.Inbox("o_drain"); len(got) != 1 || got[0].Content != "slow answer" {
		t.Fatalf("answer not delivered before shutdown finished: %+v", got)
	}
}

type slowStage struct{ d time.Duration }

func (s *slowStage) Route(ctx context.Context, msg conv.Message) ([]conv.Reply, bool, error) {
	time.Sleep(s.d)
	return []conv.Reply{conv.Text("slow answer")}, true, nil
}

func TestApplyRuntime_GCPercent(t *testing.T) {
	if _, set := os.LookupEnv("GOGC"); set {
		t.Skip("GOGC is set: it wins over runtime.gc_percent by design")
	}
	cfg := loadSample(t)
	cfg.Runtime.GCPercent = 80
	cfg.Runtime.GCMinHeapMiB = 0
	ApplyRuntime(cfg)
	if prev := debug.SetGCPercent(100); prev != 80 {
		t.Fatalf("GC percent after ApplyRuntime = %d, want 80", prev)
	}
	// With a floor far above this test's heap the tuner raises the
	// percent; without one it is the configured value again.
	cfg.Runtime.GCMinHeapMiB = 512
	ApplyRuntime(cfg)
	if p := gctune.Percent(); p <= 80 {
		t.Errorf("percent with a 512 MiB floor = %d, want above 80", p)
	}
	cfg.Runtime.GCMinHeapMiB = 0
	ApplyRuntime(cfg)
	if gctune.Percent() != 0 {
		t.Error("the tuner still runs with gc_min_heap_mib 0")
	}
	if prev := debug.SetGCPercent(100); prev != 80 {
		t.Fatalf("GC percent after turning the floor off = %d, want 80", prev)
	}
}

// metricValue returns the value of the exposition line named name (-1 if
// absent).
func metricValue(body, name string) float64 {
	for _, l := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}
