package evaluate

import (
	"context"
	"crypto/sha256"
	"errors"
	"math"
	"runtime"
	"strconv"

	"golang.org/x/sync/errgroup"

	"kefu/bot/kb"
)

// SplitHalf assigns a query to a half of the k-th repeated paraphrase
// split: rows with SplitHalf(k, q) == 0 become similar questions, the
// others are evaluated. Every k gives an independent random halving that
// depends on the text only (the same on every machine), and none of them
// is the fixed ParaphraseHalf split.
func SplitHalf(k int, query string) int {
	h := sha256.Sum256([]byte("kefu-eval-split:" + strconv.Itoa(k) + ":" + query))
	return int(h[0] & 1)
}

// splitBy splits queries by half(query): 0 are added as similar
// questions (para), the rest evaluated.
func splitBy(queries []QueryRow, half func(query string) int) (para, eval []QueryRow) {
	for _, q := range queries {
		if half(q.Query) == 0 {
			para = append(para, q)
		} else {
			eval = append(eval, q)
		}
	}
	return para, eval
}

// SplitResult summarises RunSplits: R@1 of the bot and of the baseline
// pooled over every evaluated query of every split, and the spread of
// the per-split ratio. One half of a few hundred queries moves the ratio
// by about ±0.1 (one query is 0.3 points of R@1), so a single split says
// little; the pooled ratio over many splits is the estimate.
type SplitResult struct {
	Splits int `json:"splits"`
	// N is the number of query evaluations over all splits (each query is
	// evaluated in about half of them).
	N          int     `json:"n"`
	R1         float64 `json:"r1"`
	BaselineR1 float64 `json:"baseline_r1"`
	// Ratio is R1 / BaselineR1 (pooled).
	Ratio float64 `json:"ratio"`
	// Ratios are the per-split ratios; Mean, SD, Min and Max summarise them.
	Ratios    []float64 `json:"ratios"`
	RatioMean float64   `json:"ratio_mean"`
	RatioSD   float64   `json:"ratio_sd"`
	RatioMin  float64   `json:"ratio_min"`
	RatioMax  float64   `json:"ratio_max"`
}

// RunSplits runs Run k times, split i adding the queries with
// SplitHalf(i, q) == 0 to their entries as similar questions and
// evaluating the rest (restricted to opt.Half as in Run). It measures
// retrieval only: opt.Paraphrases and opt.Withhold must be unset.
func RunSplits(ctx context.Context, entries []kb.Entry, queries []QueryRow, k int, opt Options) (SplitResult, error) {
	if k <= 0 {
		return SplitResult{}, errors.New("evaluate: the number of splits must be positive")
	}
	if len(opt.Paraphrases) > 0 || opt.Withhold > 0 {
		return SplitResult{}, errors.New("evaluate: repeated splits choose the paraphrases themselves and withhold nothing")
	}
	// Splits are independent: run them on every core, each into its slot.
	runs := make([]Result, k)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0))
	for i := range k {
		g.Go(func() error {
			para, eval := splitBy(queries, func(q string) int { return SplitHalf(i, q) })
			o := opt
			o.Paraphrases = para
			r, err := Run(gctx, entries, eval, o)
			runs[i] = r
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return SplitResult{}, err
	}
	res := SplitResult{Splits: k, RatioMin: math.Inf(1), RatioMax: math.Inf(-1)}
	var hits, baseHits float64
	for _, r := range runs {
		n := float64(r.N)
		res.N += r.N
		hits += math.Round(r.R1 * n)
		baseHits += math.Round(r.Baseline.R1 * n)
		ratio := 0.0
		if r.Baseline.R1 > 0 {
			ratio = r.R1 / r.Baseline.R1
		}
		res.Ratios = append(res.Ratios, ratio)
		res.RatioMin, res.RatioMax = min(res.RatioMin, ratio), max(res.RatioMax, ratio)
		res.RatioMean += ratio / float64(k)
	}
	if res.N > 0 {
		res.R1, res.BaselineR1 = hits/float64(res.N), baseHits/float64(res.N)
	}
	if baseHits > 0 {
		res.Ratio = hits / baseHits
	}
	for _, r := range res.Ratios {
		res.RatioSD += (r - res.RatioMean) * (r - res.RatioMean)
	}
	if k > 1 {
		res.RatioSD = math.Sqrt(res.RatioSD / float64(k-1))
	} else {
		res.RatioSD = 0
	}
	return res, nil
}
