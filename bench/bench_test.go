package bench

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"kefu/engine"
)

// TestMain lets the test binary play the kefu binary's child side: the
// bench re-executes itself as `<binary> bench -child …`.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "bench" {
		os.Exit(Run(os.Args[2:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func TestHist_Quantiles(t *testing.T) {
	var h hist
	for i := 1; i <= 1000; i++ {
		h.record(time.Duration(i) * time.Millisecond)
	}
	for _, c := range []struct{ q, want float64 }{{0.5, 500}, {0.99, 990}, {0.999, 999}} {
		got := h.quantile(c.q)
		if got < c.want*0.98 || got > c.want*1.02 {
			t.Errorf("quantile(%v) = %.1f ms, want ≈%.0f", c.q, got, c.want)
		}
	}
	var small hist
	small.record(30 * time.Microsecond)
	if got := small.quantile(0.5); got != 0.03 {
		t.Errorf("exact small bucket: got %v ms", got)
	}
}

func TestRun_BadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-targets", "nope"},
		{"-rate", "-5"},
		{"-rate", "1000", "-dup"},
		{"-encrypt", "-dup"},
	} {
		var out, errb bytes.Buffer
		if code := Run(args, &out, &errb); code != 2 || errb.Len() == 0 {
			t.Fatalf("%v: exit %d, want 2 with a message; stderr %q", args, code, errb.String())
		}
	}
}

// TestRun_Smoke runs every target briefly, checking the plumbing (child
// processes, generator, reply decoding, report). It asserts correctness
// only — never speed.
func TestRun_Smoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts four servers")
	}
	var out, errb bytes.Buffer
	code := Run([]string{"-duration", "400ms", "-warmup", "100ms", "-conns", "4", "-json", "-pool", "20000"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", code, out.String(), errb.String())
	}
	var rs []Result
	if err := json.Unmarshal(out.Bytes(), &rs); err != nil {
		t.Fatalf("bad JSON %q: %v", out.String(), err)
	}
	if len(rs) != len(defaultTargets) {
		t.Fatalf("got %d results, want %d", len(rs), len(defaultTargets))
	}
	for _, r := range rs {
		if r.Requests == 0 || r.Errors != 0 || r.Non200 != 0 || r.BadReplies != 0 {
			t.Errorf("%s: %+v", r.Target, r)
		}
		if r.Target != TargetCeiling && r.Passive == 0 {
			t.Errorf("%s answered no passive replies: %+v", r.Target, r)
		}
		if r.PeakRSS == 0 || r.ServerCPU <= 0 {
			t.Errorf("%s: no /proc numbers: %+v", r.Target, r)
		}
		// Every child answers SIGUSR1 with its counters; the servers that
		// decrypt allocate.
		if r.Target != TargetCeiling && r.AllocKBPerReq <= 0 {
			t.Errorf("%s: no allocation counters: %+v", r.Target, r)
		}
		if r.Target == TargetKefuEmbedded && (r.FsyncsPerS <= 0 || r.CommitP50Ms == 0 || r.CommitP99Ms == 0) {
			t.Errorf("%s: no WAL counters: %+v", r.Target, r)
		}
	}
}

func TestChildStats_RoundTrip(t *testing.T) {
	in := childStats{alloc: 1 << 40, gcs: 7, wal: 1, frames: 3, batches: 2, syncs: 2, bytes: 999}
	for i := range in.commits {
		in.commits[i] = uint64(i * i)
	}
	out, err := parseChildStats(in.String())
	if err != nil || out != in {
		t.Fatalf("round trip: %+v, %v", out, err)
	}
	for _, bad := range []string{"", "1 2 3", in.String() + " 5", strings.Replace(in.String(), "7", "x", 1)} {
		if _, err := parseChildStats(bad); err == nil {
			t.Errorf("parseChildStats(%q) accepted", bad)
		}
	}
}

func TestCommitQuantile(t *testing.T) {
	var c [len(engine.CommitBounds) + 1]uint64
	if got := commitQuantile(c, 0.99); got != 0 {
		t.Fatalf("no commits: %v", got)
	}
	c[2] = 98 // ≤ 1 ms
	c[6] = 1  // ≤ 16 ms
	c[len(c)-1] = 1
	for q, want := range map[float64]float64{0.5: 1, 0.98: 1, 0.99: 16, 1: -1} {
		if got := commitQuantile(c, q); got != want {
			t.Errorf("q %v: %v, want %v", q, got, want)
		}
	}
	if s := commitBound(-1); s != "> 256 ms" {
		t.Errorf("commitBound(-1) = %q", s)
	}
}

// TestRun_Duplicates sends every push four times (the second while the
// first is in flight) and requires each MsgId to be handled once and
// answered once, on both engines.
func TestRun_Duplicates(t *testing.T) {
	if testing.Short() {
		t.Skip("starts kefu")
	}
	var out, errb bytes.Buffer
	code := Run([]string{"-dup", "-targets", "kefu-embedded,kefu-redis", "-duration", "1s", "-warmup", "200ms", "-conns", "8", "-json", "-pool", "3000"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", code, out.String(), errb.String())
	}
	var rs []Result
	if err := json.Unmarshal(out.Bytes(), &rs); err != nil {
		t.Fatalf("bad JSON %q: %v", out.String(), err)
	}
	for _, r := range rs {
		if r.Dup == nil || !r.Dup.OK() || r.Dup.Messages == 0 {
			t.Errorf("%s: %+v", r.Target, r.Dup)
			continue
		}
		if r.Dup.Handled+r.Dup.NoEvent != r.Dup.Messages {
			t.Errorf("%s: counts do not add up: %+v", r.Target, r.Dup)
		}
		t.Logf("%s: %s", r.Target, r.Dup)
	}
}

// TestChildCommand_ReexecsThisBinary guards the re-exec contract TestMain
// relies on.
func TestChildCommand_ReexecsThisBinary(t *testing.T) {
	cmd := childCommand("-child", "nope")
	if len(cmd.Args) < 3 || cmd.Args[1] != "bench" || cmd.Args[2] != "-child" {
		t.Fatalf("args %q", cmd.Args)
	}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errorsAs(err, &ee) || !strings.Contains(string(out), "unknown child kind") {
		t.Fatalf("err %v, output %s", err, out)
	}
}

func errorsAs(err error, target **exec.ExitError) bool {
	e, ok := err.(*exec.ExitError)
	if ok {
		*target = e
	}
	return ok
}

// TestRunLoad_OpenLoopCountsQueueing checks the open loop's accounting
// against a server that takes 30 ms a request: with one connection and a
// request due every 10 ms, requests queue behind each other, and their
// latency must include the wait from their scheduled time (a closed loop
// would report ≈30 ms and hide it). It also sends no more than was
// scheduled.
func TestRunLoad_OpenLoopCountsQueueing(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var served atomic.Int64
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		served.Add(1)
		time.Sleep(30 * time.Millisecond)
		ctx.SetBodyString("success")
	}}
	go srv.Serve(ln)
	defer srv.Shutdown()
	pool, err := buildPool(4, 4)
	if err != nil {
		t.Fatal(err)
	}
	const rate, window = 100.0, 600 * time.Millisecond
	res, err := runLoad(pool, loadSpec{addr: ln.Addr().String(), conns: 1, duration: window, wrap: true, users: 4, rate: rate})
	if err != nil {
		t.Fatal(err)
	}
	scheduled := int64(rate * window.Seconds())
	if res.Requests == 0 || int64(res.Requests) > scheduled || served.Load() > scheduled {
		t.Fatalf("completed %d, served %d; %d were scheduled", res.Requests, served.Load(), scheduled)
	}
	// The k-th request (from 0) is due at 10k ms and answered no earlier
	// than 30(k+1) ms: latency ≥ 20k+30 ms, so the median is far above
	// the 30 ms service time.
	if p50 := res.lat.quantile(0.5); p50 < 60 {
		t.Fatalf("p50 = %.1f ms: queueing behind the slow server was not counted", p50)
	}
	if res.Acks != res.Requests {
		t.Fatalf("acks %d of %d requests", res.Acks, res.Requests)
	}
}
