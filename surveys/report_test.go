package surveys

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"kefu/conv"
)

func intp(v int) *int { return &v }

// resp builds an answered (score ≥ 0) or unanswered (score < 0) response.
func resp(store conv.StoreID, agent string, handedOff bool, sent time.Time, score int) Response {
	r := Response{Kind: KindNPS, Status: "sent", SentAt: sent, Attribution: Attribution{Store: store, Channel: "demo", ChannelType: conv.ChannelWeChatOA, Agent: agent, HandedOff: handedOff}}
	if score >= 0 {
		r.Status, r.Score = "answered", intp(score)
	}
	return r
}

func testStoreTree(t *testing.T) *conv.StoreTree {
	tr, err := conv.NewStoreTree(testTree())
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func rowsByKey(rows []Row) map[string]Row {
	m := map[string]Row{}
	for _, r := range rows {
		m[r.Key] = r
	}
	return m
}

func TestBuildReport_StoreRollupAndDimensions(t *testing.T) {
	d1 := time.Date(2026, 11, 2, 10, 0, 0, 0, cst) // Monday, ISO week 45
	d2 := time.Date(2026, 11, 9, 23, 30, 0, 0, cst)
	resps := []Response{
		// store-001: 10, 9, 3, unanswered → P2 D1 of 3, sent 4 → NPS 33.3, rate 75.
		resp("store-001", "a1", true, d1, 10), resp("store-001", "a1", true, d1, 9), resp("store-001", "", false, d1, 3), resp("store-001", "", false, d1, -1),
		// store-002: 0, 6, 8 → D2 Pa1 → −66.7.
		resp("store-002", "a2", true, d2, 0), resp("store-002", "a2", true, d2, 6), resp("store-002", "", false, d2, 8),
		// Not counted: not sent, re-surveys.
		{Kind: KindNPS, Status: "not_sent", Reason: "throttled", Attribution: Attribution{Store: "store-001"}},
		{Kind: KindReSurvey, Status: "answered", Score: intp(10), SentAt: d1, Attribution: Attribution{Store: "store-001"}},
	}
	tree := testStoreTree(t)
	rows, err := BuildReport(resps, tree, Query{By: ByStore, Location: cst})
	if err != nil {
		t.Fatal(err)
	}
	m := rowsByKey(rows)
	check := func(key string, nps float64, n, sent int, rate float64) {
		t.Helper()
		r, ok := m[key]
		if !ok || r.NPS.Score != nps || r.NPS.N != n || r.Tally.Sent != sent || r.NPS.ResponseRate != rate {
			t.Errorf("%s: %+v, want nps=%v n=%d sent=%d rate=%v", key, r, nps, n, sent, rate)
		}
	}
	check("store-001", 33.3, 3, 4, 75)
	check("store-002", -66.7, 3, 3, 100)
	// Region and brand: P2 Pa1 D3 of 6 → 33.3 − 50 = −16.7; 6 of 7 sent.
	check("east", -16.7, 6, 7, 85.7)
	check("brand", -16.7, 6, 7, 85.7)
	if rows[0].Key != "brand" || rows[0].Depth != 0 || m["store-001"].Depth != 2 {
		t.Errorf("tree order: %+v", rows)
	}

	rows, _ = BuildReport(resps, tree, Query{By: ByHandoff})
	m = rowsByKey(rows)
	// Handed off: 10, 9, 0, 6 → P2 D2 → 0. Bot only: 3, 8 (+1 unanswered) → −50.
	if m["handed_off"].NPS.Score != 0 || m["handed_off"].NPS.N != 4 || m["bot_only"].NPS.Score != -50 || m["bot_only"].Tally.Sent != 3 {
		t.Errorf("by handoff: %+v", rows)
	}
	rows, _ = BuildReport(resps, tree, Query{By: ByAgent})
	if m = rowsByKey(rows); m["a1"].NPS.Score != 100 || m["(bot)"].NPS.N != 2 || m["a2"].NPS.Score != -100 {
		t.Errorf("by agent: %+v", rows)
	}
	rows, _ = BuildReport(resps, tree, Query{By: ByDay, Location: cst})
	if m = rowsByKey(rows); len(rows) != 2 || m["2026-11-02"].NPS.N != 3 || m["2026-11-09"].NPS.N != 3 {
		t.Errorf("by day: %+v", rows)
	}
	// 23:30 in Shanghai is still the 9th there but the 9th 15:30 UTC too;
	// the week split is what matters: W45 and W46.
	rows, _ = BuildReport(resps, tree, Query{By: ByWeek, Location: cst})
	if m = rowsByKey(rows); m["2026-W45"].NPS.N != 3 || m["2026-W46"].NPS.N != 3 {
		t.Errorf("by week: %+v", rows)
	}
	rows, _ = BuildReport(resps, tree, Query{By: ByMonth, Location: cst})
	if len(rows) != 1 || rows[0].Key != "2026-11" || rows[0].NPS.N != 6 {
		t.Errorf("by month: %+v", rows)
	}
	// Period and scope filters.
	rows, _ = BuildReport(resps, tree, Query{From: d2.Add(-time.Hour), Location: cst})
	if len(rows) != 1 || rows[0].NPS.N != 3 {
		t.Errorf("from filter: %+v", rows)
	}
	rows, _ = BuildReport(resps, tree, Query{By: ByStore, Store: "store-002"})
	if len(rows) != 1 || rows[0].Key != "store-002" {
		t.Errorf("store scope: %+v", rows)
	}
	if _, err := BuildReport(resps, tree, Query{By: "color"}); err == nil {
		t.Error("unknown dimension accepted")
	}
}

func TestReportNPS_CLI(t *testing.T) {
	h := newHarness(t, func(c *Config, o *Options) { c.ThrottleDays = 0 })
	// Five customers: 10, 9, 7, 4 and one who never answers.
	for i, text := range []string{"10", "9分", "七分", "4分，太慢", ""} {
		ce := h.oaContact("cli" + string(rune('a'+i)))
		h.schedule(ce)
		h.advance(DefaultDelay)
		if text != "" {
			h.reply(ce, "m", text)
		}
	}
	cfg := h.svc.cfg
	var out, errb bytes.Buffer
	day := noon.Format("2006-01-02")
	if rc := ReportNPS([]string{"--from", day, "--to", day, "--by", "store", "--csv"}, &out, &errb, h.eng, cfg); rc != 0 {
		t.Fatalf("rc=%d %s", rc, errb.String())
	}
	recs, err := csv.NewReader(&out).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	// P2 Pa1 D1 of 4 answers, 5 sent: NPS 25, response 80 %.
	want := []string{"store-001", "南京路店", "25.0", "4", "50.0", "25.0", "25.0", "2", "1", "1", "5", "80.0"}
	found := false
	for _, r := range recs {
		if r[0] == "store-001" {
			found = strings.Join(r, ",") == strings.Join(want, ",")
			if !found {
				t.Fatalf("row = %v, want %v", r, want)
			}
		}
	}
	if !found || recs[0][0] != "store" {
		t.Fatalf("csv:\n%v", recs)
	}
	out.Reset()
	if rc := ReportNPS([]string{"--json"}, &out, &errb, h.eng, cfg); rc != 0 {
		t.Fatal(errb.String())
	}
	var js struct {
		Definition map[string]any `json:"definition"`
		Rows       []Row          `json:"rows"`
	}
	if err := json.Unmarshal(out.Bytes(), &js); err != nil || len(js.Rows) != 1 || js.Rows[0].NPS.Score != 25 || js.Definition["question_version"] != "nps-zh-1" {
		t.Fatalf("json: %v %s", err, out.String())
	}
	out.Reset()
	if rc := ReportNPS(nil, &out, &errb, h.eng, cfg); rc != 0 || !strings.Contains(out.String(), "+25.0") {
		t.Fatalf("table: rc=%d\n%s", rc, out.String())
	}
	// Day boundaries are the brand's: the next day has nothing.
	out.Reset()
	next := noon.AddDate(0, 0, 1).Format("2006-01-02")
	if rc := ReportNPS([]string{"--from", next, "--csv"}, &out, &errb, h.eng, cfg); rc != 0 || strings.Count(out.String(), "\n") != 1 {
		t.Fatalf("next day: rc=%d\n%s", rc, out.String())
	}
	for _, bad := range [][]string{{"--by", "color"}, {"--from", "23/11/2026"}, {"--store", "nowhere"}, {"--nope"}} {
		errb.Reset()
		if rc := ReportNPS(bad, &out, &errb, h.eng, cfg); rc != 2 || errb.Len() == 0 {
			t.Errorf("%v: rc=%d stderr=%q", bad, rc, errb.String())
		}
	}
}

func TestDigest_YesterdayAndOpenCases(t *testing.T) {
	h := newHarness(t, func(c *Config, o *Options) {
		c.ThrottleDays = 0
		c.Digest.Enabled = true
	})
	h.detractor("dg1", "store-001", "2分，排队太久")
	ce := h.oaContact("dg2")
	h.schedule(ce)
	h.advance(DefaultDelay)
	h.reply(ce, "x", "10分 很好")
	ctx := context.Background()
	if err := h.svc.planDigests(ctx); err != nil {
		t.Fatal(err)
	}
	// store-001 opens at 10:00: its digest goes out at 09:00 the next day.
	h.clock.Set(time.Date(2026, 11, 24, 8, 59, 0, 0, cst))
	h.run()
	if n := len(h.out.byPrefix("digest:store-001")); n != 0 {
		t.Fatal("digest before its time")
	}
	h.clock.Set(time.Date(2026, 11, 24, 9, 0, 0, 0, cst))
	h.run()
	got := h.out.byPrefix("digest:store-001:2026-11-24")
	if len(got) != 2 { // WeCom app + store robot
		t.Fatalf("digests = %+v", got)
	}
	text := got[0].Reply.Text
	for _, want := range []string{"南京路店", "2026-11-23", "NPS：**+0.0**", "n=2", "2分：排队太久", "未结差评：**1**"} {
		if !strings.Contains(text, want) {
			t.Errorf("digest lacks %q:\n%s", want, text)
		}
	}
	// store-002 has no opening time: digest.at (08:00) — already past today,
	// so it was planned for the 24th 08:00 and went out in the run above.
	if n := len(h.out.byPrefix("digest:store-002:2026-11-24")); n != 1 {
		t.Fatalf("store-002 digest = %d", n)
	}
}
