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

func TestRun_Sets(t *testing.T) {
	for _, set := range []string{"bq", "afqmc", "lcqmc"} {
		t.Run(set, func(t *testing.T) {
			queries, faq := loadSet(t, set)
			entries, err := LoadFAQ(faq)
			if err != nil {
				t.Fatal(err)
			}
			for _, half := range []int{0, 1} {
				res, err := Run(context.Background(), entries, queries, Options{Half: half})
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("%s half=%d: R@1 %.3f R@5 %.3f MRR %.3f n=%d | baseline R@1 %.3f R@5 %.3f | ratio %.2f", set, half, res.R1, res.R5, res.MRR10, res.N, res.Baseline.R1, res.Baseline.R5, res.R1/res.Baseline.R1)
			}
		})
	}
}
