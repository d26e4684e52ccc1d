// Package bench is `kefu bench`: a load generator that measures kefu's
// WeChat Official Account ingress against a ceiling and against the
// obvious alternative, side by side in one run with one generator.
//
// Targets (each in its own child process, see child.go):
//
//	ceiling        bare fasthttp answering "success"
//	silenceper     silenceper/wechat's officialaccount server on net/http:
//	               verify, decrypt, reply with an encrypted text
//	kefu-embedded  kefu (app.Build + App.Serve) on the embedded engine,
//	               bot answering from the sample knowledge base
//	kefu-redis     the same on the Redis engine (a redis-server it starts)
//
// The generator sends safe-mode encrypted OA text messages with unique
// MsgIds in a closed loop over -conns connections. Every push is built
// before the first target is measured, so during runs the generator only
// does HTTP, identically for every target. With -dup every push is sent
// four times (WeChat's original plus three retries, the second one while
// the first is still in flight) and the run checks that each MsgId was
// handled exactly once. docs/BENCHMARKS.md records results.
package bench

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"

	"kefu/engine"
	"kefu/internal/testredis"
	"kefu/wxsim"
)

// Target names, in the order they run.
const (
	TargetCeiling      = "ceiling"
	TargetSilenceper   = "silenceper"
	TargetKefuEmbedded = "kefu-embedded"
	TargetKefuRedis    = "kefu-redis"
	// Diagnostic targets, not run by default: kefu's gateway and engine
	// with a fixed-answer handler instead of the app's router.
	TargetGatewayEmbedded = "gateway-embedded"
	TargetGatewayRedis    = "gateway-redis"
)

// defaultTargets run unless -targets says otherwise; allTargets are valid.
var (
	defaultTargets = []string{TargetCeiling, TargetSilenceper, TargetKefuEmbedded, TargetKefuRedis}
	allTargets     = append(slices.Clone(defaultTargets), TargetGatewayEmbedded, TargetGatewayRedis)
)

// The issue-2 bar.
const (
	barVsCeiling      = 0.5
	barVsSilenceper   = 1.5
	barRedisVsCeiling = 0.35
	barP99Millis      = 10.0
	barRSSBytes       = 150 << 20
)

// options are the parsed flags.
type options struct {
	duration, warmup time.Duration
	conns            int
	targets          []string
	json             bool
	cpuprofile       string
	memprofile       string
	dup              bool
	users            int
	pool             int
	kb               string
	redisAddr        string
	keep             bool
	encrypt          bool
	workRoot         string
	// rate > 0 makes the load an open loop at that many requests a second
	// (latency counted from each request's scheduled time); 0 is the
	// closed loop at full speed.
	rate float64
}

// Result is one target's measurement (the -json output is a list of them).
type Result struct {
	Target   string  `json:"target"`
	ReqPerS  float64 `json:"req_per_s"`
	Requests uint64  `json:"requests"`
	P50Ms    float64 `json:"p50_ms"`
	P99Ms    float64 `json:"p99_ms"`
	P999Ms   float64 `json:"p999_ms"`
	MaxMs    float64 `json:"max_ms"`
	Errors   uint64  `json:"errors"`
	Non200   uint64  `json:"non_200"`
	// Passive counts 200s carrying a passive XML reply; Acks "success"/empty.
	Passive uint64 `json:"passive_replies"`
	Acks    uint64 `json:"acks"`
	// BadReplies counts sampled reply bodies WeChat would reject.
	BadReplies int `json:"bad_replies"`
	Sampled    int `json:"sampled_replies"`
	// ServerCPU is the target process's CPU use in cores over the window.
	ServerCPU float64 `json:"server_cpu_cores"`
	// ServerCPUPerReq is the target's CPU time per request in µs: what a
	// request costs the server, the number least disturbed by other load
	// on the machine.
	ServerCPUPerReq float64 `json:"server_cpu_us_per_req"`
	// OtherCPU is the rest of the machine's CPU use in cores over the
	// window (redis-server, other processes).
	OtherCPU float64 `json:"other_cpu_cores"`
	// GenCPUPerReq is the generator's CPU time per request in µs.
	GenCPUPerReq float64 `json:"gen_cpu_us_per_req"`
	// AllocKBPerReq is the heap the target allocated per request, in KiB,
	// and GCPerS its garbage-collection cycles per second, both over the
	// window: allocation drives the collector's work, and unlike req/s it
	// hardly varies from run to run.
	AllocKBPerReq float64 `json:"alloc_kb_per_req"`
	GCPerS        float64 `json:"gc_cycles_per_s"`
	// WALFramesPerReq, FsyncsPerS and FramesPerFsync describe the embedded
	// engine's write-ahead log over the window (kefu-embedded only).
	WALFramesPerReq float64 `json:"wal_frames_per_req,omitempty"`
	FsyncsPerS      float64 `json:"fsyncs_per_s,omitempty"`
	FramesPerFsync  float64 `json:"frames_per_fsync,omitempty"`
	// CommitP50Ms and CommitP99Ms bound the WAL group commits' (write +
	// fsync) median and 99th percentile over the window: the upper edge of
	// the engine's histogram bucket holding them (engine.CommitBounds; -1
	// beyond the last). CommitsOver8msPerS counts the slow ones: each
	// holds up every passive reply waiting for it.
	CommitP50Ms        float64 `json:"wal_commit_p50_ms,omitempty"`
	CommitP99Ms        float64 `json:"wal_commit_p99_ms,omitempty"`
	CommitsOver8msPerS float64 `json:"wal_commits_over_8ms_per_s,omitempty"`
	// RedisCmdsPerReq is Redis commands processed per request, counting
	// those run inside Lua scripts; RedisScriptsPerReq the script calls
	// (EVALSHA/EVAL) among the round trips (Redis targets).
	RedisCmdsPerReq    float64 `json:"redis_cmds_per_req,omitempty"`
	RedisScriptsPerReq float64 `json:"redis_scripts_per_req,omitempty"`
	// RSS is the target's resident memory at the end of the window and
	// PeakRSS its high-water mark (VmHWM) over its whole life.
	RSS     int64 `json:"rss_bytes"`
	PeakRSS int64 `json:"peak_rss_bytes"`
	// RSSFile is the file-backed part of RSS at the end of the window:
	// the executable's pages (the same binary for every target, ≈23 MB
	// once its packages have initialised), not memory the server allocated.
	RSSFile int64   `json:"rss_file_bytes"`
	Seconds float64 `json:"seconds"`
	// Exhausted is set when the request pool ran out early (kefu targets
	// never reuse a MsgId); the rate is over the shorter window.
	Exhausted bool `json:"pool_exhausted,omitempty"`
	// ShutdownSeconds is how long the target took to exit after SIGTERM
	// (kefu drains accepted work and flushes its event buffer);
	// ShutdownKilled is set when it was killed after stopTimeout.
	ShutdownSeconds float64 `json:"shutdown_s"`
	ShutdownKilled  bool    `json:"shutdown_killed,omitempty"`
	// Dup is the duplicate check's outcome (-dup).
	Dup *DupReport `json:"dup,omitempty"`
	// FirstError is the first transport error or non-200 answer, if any.
	FirstError string `json:"first_error,omitempty"`
	// Profile is the CPU profile written for this target (-cpuprofile).
	Profile string `json:"cpu_profile,omitempty"`
	// Heap is the heap profile written for this target (-memprofile).
	Heap string `json:"heap_profile,omitempty"`
}

// Run is `kefu bench`. It returns the process exit code: 0 when every
// requested run completed (and, with -dup, every check passed), 1 on
// failure, 2 on bad usage. It does not fail when the bar is missed: it
// reports it.
func Run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	var targets string
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "measured time per target")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured load before each measurement")
	fs.IntVar(&o.conns, "conns", 64, "concurrent connections (closed loop; with -rate, the most requests in flight)")
	fs.Float64Var(&o.rate, "rate", 0, "open loop: send this many requests a second on a fixed schedule and count latency from each request's scheduled time, so a stalled server is not flattered (0: closed loop at full speed)")
	fs.StringVar(&targets, "targets", strings.Join(defaultTargets, ","), "comma-separated targets: "+strings.Join(allTargets, ", ")+" (gateway-*: diagnostic, fixed-answer handler)")
	fs.BoolVar(&o.json, "json", false, "print results as JSON")
	fs.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of each kefu target to PREFIX.<target>.pprof")
	fs.StringVar(&o.memprofile, "memprofile", "", "write a heap profile of each kefu target, taken when it is told to stop (after the load), to PREFIX.<target>.heap")
	fs.BoolVar(&o.dup, "dup", false, "send every message 4 times (WeChat retries) and check each MsgId is answered exactly once")
	fs.IntVar(&o.users, "users", 10000, "distinct customers (openids) in the load; -dup uses one per message")
	fs.IntVar(&o.pool, "pool", 0, "pre-built pushes (0: enough for 30k req/s)")
	fs.StringVar(&o.kb, "kb", "configs/kb.sample.jsonl", "knowledge base for kefu's bot")
	fs.StringVar(&o.redisAddr, "redis-addr", "", "use this Redis for kefu-redis instead of starting redis-server (keys go under a fresh prefix)")
	fs.BoolVar(&o.encrypt, "encrypt", false, "build (encrypt, sign) every push while sending instead of from the pre-built pool: a costlier generator, as in the issue's reference numbers")
	fs.StringVar(&o.workRoot, "workdir", "", "create the work directory (kefu's data_dir) under this directory (default the system temp dir; /dev/shm makes fsync free: a diagnostic, not a production setting)")
	fs.BoolVar(&o.keep, "keep", false, "keep the work directory (configs, logs, data)")
	// Internal: the child-process side of a target.
	childKind := fs.String("child", "", "internal: serve one target (ceiling, silenceper, kefu) in this process")
	childCfg := fs.String("c", "", "internal: kefu config for -child kefu")
	childListen := fs.String("listen", "", "internal: listen address for -child (default a free loopback port)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *childKind != "" {
		return runChild(*childKind, *childCfg, *childListen, o.cpuprofile, o.memprofile, stdout, stderr)
	}
	for _, t := range strings.Split(targets, ",") {
		t = strings.TrimSpace(t)
		if t == "" {
			continue
		}
		if !slices.Contains(allTargets, t) {
			fmt.Fprintf(stderr, "kefu bench: unknown target %q (want %s)\n", t, strings.Join(allTargets, ", "))
			return 2
		}
		o.targets = append(o.targets, t)
	}
	if o.encrypt && o.dup {
		fmt.Fprintln(stderr, "kefu bench: -encrypt and -dup do not combine (the duplicate check resends pooled pushes)")
		return 2
	}
	if len(o.targets) == 0 || o.conns < 1 || o.duration <= 0 || o.warmup < 0 || o.users < 1 || o.rate < 0 {
		fmt.Fprintln(stderr, "kefu bench: need targets, -conns ≥ 1, -duration > 0, -warmup ≥ 0, -users ≥ 1, -rate ≥ 0")
		return 2
	}
	if o.rate > 0 && o.dup {
		fmt.Fprintln(stderr, "kefu bench: -rate and -dup do not combine (the duplicate check sends each push's copies back to back)")
		return 2
	}
	results, err := run(o, stderr)
	if len(results) > 0 {
		if o.json {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			_ = enc.Encode(results)
		} else {
			report(stdout, o, results)
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "kefu bench:", err)
		return 1
	}
	for _, r := range results {
		if r.Dup != nil && !r.Dup.OK() {
			return 1
		}
	}
	return 0
}

func run(o options, logw io.Writer) ([]Result, error) {
	logf := func(format string, a ...any) { fmt.Fprintf(logw, "bench: "+format+"\n", a...) }
	kb, err := findFile(o.kb)
	if err != nil {
		return nil, fmt.Errorf("-kb: %w", err)
	}
	work, err := os.MkdirTemp(o.workRoot, "kefu-bench-")
	if err != nil {
		return nil, err
	}
	if o.keep {
		logf("work directory %s", work)
	} else {
		defer os.RemoveAll(work)
	}

	// The WeChat API side: kefu answers passively within the budget, so it
	// is only called if an answer misses the passive budget.
	sim := wxsim.NewAPI(wxsim.APIOptions{OA: []wxsim.OAApp{{AppID: oaAppID, Secret: oaSecret, OriginalID: oaGhID}}})
	simURL := sim.Start()
	defer sim.Close()

	copies := 1
	if o.dup {
		copies = 4
	}
	n := o.pool
	if o.encrypt {
		n = 1 // unused: pushes are built while sending
	} else if n <= 0 {
		n = int((o.warmup+o.duration).Seconds()*30000) / copies
	}
	users := o.users
	if o.dup {
		// One customer per message: an answer that went through the API
		// lands in that customer's simulator inbox, so it maps back to
		// exactly one MsgId.
		users = n
	}
	t0 := time.Now()
	pool, err := buildPool(n, users)
	if err != nil {
		return nil, err
	}
	logf("built %d pushes (%d customers) in %s", n, min(users, n), time.Since(t0).Round(time.Millisecond))
	if o.dup {
		// Open every customer's send window, as their message would.
		now := sim.Now()
		for i := range pool {
			sim.UserInteracted(oaAppID, pool[i].openID, wxsim.InteractMessage, now)
		}
	}

	var results []Result
	for _, t := range o.targets {
		logf("target %s: warm-up %s, measure %s, %d connections", t, o.warmup, o.duration, o.conns)
		r, err := runTarget(t, o, work, kb, simURL, sim, pool, copies)
		if err != nil {
			return results, fmt.Errorf("%s: %w", t, err)
		}
		results = append(results, *r)
	}
	return results, nil
}

// runTarget starts one target, loads it and collects its numbers.
func runTarget(t string, o options, work, kb, simURL string, sim *wxsim.API, pool []callback, copies int) (*Result, error) {
	dir := filepath.Join(work, t)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	kind, cfgPath, profile, heap := t, "", "", ""
	var redisAddr, prefix string
	switch t {
	case TargetKefuEmbedded, TargetKefuRedis, TargetGatewayEmbedded, TargetGatewayRedis:
		kind = "kefu"
		if t == TargetGatewayEmbedded || t == TargetGatewayRedis {
			kind = "gateway"
		}
		if t == TargetKefuRedis || t == TargetGatewayRedis {
			redisAddr = o.redisAddr
			if redisAddr == "" {
				srv, err := testredis.Launch()
				if err != nil {
					return nil, err
				}
				defer srv.Stop()
				redisAddr = srv.Addr
			}
		}
		cfgPath = filepath.Join(dir, "kefu.yaml")
		// A fresh prefix keeps runs apart on a shared -redis-addr server.
		prefix = fmt.Sprintf("kefu-bench-%d:", time.Now().UnixNano())
		cfg := kefuConfig{DataDir: dir, RedisAddr: redisAddr, RedisPrefix: prefix, SimURL: simURL, KB: kb,
			PassiveBudget: 3 * time.Second,
			// The pushes are signed once, before the first target runs; a
			// long run must not age them out. Checking the timestamp costs
			// the same either way.
			TimestampWindow: 24 * time.Hour}
		if err := os.WriteFile(cfgPath, []byte(cfg.YAML()), 0o644); err != nil {
			return nil, err
		}
		if o.cpuprofile != "" {
			profile = o.cpuprofile + "." + t + ".pprof"
		}
		if o.memprofile != "" {
			heap = o.memprofile + "." + t + ".heap"
		}
	}
	c, err := startChild(kind, cfgPath, profile, heap, filepath.Join(dir, "server.log"))
	if err != nil {
		return nil, err
	}
	stopped := false
	defer func() {
		if !stopped {
			c.stop()
		}
	}()
	var res *Result
	stop := func() {
		d, killed := c.stop()
		stopped = true
		res.ShutdownSeconds, res.ShutdownKilled = d.Seconds(), killed
	}
	pid := c.cmd.Process.Pid
	var cpu0, mach0 time.Duration
	var st0 childStats
	var haveStats bool
	var redisCmds0 redisCounts
	var rc *redis.Client
	if redisAddr != "" {
		rc = redis.NewClient(&redis.Options{Addr: redisAddr})
		defer rc.Close()
	}
	spec := loadSpec{
		addr: c.addr, conns: o.conns, warmup: o.warmup, duration: o.duration,
		wrap:        kind != "kefu" && kind != "gateway",
		copies:      copies,
		keep:        o.dup,
		sampleEvery: 997,
		encrypt:     o.encrypt, users: o.users, rate: o.rate,
		onRecord: func() {
			cpu0, mach0 = procCPU(pid), machineCPU()
			st0, haveStats = c.readStats()
			if rc != nil {
				redisCmds0 = redisCommands(rc)
			}
		},
	}
	lr, err := runLoad(pool, spec)
	if err != nil {
		return nil, err
	}
	cpu1, mach1 := procCPU(pid), machineCPU()
	var st1 childStats
	if haveStats {
		st1, haveStats = c.readStats()
	}
	var redisCmds1 redisCounts
	if rc != nil {
		redisCmds1 = redisCommands(rc)
	}
	rss, hwm, rssFile := procMem(pid)
	res = &Result{
		Target: t, Requests: lr.Requests, Seconds: lr.Elapsed.Seconds(),
		ReqPerS: float64(lr.Requests) / lr.Elapsed.Seconds(),
		P50Ms:   lr.lat.quantile(0.50), P99Ms: lr.lat.quantile(0.99), P999Ms: lr.lat.quantile(0.999),
		MaxMs:  float64(lr.lat.max) / 1000,
		Errors: lr.Errors, Non200: lr.Non200, Passive: lr.Passive, Acks: lr.Acks,
		ServerCPU: (cpu1 - cpu0).Seconds() / lr.Elapsed.Seconds(),
		// Everything else that ran: redis-server for kefu-redis, the
		// kernel's network stack outside process time, and other people's
		// work on a shared machine (which is what makes a run noisy).
		OtherCPU: ((mach1 - mach0) - (cpu1 - cpu0) - lr.GenCPU).Seconds() / lr.Elapsed.Seconds(),
		RSS:      rss, PeakRSS: hwm, RSSFile: rssFile, Exhausted: lr.Exhausted, Profile: profile, Heap: heap, FirstError: lr.FirstError,
	}
	if lr.Requests > 0 {
		res.GenCPUPerReq = float64(lr.GenCPU.Microseconds()) / float64(lr.Requests)
		res.ServerCPUPerReq = float64((cpu1 - cpu0).Microseconds()) / float64(lr.Requests)
	}
	res.Sampled, res.BadReplies = checkSamples(lr.samples)
	// The window's counters include the work of requests that started
	// before it and exclude that of requests still in flight at its end;
	// over thousands of requests the difference is noise.
	if haveStats && lr.Requests > 0 {
		res.AllocKBPerReq = float64(st1.alloc-st0.alloc) / 1024 / float64(lr.Requests)
		res.GCPerS = float64(st1.gcs-st0.gcs) / lr.Elapsed.Seconds()
	}
	if haveStats && st0.wal == 1 && st1.wal == 1 && lr.Requests > 0 {
		res.WALFramesPerReq = float64(st1.frames-st0.frames) / float64(lr.Requests)
		res.FsyncsPerS = float64(st1.syncs-st0.syncs) / lr.Elapsed.Seconds()
		if n := st1.syncs - st0.syncs; n > 0 {
			res.FramesPerFsync = float64(st1.frames-st0.frames) / float64(n)
		}
		var window [len(engine.CommitBounds) + 1]uint64
		for i := range window {
			window[i] = st1.commits[i] - st0.commits[i]
		}
		res.CommitP50Ms, res.CommitP99Ms = commitQuantile(window, 0.5), commitQuantile(window, 0.99)
		var slow uint64
		for i, b := range engine.CommitBounds {
			if b > 8*time.Millisecond {
				slow += window[i]
			}
		}
		slow += window[len(engine.CommitBounds)]
		res.CommitsOver8msPerS = float64(slow) / lr.Elapsed.Seconds()
	}
	if rc != nil && lr.Requests > 0 && redisCmds1.commands > redisCmds0.commands {
		// Minus the INFO call itself.
		res.RedisCmdsPerReq = float64(redisCmds1.commands-redisCmds0.commands-1) / float64(lr.Requests)
		res.RedisScriptsPerReq = float64(redisCmds1.scripts-redisCmds0.scripts) / float64(lr.Requests)
	}
	if o.dup && (kind == "kefu" || kind == "gateway") {
		// Let answers that went through the API arrive, then stop kefu so
		// its event log is flushed before we read it.
		waitQuiet(sim, 2*time.Second)
		stop()
		d, err := verifyDup(pool[:lr.sent], lr.kept, sim, eventSource{dataDir: dir, redisAddr: redisAddr, prefix: prefix})
		if err != nil {
			return nil, err
		}
		res.Dup = d
	}
	if !stopped {
		stop()
	}
	return res, nil
}

// commitQuantile returns the upper bound in ms of the commit-duration
// bucket holding quantile q (-1 when it is beyond the last bound, 0 when
// there were no commits).
func commitQuantile(counts [len(engine.CommitBounds) + 1]uint64, q float64) float64 {
	var total uint64
	for _, c := range counts {
		total += c
	}
	if total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(total)))
	var seen uint64
	for i, c := range counts {
		seen += c
		if seen >= rank {
			if i == len(engine.CommitBounds) {
				return -1
			}
			return float64(engine.CommitBounds[i]) / float64(time.Millisecond)
		}
	}
	return -1
}

// redisCounts are Redis's command counters.
type redisCounts struct {
	commands int64 // total_commands_processed: includes commands run inside Lua scripts
	scripts  int64 // EVALSHA and EVAL calls: one round trip each
}

// redisCommands reads the command counters from INFO.
func redisCommands(rc *redis.Client) redisCounts {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var c redisCounts
	info, err := rc.Info(ctx, "stats", "commandstats").Result()
	if err != nil {
		return c
	}
	for _, line := range strings.Split(info, "\n") {
		line = strings.TrimSpace(line)
		if v, ok := strings.CutPrefix(line, "total_commands_processed:"); ok {
			c.commands, _ = strconv.ParseInt(v, 10, 64)
		}
		for _, p := range []string{"cmdstat_evalsha:calls=", "cmdstat_eval:calls="} {
			if v, ok := strings.CutPrefix(line, p); ok {
				v, _, _ = strings.Cut(v, ",")
				n, _ := strconv.ParseInt(v, 10, 64)
				c.scripts += n
			}
		}
	}
	return c
}

// findFile resolves path, also looking in parent directories (tests run in
// the package directory, the KB lives at the repository root).
func findFile(path string) (string, error) {
	if filepath.IsAbs(path) {
		_, err := os.Stat(path)
		return path, err
	}
	dir, _ := os.Getwd()
	for {
		p := filepath.Join(dir, path)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("%s not found in the working directory or its parents", path)
		}
		dir = parent
	}
}

// checkSamples decodes sampled response bodies as WeChat would.
func checkSamples(samples []sample) (n, bad int) {
	c := oaClient("http://bench.invalid" + oaPath)
	for _, s := range samples {
		n++
		if _, err := c.DecodeReply(s.openID, s.body); err != nil {
			bad++
		}
	}
	return n, bad
}

// waitQuiet waits until the simulator has seen no API call for quiet.
func waitQuiet(sim *wxsim.API, quiet time.Duration) {
	last, since := -1, time.Now()
	for time.Since(since) < quiet {
		if n := len(sim.Calls("")); n != last {
			last, since = n, time.Now()
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// commitBound renders a commit-duration bucket bound.
func commitBound(ms float64) string {
	if ms < 0 {
		return fmt.Sprintf("> %g ms", float64(engine.CommitBounds[len(engine.CommitBounds)-1])/float64(time.Millisecond))
	}
	return fmt.Sprintf("≤ %g ms", ms)
}

func report(w io.Writer, o options, rs []Result) {
	mode := "unique MsgIds, pre-built"
	if o.encrypt {
		mode = "unique MsgIds, encrypted while sending (-encrypt)"
	}
	if o.dup {
		mode = "each MsgId sent 4× (duplicate check)"
	}
	if o.rate > 0 {
		mode += fmt.Sprintf(", open loop at %.0f req/s (latency from the scheduled send time)", o.rate)
	}
	fmt.Fprintf(w, "kefu bench: %d connections, warm-up %s, %s per target, safe-mode OA text pushes, %s\n\n", o.conns, o.warmup, o.duration, mode)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "target\treq/s\tp50 ms\tp99 ms\tp999 ms\tmax ms\terrors\tnon-200\tpassive\tbad replies\tserver CPU\tserver µs/req\tother CPU\tgen µs/req\talloc KB/req\tGCs/s\tRSS MB\tpeak RSS MB\tof it file MB\t")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%.0f\t%.2f\t%.2f\t%.2f\t%.1f\t%d\t%d\t%d\t%d/%d\t%.2f\t%.0f\t%.2f\t%.1f\t%.2f\t%.1f\t%.1f\t%.1f\t%.1f\t\n",
			r.Target, r.ReqPerS, r.P50Ms, r.P99Ms, r.P999Ms, r.MaxMs, r.Errors, r.Non200, r.Passive, r.BadReplies, r.Sampled,
			r.ServerCPU, r.ServerCPUPerReq, r.OtherCPU, r.GenCPUPerReq, r.AllocKBPerReq, r.GCPerS, mb(r.RSS), mb(r.PeakRSS), mb(r.RSSFile))
	}
	_ = tw.Flush()
	for _, r := range rs {
		if r.Exhausted {
			fmt.Fprintf(w, "note: %s used up the request pool after %.1fs (raise -pool)\n", r.Target, r.Seconds)
		}
		if r.FsyncsPerS > 0 {
			fmt.Fprintf(w, "%s engine: %.1f WAL records per request, %.0f fsyncs/s, %.1f records per fsync (group commit); commits (write+fsync) p50 %s, p99 %s, %.1f/s over 8 ms\n",
				r.Target, r.WALFramesPerReq, r.FsyncsPerS, r.FramesPerFsync, commitBound(r.CommitP50Ms), commitBound(r.CommitP99Ms), r.CommitsOver8msPerS)
		}
		if r.RedisCmdsPerReq > 0 {
			fmt.Fprintf(w, "%s engine: %.1f Redis commands per request (%.1f of them Lua script calls, whose inner commands are counted too)\n", r.Target, r.RedisCmdsPerReq, r.RedisScriptsPerReq)
		}
		if r.ShutdownKilled {
			fmt.Fprintf(w, "note: %s did not exit within %s of SIGTERM and was killed\n", r.Target, stopTimeout)
		} else if r.ShutdownSeconds > 5 {
			fmt.Fprintf(w, "note: %s took %.1fs to exit after SIGTERM\n", r.Target, r.ShutdownSeconds)
		}
		if r.FirstError != "" {
			fmt.Fprintf(w, "note: first error on %s: %s\n", r.Target, r.FirstError)
		}
		if r.Profile != "" {
			fmt.Fprintf(w, "CPU profile of %s: %s (go tool pprof -top %s)\n", r.Target, r.Profile, r.Profile)
		}
	}
	fmt.Fprintln(w)
	for _, line := range barLines(rs) {
		fmt.Fprintln(w, line)
	}
	for _, r := range rs {
		if r.Dup != nil {
			fmt.Fprintf(w, "\nduplicate check %s: %s\n", r.Target, r.Dup)
		}
	}
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }

// barLines states every ratio the issue asks for and whether the bar is met.
func barLines(rs []Result) []string {
	get := func(t string) *Result {
		for i := range rs {
			if rs[i].Target == t {
				return &rs[i]
			}
		}
		return nil
	}
	ok := func(b bool) string {
		if b {
			return "MET"
		}
		return "MISSED"
	}
	var out []string
	ceil, sil, emb, red := get(TargetCeiling), get(TargetSilenceper), get(TargetKefuEmbedded), get(TargetKefuRedis)
	if emb != nil && ceil != nil {
		x := emb.ReqPerS / ceil.ReqPerS
		out = append(out, fmt.Sprintf("kefu-embedded / ceiling    = %.2f  (bar ≥ %.2f)  %s", x, barVsCeiling, ok(x >= barVsCeiling)))
	}
	if emb != nil && sil != nil {
		x := emb.ReqPerS / sil.ReqPerS
		out = append(out, fmt.Sprintf("kefu-embedded / silenceper = %.2f  (bar ≥ %.2f)  %s", x, barVsSilenceper, ok(x >= barVsSilenceper)))
	}
	if red != nil && ceil != nil {
		x := red.ReqPerS / ceil.ReqPerS
		out = append(out, fmt.Sprintf("kefu-redis / ceiling       = %.2f  (bar ≥ %.2f)  %s", x, barRedisVsCeiling, ok(x >= barRedisVsCeiling)))
	}
	for _, r := range []*Result{emb, red} {
		if r == nil {
			continue
		}
		if r.Target == TargetKefuEmbedded {
			out = append(out, fmt.Sprintf("%s p99 ack       = %.2f ms (bar ≤ %.0f ms) %s", r.Target, r.P99Ms, barP99Millis, ok(r.P99Ms <= barP99Millis)))
		}
		out = append(out, fmt.Sprintf("%s peak RSS%s = %.1f MB (bar ≤ %d MB) %s", r.Target, strings.Repeat(" ", 13-len(r.Target)), mb(r.PeakRSS), barRSSBytes>>20, ok(r.PeakRSS <= barRSSBytes)))
		out = append(out, fmt.Sprintf("%s errors+non-200 = %d %s", r.Target, r.Errors+r.Non200, ok(r.Errors+r.Non200 == 0)))
	}
	return out
}
