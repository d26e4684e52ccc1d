package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/silenceper/wechat/v2/cache"
	"github.com/silenceper/wechat/v2/officialaccount"
	oaconfig "github.com/silenceper/wechat/v2/officialaccount/config"
	"github.com/silenceper/wechat/v2/officialaccount/message"
	"github.com/sirupsen/logrus"
	"github.com/valyala/fasthttp"

	"kefu/app"
	"kefu/conv"
	"kefu/engine"
	"kefu/gateway"
)

// Every target runs in its own child process (this binary re-executed as
// `… bench -child KIND`), so that
//   - the generator never shares a Go scheduler, GC or heap with the
//     server it measures, identically for every target;
//   - /proc/<pid>/status gives the server's own RSS, and /proc/<pid>/stat
//     its own CPU time;
//   - a CPU profile (-cpuprofile) shows the server only.
// The kefu child runs exactly what `kefu serve -c FILE` runs (app.Load,
// app.Build, App.Serve), plus the optional profile.

// silenceperAnswer is the fixed text the silenceper target replies with: a
// sample-KB answer of typical length.
const silenceperAnswer = "我们的门店营业时间为每天 9:00–22:00，节假日照常营业。个别门店时间略有不同，请以门店公告为准。"

// runChild serves one target until SIGTERM. It prints "LISTEN host:port"
// on stdout once the listener is open.
func runChild(kind, cfgPath, listen, cpuprofile, memprofile string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if cpuprofile != "" {
		f, err := os.Create(cpuprofile)
		if err != nil {
			fmt.Fprintln(stderr, "bench child:", err)
			return 1
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(stderr, "bench child:", err)
			return 1
		}
		// Stopped as soon as SIGTERM arrives: the profile covers the load,
		// not the shutdown, and survives a child killed for draining slowly.
		stopped := make(chan struct{})
		defer func() { <-stopped }()
		go func() {
			<-ctx.Done()
			pprof.StopCPUProfile()
			_ = f.Close()
			close(stopped)
		}()
	}
	if memprofile != "" {
		// Written when SIGTERM arrives, before the server shuts down: what
		// the heap holds after the load.
		wrote := make(chan struct{})
		defer func() { <-wrote }()
		go func() {
			defer close(wrote)
			<-ctx.Done()
			f, err := os.Create(memprofile)
			if err != nil {
				fmt.Fprintln(stderr, "bench child:", err)
				return
			}
			runtime.GC()
			_ = pprof.WriteHeapProfile(f)
			_ = f.Close()
		}()
	}
	// SIGUSR1 makes a child print its counters — bytes allocated on the
	// heap and GC cycles, and on the embedded engine its WAL counters — so
	// the parent can tell what a measured window cost. Allocation per
	// request is nearly deterministic, unlike req/s on a shared machine,
	// so it shows a change in garbage-collector work at once. Every child
	// installs the handler, so a stray SIGUSR1 never kills one.
	usr := make(chan os.Signal, 1)
	signal.Notify(usr, syscall.SIGUSR1)
	defer signal.Stop(usr)
	go func() {
		for range usr {
			var st childStats
			st.alloc, st.gcs = heapCounters()
			if f := statsFn.Load(); f != nil {
				e := (*f)()
				st.frames, st.batches, st.syncs, st.bytes = e.Frames, e.Batches, e.Syncs, e.WALBytes
				st.commits = e.Commits
				st.wal = 1
			}
			fmt.Fprintln(stdout, "STATS", st.String())
		}
	}()
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp4", listen)
	if err != nil {
		fmt.Fprintln(stderr, "bench child:", err)
		return 1
	}
	announce := func() { fmt.Fprintf(stdout, "LISTEN %s\n", ln.Addr()) }
	switch kind {
	case "ceiling":
		err = serveCeiling(ctx, ln, announce)
	case "silenceper":
		err = serveSilenceper(ctx, ln, announce)
	case "kefu":
		err = serveKefu(ctx, ln, cfgPath, announce)
	case "gateway":
		err = serveGatewayOnly(ctx, ln, cfgPath, announce)
	default:
		err = fmt.Errorf("unknown child kind %q", kind)
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(stderr, "bench child:", err)
		return 1
	}
	return 0
}

// serveCeiling is the ceiling: fasthttp configured like kefu's server,
// answering "success" without looking at the request.
func serveCeiling(ctx context.Context, ln net.Listener, announce func()) error {
	srv := &fasthttp.Server{
		Handler:       func(c *fasthttp.RequestCtx) { c.SetBodyString("success") },
		Name:          "ceiling",
		ReadTimeout:   5 * time.Second,
		WriteTimeout:  5 * time.Second,
		IdleTimeout:   60 * time.Second,
		NoDefaultDate: true,
	}
	go func() { <-ctx.Done(); _ = srv.Shutdown() }()
	announce()
	return srv.Serve(ln)
}

// serveSilenceper is what a user would write with silenceper's SDK: its
// officialaccount server on net/http verifying, decrypting, and replying
// with an encrypted text message. Only sub-packages are imported (the root
// package's init turns logrus to debug), and logrus is set to Error, as a
// careful user would.
func serveSilenceper(ctx context.Context, ln net.Listener, announce func()) error {
	logrus.SetLevel(logrus.ErrorLevel)
	oa := officialaccount.NewOfficialAccount(&oaconfig.Config{
		AppID: oaAppID, AppSecret: oaSecret, Token: oaToken, EncodingAESKey: oaAESKey,
		// Fine here: the bench makes no token calls, so the (racy) memory
		// cache is never touched.
		Cache: cache.NewMemory(),
	})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		srv := oa.GetServer(r, w)
		srv.SetMessageHandler(func(m *message.MixMessage) *message.Reply {
			return &message.Reply{MsgType: message.MsgTypeText, MsgData: message.NewText(silenceperAnswer)}
		})
		if err := srv.Serve(); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if err := srv.Send(); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	srv := &http.Server{Handler: h, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second, IdleTimeout: 60 * time.Second}
	go func() { <-ctx.Done(); _ = srv.Close() }()
	announce()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// serveKefu mirrors cmd/kefu's serve command on ln.
func serveKefu(ctx context.Context, ln net.Listener, cfgPath string, announce func()) error {
	cfg, err := app.Load(cfgPath, os.Environ())
	if err != nil {
		return err
	}
	app.ApplyRuntime(cfg)
	log := app.NewLogger(cfg.Log, os.Stderr)
	a, err := app.Build(cfg, log)
	if err != nil {
		return err
	}
	defer a.Close()
	if e, ok := a.Engine.(*engine.Embedded); ok {
		setWALStats(e)
	}
	announce()
	return a.Serve(ctx, ln)
}

// statsFn returns the embedded engine's counters; set by the kefu and
// gateway targets on that engine.
var statsFn atomic.Pointer[func() engine.EmbeddedStats]

// setWALStats makes SIGUSR1 report e's WAL counters.
func setWALStats(e *engine.Embedded) {
	f := e.Stats
	statsFn.Store(&f)
}

// heapCounters returns the bytes allocated on the heap and the GC cycles
// completed since the process started.
func heapCounters() (alloc, gcs uint64) {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}, {Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(s)
	if s[0].Value.Kind() == metrics.KindUint64 {
		alloc = s[0].Value.Uint64()
	}
	if s[1].Value.Kind() == metrics.KindUint64 {
		gcs = s[1].Value.Uint64()
	}
	return alloc, gcs
}

// serveGatewayOnly is a diagnostic target: kefu's gateway and engine as
// `kefu serve` configures them, but with a handler that answers a fixed
// text instead of the app's router (handoff and survey stages, the bot,
// transcripts, events). The difference to the kefu target is what the
// domains cost on the passive-reply path.
func serveGatewayOnly(ctx context.Context, ln net.Listener, cfgPath string, announce func()) error {
	cfg, err := app.Load(cfgPath, os.Environ())
	if err != nil {
		return err
	}
	app.ApplyRuntime(cfg)
	log := app.NewLogger(cfg.Log, os.Stderr)
	eng, err := app.OpenEngine(cfg, log)
	if err != nil {
		return err
	}
	defer eng.Close()
	if e, ok := eng.(*engine.Embedded); ok {
		setWALStats(e)
	}
	answer := gateway.HandlerFunc(func(context.Context, conv.Message) ([]conv.Reply, error) {
		return []conv.Reply{conv.Text(silenceperAnswer)}, nil
	})
	gw, err := gateway.New(cfg.GatewayConfig(), eng, answer, gateway.Options{Logger: log})
	if err != nil {
		return err
	}
	svc, stopSvc := context.WithCancel(context.Background())
	defer stopSvc()
	go func() { _ = gw.RunRecovery(svc) }()
	go func() { _ = gw.Sender.Run(svc) }()
	srv := &fasthttp.Server{
		Handler: gw.HTTPHandler(), Name: "kefu",
		ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second, IdleTimeout: 60 * time.Second,
		MaxRequestBodySize: cfg.Gateway.MaxBodyBytes, NoDefaultDate: true, ErrorHandler: gateway.ErrorHandler,
	}
	go func() {
		<-ctx.Done()
		dctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = gw.Drain(dctx)
		_ = srv.Shutdown()
	}()
	announce()
	return srv.Serve(ln)
}

// child is a running target process.
type child struct {
	cmd    *exec.Cmd
	addr   string
	exited chan struct{}
	stats  chan childStats
}

// childStats are a child's counters: heap bytes allocated and GC cycles
// (every target), and when wal is 1 the embedded engine's WAL counters,
// commits by duration among them (engine.CommitBounds).
type childStats struct {
	alloc, gcs, wal, frames, batches, syncs, bytes uint64
	commits                                        [len(engine.CommitBounds) + 1]uint64
}

// String is the STATS line's payload: every counter, space-separated.
func (s childStats) String() string {
	f := []uint64{s.alloc, s.gcs, s.wal, s.frames, s.batches, s.syncs, s.bytes}
	f = append(f, s.commits[:]...)
	out := make([]string, len(f))
	for i, v := range f {
		out[i] = strconv.FormatUint(v, 10)
	}
	return strings.Join(out, " ")
}

// parseChildStats reads a STATS line's payload.
func parseChildStats(line string) (childStats, error) {
	var s childStats
	f := strings.Fields(line)
	dst := []*uint64{&s.alloc, &s.gcs, &s.wal, &s.frames, &s.batches, &s.syncs, &s.bytes}
	for i := range s.commits {
		dst = append(dst, &s.commits[i])
	}
	if len(f) != len(dst) {
		return s, fmt.Errorf("bench: STATS line has %d fields, want %d", len(f), len(dst))
	}
	for i, p := range dst {
		v, err := strconv.ParseUint(f[i], 10, 64)
		if err != nil {
			return s, fmt.Errorf("bench: STATS field %d: %w", i, err)
		}
		*p = v
	}
	return s, nil
}

// readStats asks a child for its counters (false if it does not answer).
func (c *child) readStats() (childStats, bool) {
	_ = c.cmd.Process.Signal(syscall.SIGUSR1)
	select {
	case s := <-c.stats:
		return s, true
	case <-time.After(500 * time.Millisecond):
		return childStats{}, false
	}
}

// childCommand re-executes this binary in child mode. It is a variable so
// the package's tests (whose binary has no "bench" subcommand of its own)
// can route it through TestMain.
var childCommand = func(args ...string) *exec.Cmd {
	exe, err := os.Executable()
	if err != nil {
		exe = os.Args[0]
	}
	return exec.Command(exe, append([]string{"bench"}, args...)...)
}

// startChild starts a target and waits until it listens (and, for kefu,
// answers /healthz). Its stderr goes to logPath.
func startChild(kind, cfgPath, cpuprofile, memprofile, logPath string) (*child, error) {
	args := []string{"-child", kind}
	if cfgPath != "" {
		args = append(args, "-c", cfgPath)
	}
	if cpuprofile != "" {
		args = append(args, "-cpuprofile", cpuprofile)
	}
	if memprofile != "" {
		args = append(args, "-memprofile", memprofile)
	}
	cmd := childCommand(args...)
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd.Stderr = logf
	out, err := cmd.StdoutPipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	c := &child{cmd: cmd, exited: make(chan struct{}), stats: make(chan childStats, 1)}
	go func() { _ = cmd.Wait(); logf.Close(); close(c.exited) }()
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "LISTEN "); ok {
				lines <- a
			}
			if a, ok := strings.CutPrefix(sc.Text(), "STATS "); ok {
				if s, err := parseChildStats(a); err == nil {
					select {
					case c.stats <- s:
					default:
					}
				}
			}
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case c.addr = <-lines:
	case <-c.exited:
		return nil, fmt.Errorf("%s child exited during start-up; see %s", kind, logPath)
	case <-time.After(2 * time.Minute):
		c.stop()
		return nil, fmt.Errorf("%s child did not start; see %s", kind, logPath)
	}
	if kind == "kefu" || kind == "gateway" {
		if err := waitHealthy(c.addr, 30*time.Second); err != nil {
			c.stop()
			return nil, fmt.Errorf("kefu child: %w; see %s", err, logPath)
		}
	}
	return c, nil
}

func waitHealthy(addr string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		status, _, err := fasthttp.GetTimeout(nil, "http://"+addr+"/healthz", time.Second)
		if err == nil && status == 200 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not healthy after %s (status %d, %v)", d, status, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stopTimeout bounds a child's graceful shutdown before it is killed.
const stopTimeout = 40 * time.Second

// stop ends the child gracefully (SIGTERM: kefu drains and flushes its
// event log), killing it if it does not exit within stopTimeout. It
// returns how long the shutdown took and whether it had to kill.
func (c *child) stop() (time.Duration, bool) {
	if c.cmd.Process == nil {
		return 0, false
	}
	t0 := time.Now()
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
		return time.Since(t0), false
	case <-time.After(stopTimeout):
		_ = c.cmd.Process.Kill()
		<-c.exited
		return time.Since(t0), true
	}
}

// procMem reads VmRSS, VmHWM (peak RSS) and RssFile (the file-backed
// part of VmRSS: mostly the executable's pages) of pid, in bytes.
func procMem(pid int) (rss, hwm, file int64) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			rss = kb << 10
		case "VmHWM:":
			hwm = kb << 10
		case "RssFile:":
			file = kb << 10
		}
	}
	return rss, hwm, file
}

// procCPU reads pid's user+system CPU time from /proc/<pid>/stat.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name may contain spaces; fields start after ") ".
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64) // field 14: utime
	st, _ := strconv.ParseInt(f[12], 10, 64) // field 15: stime
	return time.Duration(ut+st) * time.Second / clkTck
}

// clkTck is USER_HZ, the unit of /proc CPU times on Linux.
const clkTck = 100

// machineCPU is the CPU time all processes on the machine used so far
// (from /proc/stat): busy = everything but idle and iowait.
func machineCPU() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0
	}
	var busy int64
	for i, v := range f[1:] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		busy += n
	}
	return time.Duration(busy) * time.Second / clkTck
}
