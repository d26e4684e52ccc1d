package evaluate

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// evalDir is where the evaluation-only data sets live; they are read in
// place and never copied into the repository (licence).
const evalDir = "/work/shared/eval"

func loadSet(t testing.TB, name string) ([]QueryRow, string) {
	t.Helper()
	dir := filepath.Join(evalDir, name)
	if _, err := os.Stat(filepath.Join(dir, "faq.jsonl")); err != nil {
		t.Skipf("evaluation set %s not available: %v", name, err)
	}
	q, err := LoadQueries(filepath.Join(dir, "queries.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	return q, filepath.Join(dir, "faq.jsonl")
}

// TestRun_QualityBar checks the retrieval bar on the held-out test half
// (Half == 1), which no tuning decision looked at: R@1 ≥ 1.10× the TF-IDF
// baseline on bq and afqmc, not below it on lcqmc, and ≥ 1.20× the
// baseline given the same similar questions on bq with paraphrases.
//
// With paraphrases one halving evaluates ~330 test-half queries, and the
// ratio of one halving has a standard deviation of about 0.10 (one query
// is 0.3 points of R@1), so the bar is checked on R@1 pooled over 200
// random halvings (RunSplits), and the fixed split of earlier sessions is
// only required not to fall below the baseline.
func TestRun_QualityBar(t *testing.T) {
	if testing.Short() {
		t.Skip("evaluation runs take seconds")
	}
	bars := []struct {
		set    string
		para   bool
		splits int
		ratio  float64
	}{{"bq", false, 0, 1.10}, {"afqmc", false, 0, 1.10}, {"lcqmc", false, 0, 1.0},
		{"bq", true, 0, 1.0}, {"bq", true, 200, 1.20}}
	for _, bar := range bars {
		if raceEnabled && (bar.set == "lcqmc" || bar.para) {
			t.Logf("%s para=%v skipped under -race (slow, not a concurrency test)", bar.set, bar.para)
			continue
		}
		queries, faq := loadSet(t, bar.set)
		entries, err := LoadFAQ(faq)
		if err != nil {
			t.Fatal(err)
		}
		if bar.splits > 0 {
			res, err := RunSplits(context.Background(), entries, queries, bar.splits, Options{Half: 1})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s, %d paraphrase halvings, test half: pooled R@1 %.3f vs baseline %.3f (n=%d): %.3f×; per halving mean %.2f sd %.2f min %.2f max %.2f",
				bar.set, res.Splits, res.R1, res.BaselineR1, res.N, res.Ratio, res.RatioMean, res.RatioSD, res.RatioMin, res.RatioMax)
			if res.Ratio < bar.ratio {
				t.Errorf("%s over %d paraphrase halvings: pooled R@1 %.3f is %.3f× the baseline %.3f, want ≥ %.2f×", bar.set, res.Splits, res.R1, res.Ratio, res.BaselineR1, bar.ratio)
			}
			continue
		}
		opt := Options{Half: 1}
		if bar.para {
			opt.Paraphrases, queries = splitBy(queries, ParaphraseHalf)
		}
		res, err := Run(context.Background(), entries, queries, opt)
		if err != nil {
			t.Fatal(err)
		}
		ratio := res.R1 / res.Baseline.R1
		t.Logf("%s para=%v test half: R@1 %.3f R@5 %.3f MRR@10 %.3f n=%d | baseline R@1 %.3f | ratio %.2f", bar.set, bar.para, res.R1, res.R5, res.MRR10, res.N, res.Baseline.R1, ratio)
		if ratio < bar.ratio {
			t.Errorf("%s para=%v: R@1 %.3f is %.2f× the baseline %.3f, want ≥ %.2f×", bar.set, bar.para, res.R1, ratio, res.Baseline.R1, bar.ratio)
		}
	}
}

func TestRun_Withhold(t *testing.T) {
	if testing.Short() {
		t.Skip("evaluation runs take seconds")
	}
	queries, faq := loadSet(t, "bq")
	entries, err := LoadFAQ(faq)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(context.Background(), entries, queries, Options{Half: -1, Withhold: 0.2, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if res.Withheld == 0 || res.N+res.Withheld != len(queries) {
		t.Fatalf("withheld %d + answerable %d != %d queries", res.Withheld, res.N, len(queries))
	}
	if len(res.Curve) == 0 {
		t.Fatal("no precision/coverage curve")
	}
	// Raising the answer threshold can only answer fewer questions.
	for i := 1; i < len(res.Curve); i++ {
		if res.Curve[i].Coverage > res.Curve[i-1].Coverage+1e-9 {
			t.Fatalf("coverage grows with the threshold at %v: %+v", res.Curve[i].Answer, res.Curve[i-1:i+1])
		}
	}
}
