package bench

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"kefu/app"
)

// The bench's and the crash test's configs are what kefu reads: every key
// known (unknown keys are rejected), the settings as written, and valid.
func TestKefuConfig_LoadsAsWritten(t *testing.T) {
	kb, err := findFile("configs/kb.sample.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, c := range map[string]kefuConfig{
		"bench embedded": {DataDir: dir, SimURL: "http://127.0.0.1:1", KB: kb, PassiveBudget: 3 * time.Second, TimestampWindow: 24 * time.Hour},
		"bench redis": {DataDir: dir, RedisAddr: "127.0.0.1:6399", RedisPrefix: "kefu-bench-1:", SimURL: "http://127.0.0.1:1", KB: kb,
			PassiveBudget: 3 * time.Second, TimestampWindow: 24 * time.Hour},
		"defaults": {DataDir: dir, SimURL: "http://127.0.0.1:1", KB: kb},
		"crash": {Listen: "127.0.0.1:18080", DataDir: filepath.Join(dir, "data"), SimURL: "http://127.0.0.1:1", KB: kb,
			PassiveBudget: time.Nanosecond, RecoveryAfter: 5 * time.Second, OutboundBaseBackoff: 100 * time.Millisecond, OutboundMaxBackoff: time.Second},
	} {
		path := filepath.Join(dir, "kefu.yaml")
		if err := os.WriteFile(path, []byte(c.YAML()), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := app.Load(path, nil)
		if err == nil {
			err = got.Validate()
		}
		if err != nil {
			t.Fatalf("%s: %v\n%s", name, err, c.YAML())
		}
		def := app.DefaultConfig()
		listen := c.Listen
		if listen == "" {
			listen = "127.0.0.1:0"
		}
		orDefault := func(d, def time.Duration) time.Duration {
			if d == 0 {
				return def
			}
			return d
		}
		g := got.Gateway
		if got.Listen != listen || got.DataDir != c.DataDir || got.Redis.Addr != c.RedisAddr || got.WeChat.APIBase != c.SimURL ||
			got.WeChat.WeComAPIBase != c.SimURL || got.Bot.KB != c.KB || len(got.Channels) != 1 || got.Channels[0].AppID != oaAppID ||
			got.Channels[0].Token != oaToken || got.Channels[0].EncodingAESKey != oaAESKey ||
			g.PassiveBudget != orDefault(c.PassiveBudget, def.Gateway.PassiveBudget) ||
			g.TimestampWindow != orDefault(c.TimestampWindow, def.Gateway.TimestampWindow) ||
			g.RecoveryAfter != orDefault(c.RecoveryAfter, def.Gateway.RecoveryAfter) ||
			g.Outbound.BaseBackoff != orDefault(c.OutboundBaseBackoff, def.Gateway.Outbound.BaseBackoff) ||
			g.Outbound.MaxBackoff != orDefault(c.OutboundMaxBackoff, def.Gateway.Outbound.MaxBackoff) {
			t.Errorf("%s: kefu read %+v\nfrom\n%s", name, got, c.YAML())
		}
		if c.RedisAddr != "" && got.Redis.Prefix != c.RedisPrefix {
			t.Errorf("%s: redis prefix %q, want %q", name, got.Redis.Prefix, c.RedisPrefix)
		}
	}
}
