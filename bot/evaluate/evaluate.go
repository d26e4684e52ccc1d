// Package evaluate measures the bot on FAQ retrieval sets (faq.jsonl +
// queries.jsonl): retrieval quality (R@1, R@5, MRR@10), decision quality
// (auto-answer precision/coverage, false-answer rate on questions whose
// entry was withheld), latency, and the same retrieval metrics for a plain
// TF-IDF baseline on the same data.
package evaluate

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"os"
	"slices"
	"sort"
	"time"

	"kefu/bot"
	"kefu/bot/kb"
)

// QueryRow is one evaluation query: a paraphrase of entry FAQID.
type QueryRow struct {
	Query string `json:"query"`
	FAQID string `json:"faq_id"`
}

// LoadQueries reads a queries.jsonl file.
func LoadQueries(path string) ([]QueryRow, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []QueryRow
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		if len(sc.Bytes()) == 0 {
			continue
		}
		var q QueryRow
		if err := json.Unmarshal(sc.Bytes(), &q); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		if q.Query == "" || q.FAQID == "" {
			return nil, fmt.Errorf("%s:%d: query and faq_id are required", path, line)
		}
		out = append(out, q)
	}
	return out, sc.Err()
}

// LoadFAQ reads an evaluation faq.jsonl (answers may be empty).
func LoadFAQ(path string) ([]kb.Entry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return kb.Import(f, kb.JSONL, kb.ImportOptions{Validate: kb.ValidateOptions{AllowEmptyAnswer: true}})
}

// Half assigns a query to a fixed half by hash: 0 = "dev" (used for every
// tuning decision: defaults, weights, thresholds), 1 = "test" (reported,
// never tuned on). The split depends on the text only, so it is the same in
// every run and on every machine.
func Half(query string) int {
	h := sha256.Sum256([]byte("kefu-eval-half:" + query))
	return int(h[0] & 1)
}

// ParaphraseHalf splits queries for paraphrase runs: rows with
// ParaphraseHalf == 0 become similar questions, the rest are evaluated.
// It uses a different hash from Half so the two splits are independent.
func ParaphraseHalf(query string) int {
	h := sha256.Sum256([]byte("kefu-eval-para:" + query))
	return int(h[0] & 1)
}

// Options configures Run.
type Options struct {
	// Paraphrases are added to their entries as similar questions.
	Paraphrases []QueryRow
	// Withhold removes this fraction of entries (chosen by Seed); their
	// queries measure the false-answer rate.
	Withhold float64
	Seed     int64
	// Half restricts evaluated queries: -1 all, 0 dev, 1 test.
	Half int
	// Config is the bot configuration (thresholds, expansion); KB is ignored.
	Config bot.Config
}

// Point is one threshold of the precision/coverage curve.
type Point struct {
	Answer          float64 `json:"answer"`
	Precision       float64 `json:"precision"`
	Coverage        float64 `json:"coverage"`
	FalseAnswerRate float64 `json:"false_answer_rate"`
}

// Metrics are retrieval metrics.
type Metrics struct {
	R1    float64 `json:"r1"`
	R5    float64 `json:"r5"`
	MRR10 float64 `json:"mrr10"`
	N     int     `json:"n"`
}

// Result is everything Run measures.
type Result struct {
	Metrics
	AnswerPrecision float64 `json:"answer_precision"`
	AnswerCoverage  float64 `json:"answer_coverage"`
	FalseAnswerRate float64 `json:"false_answer_rate"`
	// Withheld is the number of queries whose entry was withheld.
	Withheld int     `json:"withheld"`
	P50ms    float64 `json:"p50_ms"`
	P99ms    float64 `json:"p99_ms"`
	Baseline Metrics `json:"baseline"`
	Curve    []Point `json:"curve,omitempty"`
	// Suggested is the lowest answer threshold on Curve with false-answer
	// rate ≤ 10% (or the best precision when none qualifies).
	Suggested float64 `json:"suggested_answer"`
}

func keep(seed int64, id string, frac float64) bool {
	if frac <= 0 {
		return true
	}
	h := fnv.New64a()
	fmt.Fprintf(h, "%d:%s", seed, id)
	return float64(h.Sum64()%1_000_000)/1_000_000 >= frac
}

// Run evaluates the bot and the baseline on entries and queries.
func Run(ctx context.Context, entries []kb.Entry, queries []QueryRow, opt Options) (Result, error) {
	entries = slices.Clone(entries)
	byID := map[string]int{}
	for i := range entries {
		entries[i].Similar = slices.Clone(entries[i].Similar)
		byID[entries[i].ID] = i
	}
	for _, p := range opt.Paraphrases {
		if i, ok := byID[p.FAQID]; ok {
			entries[i].Similar = append(entries[i].Similar, p.Query)
		}
	}
	var kept []kb.Entry
	for _, e := range entries {
		if keep(opt.Seed, e.ID, opt.Withhold) {
			kept = append(kept, e)
		}
	}
	present := map[string]bool{}
	var bIDs, bTexts []string
	for _, e := range kept {
		present[e.ID] = true
		for _, q := range e.Questions() {
			bIDs, bTexts = append(bIDs, e.ID), append(bTexts, q)
		}
	}
	cfg := opt.Config
	if cfg.Answer == 0 {
		cfg = bot.DefaultConfig()
	}
	b, err := bot.NewWithEntries(cfg, kept, nil, nil)
	if err != nil {
		return Result{}, err
	}
	defer b.Close()
	base := NewBaseline(bIDs, bTexts)

	var res Result
	type scored struct {
		top, second float64
		correct     bool
		answerable  bool
	}
	var (
		rows []scored
		lat  []float64
	)
	for _, q := range queries {
		if opt.Half >= 0 && Half(q.Query) != opt.Half {
			continue
		}
		answerable := present[q.FAQID]
		t0 := time.Now()
		cands := b.Search(ctx, q.Query, "", false, 10)
		lat = append(lat, float64(time.Since(t0).Microseconds())/1000)
		s := scored{answerable: answerable}
		if len(cands) > 0 {
			s.top = cands[0].Score
			s.correct = cands[0].EntryID == q.FAQID
		}
		if len(cands) > 1 {
			s.second = cands[1].Score
		}
		rows = append(rows, s)
		if !answerable {
			res.Withheld++
			continue
		}
		res.N++
		rank := -1
		for i, c := range cands {
			if c.EntryID == q.FAQID {
				rank = i
				break
			}
		}
		addRank(&res.Metrics, rank)
		brank := slices.Index(base.Search(q.Query, 10), q.FAQID)
		res.Baseline.N++
		addRank(&res.Baseline, brank)
	}
	finish(&res.Metrics)
	finish(&res.Baseline)

	decide := func(th bot.Thresholds, s scored) bool {
		cands := []bot.Candidate{{Score: s.top}, {Score: s.second}}
		act, _, _ := bot.Decide(th, cands, 3)
		return act == bot.ActAnswer
	}
	eval := func(th bot.Thresholds) Point {
		var answered, correct, ans, falseAns, unans int
		for _, s := range rows {
			a := decide(th, s)
			if s.answerable {
				ans++
				if a {
					answered++
					if s.correct {
						correct++
					}
				}
			} else {
				unans++
				if a {
					falseAns++
				}
			}
		}
		return Point{Answer: th.Answer, Precision: ratio(correct, answered), Coverage: ratio(answered, ans), FalseAnswerRate: ratio(falseAns, unans)}
	}
	p := eval(cfg.Thresholds)
	res.AnswerPrecision, res.AnswerCoverage, res.FalseAnswerRate = p.Precision, p.Coverage, p.FalseAnswerRate
	res.Suggested = math.NaN()
	for t := 0.20; t <= 1.0001; t += 0.02 {
		th := cfg.Thresholds
		th.Answer = math.Round(t*100) / 100
		// A fixed clarify floor keeps the curve monotone: whether a runner-up
		// counts as "close" must not change along the sweep.
		th.Clarify = 0.2
		pt := eval(th)
		res.Curve = append(res.Curve, pt)
		if math.IsNaN(res.Suggested) && pt.FalseAnswerRate <= 0.10 && (res.Withheld > 0 || pt.Precision >= 0.9) {
			res.Suggested = th.Answer
		}
	}
	if math.IsNaN(res.Suggested) {
		res.Suggested = 1
	}
	sort.Float64s(lat)
	res.P50ms, res.P99ms = pct(lat, 0.50), pct(lat, 0.99)
	return res, nil
}

func addRank(m *Metrics, rank int) {
	if rank == 0 {
		m.R1++
	}
	if rank >= 0 && rank < 5 {
		m.R5++
	}
	if rank >= 0 && rank < 10 {
		m.MRR10 += 1 / float64(rank+1)
	}
}

func finish(m *Metrics) {
	if m.N == 0 {
		return
	}
	n := float64(m.N)
	m.R1, m.R5, m.MRR10 = m.R1/n, m.R5/n, m.MRR10/n
}

func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func pct(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}
