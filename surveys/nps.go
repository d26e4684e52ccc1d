package surveys

import "math"

// Score bands of the Net Promoter Score (PRODUCT.md §6).
const (
	PromoterMin  = 9 // 9–10
	DetractorMax = 6 // 0–6
)

// Tally counts surveys and answers of one group.
type Tally struct {
	Sent       int `json:"sent"`
	Promoters  int `json:"promoters"`
	Passives   int `json:"passives"`
	Detractors int `json:"detractors"`
}

// Add counts one answered score.
func (t *Tally) Add(score int) {
	switch {
	case score >= PromoterMin:
		t.Promoters++
	case score > DetractorMax:
		t.Passives++
	default:
		t.Detractors++
	}
}

// N is the number of respondents.
func (t Tally) N() int { return t.Promoters + t.Passives + t.Detractors }

// Merge adds u's counts to t.
func (t *Tally) Merge(u Tally) {
	t.Sent += u.Sent
	t.Promoters += u.Promoters
	t.Passives += u.Passives
	t.Detractors += u.Detractors
}

// NPS is one group's Net Promoter Score with everything PRODUCT.md §6 says
// must be shown beside it.
type NPS struct {
	// Score is %promoters − %detractors, −100..+100, rounded to one
	// decimal; meaningless (0) when N is 0, which Defined says.
	Score      float64 `json:"nps"`
	Defined    bool    `json:"defined"`
	N          int     `json:"n"`
	Promoters  float64 `json:"pct_promoters"`
	Passives   float64 `json:"pct_passives"`
	Detractors float64 `json:"pct_detractors"`
	// Sent counts surveys delivered; ResponseRate is N ÷ Sent in percent
	// (0 when nothing was sent).
	Sent         int     `json:"sent"`
	ResponseRate float64 `json:"response_rate"`
}

// Compute derives the NPS of t. Percentages are of respondents, so
// promoters + passives + detractors = 100 (up to rounding).
func (t Tally) Compute() NPS {
	n := t.N()
	out := NPS{N: n, Sent: t.Sent}
	if t.Sent > 0 {
		out.ResponseRate = round1(100 * float64(n) / float64(t.Sent))
	}
	if n == 0 {
		return out
	}
	p := 100 * float64(t.Promoters) / float64(n)
	d := 100 * float64(t.Detractors) / float64(n)
	out.Defined = true
	out.Promoters = round1(p)
	out.Passives = round1(100 * float64(t.Passives) / float64(n))
	out.Detractors = round1(d)
	// Round the difference of the exact shares, not of the rounded ones.
	out.Score = round1(p - d)
	return out
}

// Classify names a score's band: "promoter", "passive" or "detractor".
func Classify(score int) string {
	switch {
	case score >= PromoterMin:
		return "promoter"
	case score > DetractorMax:
		return "passive"
	}
	return "detractor"
}

func round1(f float64) float64 {
	r := math.Round(f*10) / 10
	if r == 0 {
		return 0 // no "-0"
	}
	return r
}
