package bench

import (
	"fmt"
	"strings"
	"time"
)

// kefuConfig is the one kefu config that `kefu bench` and the kill -9 test
// (crash_test.go) run kefu with, so the two cannot drift apart: like
// configs/kefu.yaml's development setup, with the demo OA channel on the
// simulator's credentials (gen.go) in safe mode, the sample KB, and JSON
// logs at info. Zero fields are left out of the file, so kefu's defaults
// apply to them.
type kefuConfig struct {
	Listen  string // "" = 127.0.0.1:0
	DataDir string
	// RedisAddr selects the Redis engine ("" = embedded); RedisPrefix
	// namespaces the run's keys on it.
	RedisAddr, RedisPrefix string
	SimURL                 string // WeChat API base (OA and WeCom)
	KB                     string

	PassiveBudget   time.Duration
	TimestampWindow time.Duration
	RecoveryAfter   time.Duration
	// OutboundBaseBackoff and OutboundMaxBackoff bound send retries.
	OutboundBaseBackoff, OutboundMaxBackoff time.Duration
}

// YAML renders c as a kefu config file.
func (c kefuConfig) YAML() string {
	var b strings.Builder
	line := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	listen := c.Listen
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	line("# Written by kefu bench.")
	line("listen: %s", listen)
	line("data_dir: %q", c.DataDir)
	if c.RedisAddr != "" {
		line("redis:\n  addr: %q\n  prefix: %q", c.RedisAddr, c.RedisPrefix)
	}
	line("wechat:\n  api_base: %q\n  wecom_api_base: %q", c.SimURL, c.SimURL)
	line(`channels:
  - name: demo
    type: wechat_oa
    app_id: %s
    app_secret: %s
    token: %s
    encoding_aes_key: %s
    store: store-001`, oaAppID, oaSecret, oaToken, oaAESKey)
	// Only what is set is written (kefu's defaults apply to the rest),
	// and no gateway section at all when nothing in it is set.
	var gw []string
	dur := func(indent, key string, d time.Duration) {
		if d != 0 {
			gw = append(gw, fmt.Sprintf("%s%s: %s", indent, key, d))
		}
	}
	dur("  ", "passive_budget", c.PassiveBudget)
	dur("  ", "timestamp_window", c.TimestampWindow)
	dur("  ", "recovery_after", c.RecoveryAfter)
	if c.OutboundBaseBackoff != 0 || c.OutboundMaxBackoff != 0 {
		gw = append(gw, "  outbound:")
		dur("    ", "base_backoff", c.OutboundBaseBackoff)
		dur("    ", "max_backoff", c.OutboundMaxBackoff)
	}
	if len(gw) > 0 {
		line("gateway:\n%s", strings.Join(gw, "\n"))
	}
	line("bot:\n  kb: %q", c.KB)
	line("log:\n  level: info\n  format: json")
	return b.String()
}
