package kbcli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"kefu/bot"
	"kefu/conv"
)

func sample(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "configs", "kb.sample.jsonl")
}

func run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(args, &out, &errb)
	return out.String(), errb.String(), code
}

// TestRun_EvalCLI runs `kefu kb eval` on an evaluation set when present.
// KEFU_EVAL_ARGS lets benchmarks reuse it: go test -run EvalCLI -v.
func TestRun_EvalCLI(t *testing.T) {
	dir := "/work/shared/eval/bq"
	if _, err := os.Stat(dir); err != nil {
		t.Skip("evaluation set not available")
	}
	args := []string{"eval", "--kb", dir + "/faq.jsonl", "--queries", dir + "/queries.jsonl", "--withhold", "0.2", "--seed", "1", "--json"}
	if extra := os.Getenv("KEFU_EVAL_ARGS"); extra != "" {
		args = append([]string{"eval"}, strings.Fields(extra)...)
	}
	out, errs, code := run(t, args...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	t.Log(out)
	if !strings.Contains(strings.Join(args, " "), "--json") {
		return
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"r1", "r5", "mrr10", "n", "answer_precision", "answer_coverage", "false_answer_rate", "p50_ms", "p99_ms"} {
		if _, ok := m[k]; !ok {
			t.Errorf("json output lacks %q", k)
		}
	}
}

func TestRun_ImportExportRoundTrip(t *testing.T) {
	dir := t.TempDir()
	kbPath := filepath.Join(dir, "kb.jsonl")
	if _, e, code := run(t, "import", "--kb", kbPath, sample(t)); code != 0 {
		t.Fatal(e)
	}
	for _, ext := range []string{"xlsx", "csv", "yaml", "jsonl"} {
		out := filepath.Join(dir, "out."+ext)
		if _, e, code := run(t, "export", "--kb", kbPath, out); code != 0 {
			t.Fatalf("export %s: %s", ext, e)
		}
		back := filepath.Join(dir, "back-"+ext+".jsonl")
		if _, e, code := run(t, "import", "--replace", "--kb", back, out); code != 0 {
			t.Fatalf("re-import %s: %s", ext, e)
		}
		a, _ := os.ReadFile(kbPath)
		b, _ := os.ReadFile(back)
		if !bytes.Equal(a, b) {
			t.Errorf("%s round trip changed the KB", ext)
		}
	}
	out, _, code := run(t, "list", "--kb", kbPath, "--status", "draft")
	if code != 0 || !strings.Contains(out, "draft-001") || strings.Contains(out, "hours-001") {
		t.Errorf("list --status draft: %q", out)
	}
	out, _, code = run(t, "show", "--kb", kbPath, "internal-001")
	if code != 0 || !strings.Contains(out, "visibility: agent") {
		t.Errorf("show: %q", out)
	}
	raw, _ := os.ReadFile(kbPath)
	want := fmt.Sprintf("published %d entries", strings.Count(strings.TrimSpace(string(raw)), "\n")+1)
	out, _, code = run(t, "publish", "--kb", kbPath, "--data", filepath.Join(dir, "data"))
	if code != 0 || !strings.Contains(out, want) {
		t.Errorf("publish: %q", out)
	}
}

func TestRun_ImportRejectsWholeFile(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.csv")
	os.WriteFile(bad, []byte("id,question,answer,status\na,问题一,答案,published\nb,,答案,published\nc,问题三,答案,bogus\n"), 0o644)
	kbPath := filepath.Join(dir, "kb.jsonl")
	_, errs, code := run(t, "import", "--kb", kbPath, bad)
	if code == 0 {
		t.Fatal("bad file imported")
	}
	for _, want := range []string{"row 3, column question", "row 4, column status"} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q: %s", want, errs)
		}
	}
	if _, err := os.Stat(kbPath); err == nil {
		t.Error("KB written although the import failed")
	}
}

func TestRun_MissesAndTune(t *testing.T) {
	dir := t.TempDir()
	kbPath := filepath.Join(dir, "kb.jsonl")
	data := filepath.Join(dir, "data")
	if _, e, code := run(t, "import", "--kb", kbPath, sample(t)); code != 0 {
		t.Fatal(e)
	}
	cfg := bot.DefaultConfig()
	cfg.KB, cfg.DataDir, cfg.MaxMisses = kbPath, data, 9
	b, err := bot.New(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, q := range []string{"你们卖不卖宠物粮食", "有没有宠物粮食卖", "火星快递怎么寄"} {
		if _, err := b.Respond(context.Background(), bot.Query{Text: q, Customer: conv.CustomerID(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	b.Close()
	out, e, code := run(t, "misses", "--kb", kbPath, "--data", data)
	if code != 0 || !strings.Contains(out, "1. ×2") || !strings.Contains(out, "宠物粮食") {
		t.Errorf("misses: %q %s", out, e)
	}
	out, e, code = run(t, "tune", "--kb", kbPath, "--data", data)
	if code != 0 || !strings.Contains(out, "need 20") {
		t.Errorf("tune with few labels: %q %s", out, e)
	}
}

func TestRun_Search(t *testing.T) {
	out, e, code := run(t, "search", "--kb", sample(t), "退款多久能到账")
	if code != 0 || !strings.Contains(out, "decision: answer") || !strings.Contains(out, "return-003") {
		t.Errorf("search: %q %s", out, e)
	}
	out, _, code = run(t, "search", "--kb", sample(t), "--agent", "超期退货怎么处理")
	if code != 0 || !strings.Contains(out, "internal-001") {
		t.Errorf("agent search: %q", out)
	}
}

// TestRun_EvalParaphraseSplits runs repeated paraphrase splits on a small
// set of our own and checks the flag conflicts are refused.
func TestRun_EvalParaphraseSplits(t *testing.T) {
	dir := t.TempDir()
	faq := filepath.Join(dir, "faq.jsonl")
	queries := filepath.Join(dir, "queries.jsonl")
	writeLines := func(path string, lines ...string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeLines(faq,
		`{"id":"hours","question":"门店营业时间是几点到几点","answer":""}`,
		`{"id":"refund","question":"退款多久到账","answer":""}`,
		`{"id":"invoice","question":"可以开发票吗","answer":""}`)
	writeLines(queries,
		`{"query":"几点关门","faq_id":"hours"}`, `{"query":"晚上开到几点","faq_id":"hours"}`, `{"query":"周末营业吗","faq_id":"hours"}`,
		`{"query":"钱什么时候退回来","faq_id":"refund"}`, `{"query":"退货的钱几天到","faq_id":"refund"}`, `{"query":"退款到哪了","faq_id":"refund"}`,
		`{"query":"能开发票吗","faq_id":"invoice"}`, `{"query":"发票怎么开","faq_id":"invoice"}`, `{"query":"电子发票在哪","faq_id":"invoice"}`)
	out, errs, code := run(t, "eval", "--kb", faq, "--queries", queries, "--paraphrase-splits", "4", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var m struct {
		Splits int       `json:"splits"`
		N      int       `json:"n"`
		Ratios []float64 `json:"ratios"`
		R1     *float64  `json:"r1"`
		Base   *float64  `json:"baseline_r1"`
	}
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if m.Splits != 4 || len(m.Ratios) != 4 || m.N == 0 || m.N >= 4*9 || m.R1 == nil || m.Base == nil {
		t.Fatalf("unexpected result: %s", out)
	}
	for _, bad := range [][]string{
		{"--paraphrases", queries}, {"--withhold", "0.2"}, {"--curve"},
	} {
		args := append([]string{"eval", "--kb", faq, "--queries", queries, "--paraphrase-splits", "4"}, bad...)
		if _, errs, code := run(t, args...); code == 0 || !strings.Contains(errs, "--paraphrase-splits") {
			t.Errorf("%v: exit %d, stderr %q; want a refusal naming --paraphrase-splits", bad, code, errs)
		}
	}
	if _, errs, code := run(t, "eval", "--kb", faq, "--queries", queries, "--paraphrase-splits", "-3"); code == 0 {
		t.Errorf("negative split count accepted: %q", errs)
	}
}
