package evaluate

import (
	"context"
	"math"
	"testing"

	"kefu/bot/kb"
)

// retailSet is a small knowledge base of our own with several phrasings
// per entry, so that paraphrases added as similar questions change ranks.
func retailSet() ([]kb.Entry, []QueryRow) {
	entries := []kb.Entry{
		{ID: "hours", Question: "门店营业时间是几点到几点", Answer: "a"},
		{ID: "refund", Question: "退款多久到账", Answer: "a"},
		{ID: "member", Question: "怎么注册会员", Answer: "a"},
		{ID: "delivery", Question: "配送要几天", Answer: "a"},
		{ID: "invoice", Question: "可以开发票吗", Answer: "a"},
	}
	var queries []QueryRow
	add := func(id string, qs ...string) {
		for _, q := range qs {
			queries = append(queries, QueryRow{Query: q, FAQID: id})
		}
	}
	add("hours", "几点关门", "几点开门", "晚上开到几点", "周末营业吗", "今天还开着吗", "早上几点可以去")
	add("refund", "钱什么时候退回来", "退货的钱几天到", "退款到哪了", "退的钱还没收到", "多久能退回")
	add("member", "怎么成为会员", "会员卡怎么办", "办会员要钱吗", "如何加入会员", "会员怎么申请")
	add("delivery", "快递几天能到", "送货要多久", "什么时候送到", "配送多长时间", "下单后几天到货")
	add("invoice", "能开发票吗", "发票怎么开", "要报销开票", "电子发票在哪", "可以开增值税发票吗")
	return entries, queries
}

func TestRunSplits_PoolsRunsOfEachHalving(t *testing.T) {
	entries, queries := retailSet()
	const k = 6
	got, err := RunSplits(context.Background(), entries, queries, k, Options{Half: -1})
	if err != nil {
		t.Fatal(err)
	}
	if got.Splits != k || len(got.Ratios) != k {
		t.Fatalf("splits %d, ratios %d, want %d", got.Splits, len(got.Ratios), k)
	}
	// Recompute every split by hand with Run: the pooled numbers must be
	// the sums of the splits' hits, and each split must evaluate exactly
	// the queries it did not add as similar questions.
	var n int
	var hits, base float64
	for i := range k {
		para, eval := splitBy(queries, func(q string) int { return SplitHalf(i, q) })
		if len(para) == 0 || len(eval) == 0 {
			t.Fatalf("split %d is not a halving: %d paraphrases, %d evaluated", i, len(para), len(eval))
		}
		r, err := Run(context.Background(), entries, eval, Options{Half: -1, Paraphrases: para})
		if err != nil {
			t.Fatal(err)
		}
		if r.N != len(eval) {
			t.Fatalf("split %d evaluated %d queries, want %d", i, r.N, len(eval))
		}
		n += r.N
		hits += math.Round(r.R1 * float64(r.N))
		base += math.Round(r.Baseline.R1 * float64(r.N))
		if want := r.R1 / r.Baseline.R1; math.Abs(got.Ratios[i]-want) > 1e-12 {
			t.Errorf("split %d ratio %v, want %v", i, got.Ratios[i], want)
		}
	}
	if got.N != n || math.Abs(got.R1-hits/float64(n)) > 1e-12 || math.Abs(got.BaselineR1-base/float64(n)) > 1e-12 {
		t.Fatalf("pooled n %d R@1 %v baseline %v, want %d %v %v", got.N, got.R1, got.BaselineR1, n, hits/float64(n), base/float64(n))
	}
	if math.Abs(got.Ratio-hits/base) > 1e-12 {
		t.Fatalf("pooled ratio %v, want %v", got.Ratio, hits/base)
	}
	if got.RatioMin > got.RatioMean || got.RatioMean > got.RatioMax || got.RatioSD < 0 {
		t.Fatalf("inconsistent spread: %+v", got)
	}
	// Different splits halve differently (otherwise repeating is pointless).
	differ := false
	for _, q := range queries {
		if SplitHalf(0, q.Query) != SplitHalf(1, q.Query) {
			differ = true
		}
	}
	if !differ {
		t.Fatal("splits 0 and 1 are the same halving")
	}
}

func TestRunSplits_RejectsConflictingOptions(t *testing.T) {
	entries, queries := retailSet()
	ctx := context.Background()
	if _, err := RunSplits(ctx, entries, queries, 0, Options{Half: -1}); err == nil {
		t.Error("0 splits accepted")
	}
	if _, err := RunSplits(ctx, entries, queries, 2, Options{Half: -1, Paraphrases: queries[:2]}); err == nil {
		t.Error("explicit paraphrases accepted")
	}
	if _, err := RunSplits(ctx, entries, queries, 2, Options{Half: -1, Withhold: 0.2}); err == nil {
		t.Error("withholding accepted")
	}
}
