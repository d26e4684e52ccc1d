// Package app is kefu's composition root: it loads the config, chooses the
// engine, builds the domains, wires their hooks, runs the services under
// one errgroup and shuts down in order. Nothing else imports across domains.
package app

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"kefu/bot"
	"kefu/console"
	"kefu/conv"
	"kefu/engine"
	"kefu/gateway"
	"kefu/handoff"
	"kefu/report"
	"kefu/surveys"
)

// Config is the whole kefu configuration file. The top-level keys listen,
// data_dir, redis, wechat, channels and bot are a contract shared with
// deployments and external tests.
type Config struct {
	Listen   string                  `yaml:"listen"`
	DataDir  string                  `yaml:"data_dir"`
	Redis    RedisConfig             `yaml:"redis"`
	WeChat   WeChatConfig            `yaml:"wechat"`
	Channels []gateway.ChannelConfig `yaml:"channels"`
	Gateway  gateway.Config          `yaml:"gateway"`
	Bot      bot.Config              `yaml:"bot"`
	Messages MessagesConfig          `yaml:"messages"`
	// Stores is the brand → region → store tree with managers, hours and
	// holidays; queues, surveys, cases and reports follow it.
	Stores  conv.StoreNode `yaml:"stores"`
	Handoff handoff.Config `yaml:"handoff"`
	Console console.Config `yaml:"console"`
	Surveys surveys.Config `yaml:"surveys"`
	Report  report.Config  `yaml:"report"`
	Log     LogConfig      `yaml:"log"`
	Admin   AdminConfig    `yaml:"admin"`
	Runtime RuntimeConfig  `yaml:"runtime"`
	// Embedded tunes the embedded engine (unused with Redis).
	Embedded EmbeddedConfig `yaml:"embedded"`
	// Simulator starts the built-in WeChat API simulator (development and
	// `make run` only; never in production).
	Simulator SimulatorConfig `yaml:"simulator"`
}

// RedisConfig selects the Redis engine. Empty Addr means the embedded engine.
type RedisConfig struct {
	// Addr is "host:port", or several comma-separated seed nodes of a cluster.
	Addr     string `yaml:"addr"`
	Password string `yaml:"password"`
	DB       int    `yaml:"db"`
	// Cluster forces the cluster client even with one seed address.
	Cluster bool `yaml:"cluster"`
	// SentinelMaster names the master group to ask Redis Sentinel for; Addr
	// then lists the sentinels ("host:port,host:port"), and the client
	// follows failovers to the promoted replica.
	SentinelMaster string `yaml:"sentinel_master"`
	// SentinelPassword authenticates to the sentinels (Password is the
	// data nodes').
	SentinelPassword string `yaml:"sentinel_password"`
	// Prefix namespaces every key (several kefu deployments on one Redis).
	Prefix string `yaml:"prefix"`
}

// WeChatConfig holds the API base URLs (pointed at the simulator in tests).
type WeChatConfig struct {
	APIBase      string `yaml:"api_base"`
	WeComAPIBase string `yaml:"wecom_api_base"`
}

// MessagesConfig holds the router's own customer-facing texts (Chinese
// by default); the bot's texts live under bot.texts.
type MessagesConfig struct {
	// Welcome is sent when a customer follows the account ("" = none).
	Welcome string `yaml:"welcome"`
	// NonText answers images, voice without recognition, locations….
	NonText string `yaml:"non_text"`
}

// LogConfig configures structured logs.
type LogConfig struct {
	Level  string `yaml:"level"`  // debug | info | warn | error
	Format string `yaml:"format"` // json | text
}

// AdminConfig guards operator endpoints.
type AdminConfig struct {
	// Token is the bearer token of /admin endpoints ("" disables them).
	Token string `yaml:"token"`
}

// EmbeddedConfig tunes the embedded engine.
type EmbeddedConfig struct {
	// CommitGather bounds how long a group commit waits for more writes
	// when writers are concurrent (one fsync for more of them): it waits
	// until as many as the last commit carried are pending, or this long.
	// 0 turns it off; a lone writer is never delayed.
	CommitGather time.Duration `yaml:"commit_gather"`
	// StringSpillMiB: after every this many MiB of string values written
	// (dedupe records, transcripts, survey contacts), the strings nobody
	// read or overwrote since the scan before move to cold files on disk,
	// so memory holds about twice this of recent strings instead of every
	// string kept. 0 keeps every string in memory.
	StringSpillMiB int `yaml:"string_spill_mib"`
	// LogMemoryMiB is how much record data each log (events, bot journal,
	// survey records) keeps in memory; older records move to cold files.
	// 0 keeps every record in memory.
	LogMemoryMiB int `yaml:"log_memory_mib"`
}

// Options are the engine options this config asks for.
func (c EmbeddedConfig) Options() engine.EmbeddedOptions {
	// EmbeddedOptions: 0 means the default, negative off.
	off := func(v int64) int64 {
		if v == 0 {
			return -1
		}
		return v
	}
	return engine.EmbeddedOptions{
		CommitGather:     time.Duration(off(int64(c.CommitGather))),
		StringSpillBytes: off(int64(c.StringSpillMiB) << 20),
		LogMemoryBytes:   off(int64(c.LogMemoryMiB) << 20),
	}
}

// RuntimeConfig tunes the Go runtime of `kefu serve`.
type RuntimeConfig struct {
	// MemoryLimitMiB is a soft limit for the Go heap (like GOMEMLIMIT, which
	// wins when set): the garbage collector works harder as the heap nears
	// it instead of letting it grow to twice the live data. Set it a little
	// under the container's memory limit. 0 leaves the runtime's default.
	MemoryLimitMiB int `yaml:"memory_limit_mib"`
	// GCPercent is the garbage collector's growth target (like GOGC, which
	// wins when set): the heap may grow by this percentage of the live
	// data before a collection. Lower trades CPU for a smaller peak
	// resident set. Default 50: with the embedded engine's spill defaults
	// it holds kefu under 150 MB at full load for ≈3 % of the throughput
	// (docs/BENCHMARKS.md). 0 leaves Go's default (100).
	GCPercent int `yaml:"gc_percent"`
	// GCMinHeapMiB is a floor under the collector's heap goal: while the
	// live data is small the heap may grow to this size before a
	// collection, so the collector runs less often; once the live data
	// needs more, GCPercent applies unchanged (internal/gctune). Ignored
	// when GOGC is set. 0 turns it off. Default 72: at full load the
	// embedded kefu then collects ≈6 instead of ≈8 times a second, for
	// ≈8 % less CPU per message and ≈2 MB more peak RSS
	// (docs/BENCHMARKS.md).
	GCMinHeapMiB int `yaml:"gc_min_heap_mib"`
}

// SimulatorConfig runs the WeChat simulator inside the process.
type SimulatorConfig struct {
	Listen string `yaml:"listen"`
}

func defaultBot() bot.Config {
	b := bot.DefaultConfig()
	b.KB = "configs/kb.sample.jsonl"
	return b
}

// DefaultConfig returns the embedded defaults.
func DefaultConfig() Config {
	return Config{
		Listen:   "127.0.0.1:8080",
		DataDir:  "./data",
		Embedded: EmbeddedConfig{CommitGather: engine.DefaultCommitGather, StringSpillMiB: 4, LogMemoryMiB: 2},
		Runtime:  RuntimeConfig{GCPercent: 50, GCMinHeapMiB: 72},
		Redis:    RedisConfig{Prefix: "kefu:"},
		WeChat:   WeChatConfig{APIBase: gateway.DefaultAPIBase, WeComAPIBase: gateway.DefaultWeComAPIBase},
		Gateway:  gateway.DefaultConfig(),
		Bot:      defaultBot(),
		Messages: MessagesConfig{
			Welcome: "您好，欢迎光临！请直接输入您的问题，例如“营业时间”“怎么退货”。需要人工服务请回复“人工”。",
			NonText: "抱歉，目前只能识别文字消息，请用文字描述您的问题；需要人工服务请回复“人工”。",
		},
		Log:     LogConfig{Level: "info", Format: "json"},
		Handoff: handoff.DefaultConfig(),
		Console: console.DefaultConfig(),
		Surveys: surveys.DefaultConfig(),
		Report:  report.DefaultConfig(),
	}
}

// Load reads path (YAML) over the defaults, rejecting unknown keys, then
// applies KEFU_* environment overrides. The result is not yet validated.
func Load(path string, environ []string) (Config, error) {
	cfg := DefaultConfig()
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return cfg, fmt.Errorf("config: %w", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
			return cfg, fmt.Errorf("config %s: %w", path, err)
		}
	}
	if err := applyEnv(&cfg, environ); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// GatewayConfig merges the top-level contract keys into the gateway's config.
func (c Config) GatewayConfig() gateway.Config {
	g := c.Gateway
	g.Listen = c.Listen
	g.APIBase = c.WeChat.APIBase
	g.WeComAPIBase = c.WeChat.WeComAPIBase
	g.Channels = c.Channels
	return g
}

// Validate checks every key; the error lists all problems with key paths.
func (c Config) Validate() error {
	var errs []error
	if c.DataDir == "" && c.Redis.Addr == "" {
		errs = append(errs, errors.New("data_dir: must not be empty with the embedded engine"))
	}
	if c.Embedded.CommitGather < 0 || c.Embedded.CommitGather > 10*time.Millisecond {
		errs = append(errs, fmt.Errorf("embedded.commit_gather: must be between 0 (off) and 10ms, got %s", c.Embedded.CommitGather))
	}
	if c.Embedded.StringSpillMiB < 0 || c.Embedded.StringSpillMiB > 4096 {
		errs = append(errs, fmt.Errorf("embedded.string_spill_mib: must be between 0 (keep every string in memory) and 4096, got %d", c.Embedded.StringSpillMiB))
	}
	if c.Embedded.LogMemoryMiB < 0 || c.Embedded.LogMemoryMiB > 4096 {
		errs = append(errs, fmt.Errorf("embedded.log_memory_mib: must be between 0 (keep every record in memory) and 4096, got %d", c.Embedded.LogMemoryMiB))
	}
	if c.Runtime.GCPercent != 0 && (c.Runtime.GCPercent < 10 || c.Runtime.GCPercent > 1000) {
		errs = append(errs, fmt.Errorf("runtime.gc_percent: must be 0 (runtime default) or 10..1000, got %d", c.Runtime.GCPercent))
	}
	if c.Runtime.GCMinHeapMiB != 0 && (c.Runtime.GCMinHeapMiB < 8 || c.Runtime.GCMinHeapMiB > 65536) {
		errs = append(errs, fmt.Errorf("runtime.gc_min_heap_mib: must be 0 (off) or 8..65536, got %d", c.Runtime.GCMinHeapMiB))
	}
	if c.Runtime.MemoryLimitMiB < 0 || (c.Runtime.MemoryLimitMiB > 0 && c.Runtime.MemoryLimitMiB < 32) {
		errs = append(errs, fmt.Errorf("runtime.memory_limit_mib: must be 0 (off) or at least 32, got %d", c.Runtime.MemoryLimitMiB))
	}
	if c.Redis.SentinelMaster != "" && (c.Redis.Cluster || c.Redis.Addr == "") {
		errs = append(errs, errors.New("redis.sentinel_master: needs redis.addr listing the sentinels, and cannot be combined with redis.cluster"))
	}
	if c.Redis.DB < 0 || c.Redis.DB > 15 {
		errs = append(errs, fmt.Errorf("redis.db: must be in [0, 15], got %d", c.Redis.DB))
	}
	if c.Redis.Cluster && c.Redis.DB != 0 {
		errs = append(errs, errors.New("redis.db: Redis Cluster only has db 0"))
	}
	if err := c.GatewayConfig().Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Bot.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.Bot.KB != "" {
		if _, err := os.Stat(c.Bot.KB); err != nil {
			errs = append(errs, fmt.Errorf("bot.kb: %v", err))
		}
	}
	if _, err := conv.NewStoreTree(c.Stores); err != nil {
		errs = append(errs, err)
	}
	for _, v := range []interface{ Validate() error }{c.Handoff, c.Console, c.Report} {
		if err := v.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	sv := c.Surveys
	if sv.Stores.ID == "" {
		sv.Stores = c.Stores
	}
	if err := sv.Validate(); err != nil {
		errs = append(errs, err)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log.level: must be debug, info, warn or error, got %q", c.Log.Level))
	}
	switch c.Log.Format {
	case "json", "text":
	default:
		errs = append(errs, fmt.Errorf("log.format: must be json or text, got %q", c.Log.Format))
	}
	if c.Admin.Token != "" && len(c.Admin.Token) < 16 {
		errs = append(errs, errors.New("admin.token: must be at least 16 characters"))
	}
	return errors.Join(errs...)
}

// applyEnv sets config keys from KEFU_* variables: the key path in upper
// case joined by "_" (KEFU_REDIS_ADDR, KEFU_GATEWAY_PASSIVE_BUDGET,
// KEFU_CHANNELS_0_TOKEN). An unknown KEFU_ variable is an error, like an
// unknown YAML key, so a typo never goes unnoticed.
func applyEnv(cfg *Config, environ []string) error {
	var errs []error
	for _, kv := range environ {
		name, val, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, "KEFU_") || strings.HasPrefix(name, "KEFU_TEST_") {
			continue
		}
		path := strings.TrimPrefix(name, "KEFU_")
		if err := setPath(reflect.ValueOf(cfg).Elem(), path, val); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// setPath walks v along an upper-case path like "GATEWAY_PASSIVE_BUDGET".
// Field names may contain "_" themselves, so it tries every yaml tag that
// is a prefix of the remaining path.
func setPath(v reflect.Value, path, val string) error {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		return setPath(v.Elem(), path, val)
	case reflect.Struct:
		t := v.Type()
		// Longest tag first so "API_BASE" beats a hypothetical "API".
		type cand struct {
			i   int
			tag string
		}
		var cands []cand
		for i := 0; i < t.NumField(); i++ {
			tag := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]
			if tag == "" || tag == "-" {
				continue
			}
			cands = append(cands, cand{i, strings.ToUpper(tag)})
		}
		sort.Slice(cands, func(a, b int) bool { return len(cands[a].tag) > len(cands[b].tag) })
		for _, c := range cands {
			if path == c.tag {
				return setScalar(v.Field(c.i), val)
			}
			if rest, ok := strings.CutPrefix(path, c.tag+"_"); ok {
				return setPath(v.Field(c.i), rest, val)
			}
		}
		return errors.New("unknown config key")
	case reflect.Slice:
		idx, rest, _ := strings.Cut(path, "_")
		i, err := strconv.Atoi(idx)
		if err != nil || i < 0 || i > 1000 {
			return fmt.Errorf("bad list index %q", idx)
		}
		for v.Len() <= i {
			v.Set(reflect.Append(v, reflect.Zero(v.Type().Elem())))
		}
		if rest == "" {
			return setScalar(v.Index(i), val)
		}
		return setPath(v.Index(i), rest, val)
	case reflect.Map:
		if v.IsNil() {
			v.Set(reflect.MakeMap(v.Type()))
		}
		e := reflect.New(v.Type().Elem()).Elem()
		if err := setScalar(e, val); err != nil {
			return err
		}
		v.SetMapIndex(reflect.ValueOf(strings.ToLower(path)).Convert(v.Type().Key()), e)
		return nil
	}
	return errors.New("unknown config key")
}

func setScalar(v reflect.Value, val string) error {
	if v.Type() == reflect.TypeOf(time.Duration(0)) {
		d, err := time.ParseDuration(val)
		if err != nil {
			return fmt.Errorf("bad duration %q", val)
		}
		v.SetInt(int64(d))
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(val)
	case reflect.Int, reflect.Int64, reflect.Int32:
		n, err := strconv.ParseInt(val, 10, 64)
		if err != nil {
			return fmt.Errorf("bad integer %q", val)
		}
		v.SetInt(n)
	case reflect.Float64, reflect.Float32:
		f, err := strconv.ParseFloat(val, 64)
		if err != nil {
			return fmt.Errorf("bad number %q", val)
		}
		v.SetFloat(f)
	case reflect.Bool:
		b, err := strconv.ParseBool(val)
		if err != nil {
			return fmt.Errorf("bad boolean %q", val)
		}
		v.SetBool(b)
	default:
		return fmt.Errorf("cannot set a %s from the environment", v.Kind())
	}
	return nil
}

// ErrorLines flattens a (joined) error into one line per problem, for
// `kefu checkconfig`.
func ErrorLines(err error) []string {
	var out []string
	var walk func(error)
	walk = func(e error) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range j.Unwrap() {
				walk(x)
			}
			return
		}
		for _, l := range strings.Split(e.Error(), "\n") {
			if strings.TrimSpace(l) != "" {
				out = append(out, l)
			}
		}
	}
	walk(err)
	return out
}
