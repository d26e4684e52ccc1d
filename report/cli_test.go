package report

import (
	"bytes"
	"context"
	"encoding/csv"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"kefu/conv"
	"kefu/engine"
)

func openEmbedded(t testing.TB) engine.Engine {
	t.Helper()
	e, err := engine.OpenEmbedded(t.TempDir(), engine.EmbeddedOptions{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func runCLI(t *testing.T, e engine.Engine, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := RunCLI(args, &out, &errb, e, SampleTree())
	return out.String(), errb.String(), code
}

func TestRunCLI_GenKPIFunnelDrill(t *testing.T) {
	e := openEmbedded(t)
	out, stderr, code := runCLI(t, e, "gen", "--seed", "3", "--day", "2026-11-02", "--contacts", "300")
	if code != 0 || !strings.Contains(out, "appended") {
		t.Fatalf("gen: code %d, %s %s", code, out, stderr)
	}

	out, stderr, code = runCLI(t, e, "kpi", "--by", "store", "--csv", "--from", "2026-11-02", "--to", "2026-11-02")
	if code != 0 {
		t.Fatalf("kpi: code %d: %s", code, stderr)
	}
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if recs[0][0] != "store" || recs[0][2] != "service_level (%)" {
		t.Fatalf("header = %v", recs[0])
	}
	rows := map[string][]string{}
	for _, r := range recs[1:] {
		rows[r[0]] = r
	}
	col := indexOf(recs[0], "contacts")
	brand, _ := strconv.Atoi(rows["brand"][col])
	total, _ := strconv.Atoi(rows["total"][col])
	east, _ := strconv.Atoi(rows["r-east"][col])
	var stores int
	for _, s := range []string{"s-01", "s-02", "s-03"} {
		n, _ := strconv.Atoi(rows[s][col])
		stores += n
	}
	if total < 280 || brand != total || east != stores {
		t.Fatalf("roll-up: total %d brand %d east %d stores %d", total, brand, east, stores)
	}

	out, _, code = runCLI(t, e, "kpi", "--by", "agent")
	if code != 0 || !strings.Contains(out, "s-01-a1") || !strings.Contains(out, "service_level v1 #") || !strings.Contains(out, "threshold_s=20") {
		t.Fatalf("kpi text: code %d\n%s", code, out)
	}

	out, _, code = runCLI(t, e, "funnel")
	if code != 0 || !strings.Contains(out, "Detractor called back within deadline") || !strings.Contains(out, "abandoned: customer_left") {
		t.Fatalf("funnel: code %d\n%s", code, out)
	}
	out, _, code = runCLI(t, e, "funnel", "--csv", "--store", "r-south")
	if code != 0 || !strings.HasPrefix(out, "stage,label,count,parent,conversion_pct,drop_reason,drop_count\n") {
		t.Fatalf("funnel csv: code %d\n%s", code, out)
	}

	out, _, code = runCLI(t, e, "drill", "--filter", "abandoned", "--csv")
	if code != 0 {
		t.Fatalf("drill: code %d", code)
	}
	drill, _ := csv.NewReader(strings.NewReader(out)).ReadAll()
	if len(drill) < 2 || !strings.HasPrefix(drill[1][0], "cv-3-") {
		t.Fatalf("drill rows = %v", drill)
	}

	out, _, code = runCLI(t, e, "definitions", "--csv")
	if code != 0 || !strings.Contains(out, "service_level,1,") {
		t.Fatalf("definitions: code %d\n%s", code, out)
	}
	// The CLI never takes the lease and never writes state.
	if _, err := e.Get(context.Background(), LockKey); err == nil {
		t.Error("the CLI took the report lease")
	}
}

func TestRunCLI_Usage(t *testing.T) {
	e := openEmbedded(t)
	for _, args := range [][]string{{}, {"kpi", "--by", "planet"}, {"kpi", "--from", "2026-13-01"}, {"nope"}, {"drill", "--filter", "x"}} {
		if _, _, code := runCLI(t, e, args...); code != 2 {
			t.Errorf("%v: code %d, want 2", args, code)
		}
	}
	var out, errb bytes.Buffer
	if code := RunCLI([]string{"kpi"}, &out, &errb, nil, nil); code != 1 || !strings.Contains(errb.String(), "no engine") {
		t.Errorf("kpi without an engine: code %d, %q", code, errb.String())
	}
	if _, _, code := runCLI(t, e, "help"); code != 0 {
		t.Errorf("help: code %d", code)
	}
	path := filepath.Join(t.TempDir(), "day.jsonl")
	if out, _, code := runCLI(t, e, "gen", "--contacts", "50", "--day", "2026-11-02", "--jsonl", path); code != 0 {
		t.Fatalf("gen --jsonl: %d %s", code, out)
	}
	b, _ := os.ReadFile(path)
	if n := bytes.Count(b, []byte("\n")); n < 200 {
		t.Errorf("jsonl has %d lines", n)
	}
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

func TestFunnel_HandComputed(t *testing.T) {
	h := time.Hour
	evs := append(queueEvents(),
		ev(conv.EvSurveyScheduled, "c1", 6*time.Minute, agent("a1")),
		ev(conv.EvSurveySent, "c1", 7*time.Minute, agent("a1")),
		ev(conv.EvSurveyAnswered, "c1", 8*time.Minute, agent("a1"), data("score", "4")),
		ev(conv.EvCaseOpened, "c1", 8*time.Minute, agent("a1")),
		ev(conv.EvCaseContacted, "c1", 3*h),
		ev(conv.EvCaseClosed, "c1", 4*h),
		ev(conv.EvSurveySent, "c2", 11*time.Minute, agent("a2")),
		ev(conv.EvSurveyNotSent, "c4", 3*time.Minute, reason("frequency_cap")),
	)
	cfg := DefaultConfig()
	r := &Reporter{cfg: cfg, defs: Definitions(cfg), loc: cfg.location(), f: runFold(t, cfg, evs), now: time.Now}
	f := r.Funnel(Query{})
	got := map[string]Stage{}
	for _, s := range f.Stages {
		got[s.Name] = s
	}
	want := map[string]struct {
		count int64
		conv  float64
	}{
		"contacts": {4, 0}, "bot_answered": {0, 0}, "handed_off": {4, 1}, "picked_up": {3, 0.75}, "abandoned": {1, 0.25},
		"resolved": {2, 0.5}, "no_repeat": {4, 1}, "surveyed": {2, 0.5}, "answered": {1, 0.5}, "promoters": {0, 0},
		"detractors": {1, 1}, "called_back": {1, 1}, "case_closed": {1, 1},
	}
	for name, w := range want {
		if s := got[name]; s.Count != w.count || s.Conversion != w.conv {
			t.Errorf("%s = %d (%.2f), want %d (%.2f)", name, s.Count, s.Conversion, w.count, w.conv)
		}
	}
	drops := map[string]int64{}
	for _, d := range got["surveyed"].Drops {
		drops[d.Reason] = d.Count
	}
	if drops["not sent: frequency_cap"] != 1 || drops["no survey yet"] != 1 {
		t.Errorf("surveyed drops = %v", got["surveyed"].Drops)
	}
	if d := got["picked_up"].Drops; len(d) != 1 || d[0].Reason != "abandoned: customer_left" {
		t.Errorf("picked_up drops = %v", d)
	}
	refs, err := r.Drill(Query{}, "", "detractor", 10)
	if err != nil || len(refs) != 1 || refs[0].Conv != "c1" || refs[0].Score == nil || *refs[0].Score != 4 {
		t.Errorf("drill detractor = %+v, %v", refs, err)
	}
	refs, _ = r.Drill(Query{By: DimAgent}, "a2", "", 10)
	if len(refs) != 2 { // c2 (picked and closed) and c4 (closed after the transfer)
		t.Errorf("drill a2 = %+v", refs)
	}
}

func TestRetention_NeverTrimsUnfolded(t *testing.T) {
	e := openEmbedded(t)
	ctx := context.Background()
	evs := smallDay(t)[:100]
	appendAll(t, e, evs[:50])
	time.Sleep(5 * time.Millisecond)
	appendAll(t, e, evs[50:])
	now := time.Now()
	r, err := New(ctx, e, nil, DefaultConfig(), Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	ret := NewRetention(r)
	// Nothing folded yet: nothing may go.
	if cut, err := ret.TrimOnce(ctx); err != nil || !cut.IsZero() {
		t.Fatalf("TrimOnce before any fold = %v, %v", cut, err)
	}
	if _, err := r.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	// Within retention: nothing goes.
	if _, err := ret.TrimOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if n, _ := e.LogLen(ctx, EventLog); n != 100 {
		t.Fatalf("log len %d after trim within retention, want 100", n)
	}
	appendAll(t, e, evs[:1]) // not folded
	now = now.Add(100 * 24 * time.Hour)
	if _, err := ret.TrimOnce(ctx); err != nil {
		t.Fatal(err)
	}
	n, _ := e.LogLen(ctx, EventLog)
	if n < 2 || n > 51 {
		t.Fatalf("log len %d after trim; want the first 50 gone and the unfolded record kept", n)
	}
	if recs, _ := e.ReadLog(ctx, EventLog, r.Cursor(), 0); len(recs) != 1 {
		t.Fatalf("unfolded records after trim: %d, want 1", len(recs))
	}
}

func TestCollector_LagAndToday(t *testing.T) {
	e := openEmbedded(t)
	ctx := context.Background()
	evs := smallDay(t)
	appendAll(t, e, evs)
	// "now" is the afternoon of the generated day, so its contacts are today's.
	r, err := New(ctx, e, SampleTree(), DefaultConfig(), Options{Now: func() time.Time { return t0.Add(6 * time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(r.Collector())
	gauge := func(name string) (float64, int) {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == name {
				var sum float64
				for _, m := range mf.GetMetric() {
					sum += m.GetGauge().GetValue() + m.GetCounter().GetValue()
				}
				return sum, len(mf.GetMetric())
			}
		}
		return 0, 0
	}
	if lag, _ := gauge("kefu_report_lag_records"); int(lag) != len(evs) {
		t.Errorf("lag before refresh = %v, want %d", lag, len(evs))
	}
	if _, err := r.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if lag, _ := gauge("kefu_report_lag_records"); lag != 0 {
		t.Errorf("lag after refresh = %v", lag)
	}
	if lead, _ := gauge("kefu_report_leader"); lead != 1 {
		t.Errorf("leader = %v", lead)
	}
	if _, n := gauge("kefu_report_nps_today"); n != 6 {
		t.Errorf("nps series = %d, want one per store", n)
	}
	if open, n := gauge("kefu_report_cases_open"); n == 0 || open == 0 {
		t.Errorf("open cases series = %d (sum %v)", n, open)
	}
}

func TestCSV_DefusesFormulas(t *testing.T) {
	var b bytes.Buffer
	err := WriteDrillCSV(&b, []ContactRef{{Conv: "=HYPERLINK(\"x\")", Customer: "web:-5", Agent: "@boss", Outcome: "-7", Start: t0}})
	if err != nil {
		t.Fatal(err)
	}
	recs, _ := csv.NewReader(&b).ReadAll()
	got := recs[1]
	if got[0] != `'=HYPERLINK("x")` || got[1] != "web:-5" || got[4] != "'@boss" || got[6] != "-7" {
		t.Errorf("cells = %q", got)
	}
}

func TestGenerateDay_Deterministic(t *testing.T) {
	dir := t.TempDir()
	gen := func(name, seed string) []byte {
		t.Helper()
		p := filepath.Join(dir, name)
		var out, errb bytes.Buffer
		if code := RunCLI([]string{"gen", "--seed", seed, "--day", "2026-11-02", "--contacts", "200", "--jsonl", p}, &out, &errb, nil, nil); code != 0 {
			t.Fatalf("gen: %d %s", code, errb.String())
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	a, b, c := gen("a.jsonl", "42"), gen("b.jsonl", "42"), gen("c.jsonl", "43")
	if !bytes.Equal(a, b) {
		t.Error("the same seed gave two different days")
	}
	if bytes.Equal(a, c) {
		t.Error("different seeds gave the same day")
	}
}
