package surveys

import "testing"

func tallyOf(scores ...int) Tally {
	var t Tally
	for _, s := range scores {
		t.Add(s)
	}
	t.Sent = len(scores)
	return t
}

func repeat(score, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = score
	}
	return out
}

func TestTally_Compute_HandComputed(t *testing.T) {
	cat := func(parts ...[]int) []int {
		var out []int
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	cases := []struct {
		name     string
		tally    Tally
		nps      float64
		p, pa, d float64
		n        int
		rate     float64
		defined  bool
	}{
		// The brief's case: 50 % promoters, 30 % detractors, 20 % passives → 50 − 30 = 20.
		{"50/30/20 → 20", tallyOf(cat(repeat(10, 25), repeat(9, 25), repeat(6, 10), repeat(3, 10), repeat(0, 10), repeat(8, 10), repeat(7, 10))...), 20, 50, 20, 30, 100, 100, true},
		// Read as promoters/passives/detractors instead the same split gives 30.
		{"P50/Pa30/D20 → 30", tallyOf(cat(repeat(10, 50), repeat(8, 30), repeat(5, 20))...), 30, 50, 30, 20, 100, 100, true},
		{"all detractors", tallyOf(0, 1, 2, 3, 4, 5, 6), -100, 0, 0, 100, 7, 100, true},
		{"all promoters", tallyOf(9, 10, 10), 100, 100, 0, 0, 3, 100, true},
		{"all passives", tallyOf(7, 8), 0, 0, 100, 0, 2, 100, true},
		// 1 promoter, 1 passive, 1 detractor: 33.3 − 33.3 = 0.
		{"thirds", tallyOf(10, 7, 6), 0, 33.3, 33.3, 33.3, 3, 100, true},
		// 2 promoters of 3 respondents, 0 detractors: 66.7.
		{"two of three", tallyOf(9, 9, 8), 66.7, 66.7, 33.3, 0, 3, 100, true},
		// 1 promoter, 2 detractors of 3: 33.3 − 66.7 = −33.3.
		{"negative third", tallyOf(10, 3, 0), -33.3, 33.3, 0, 66.7, 3, 100, true},
		// Boundaries: 6 is a detractor, 7 passive, 9 promoter.
		{"boundaries", tallyOf(6, 7, 8, 9), 0, 25, 50, 25, 4, 100, true},
		{"no answers", Tally{Sent: 12}, 0, 0, 0, 0, 0, 0, false},
		{"nothing", Tally{}, 0, 0, 0, 0, 0, 0, false},
		// 4 answers of 10 surveys sent: response rate 40 %.
		{"response rate", Tally{Sent: 10, Promoters: 2, Passives: 1, Detractors: 1}, 25, 50, 25, 25, 4, 40, true},
	}
	for _, c := range cases {
		got := c.tally.Compute()
		if got.Score != c.nps || got.Promoters != c.p || got.Passives != c.pa || got.Detractors != c.d || got.N != c.n || got.ResponseRate != c.rate || got.Defined != c.defined {
			t.Errorf("%s: got %+v, want nps=%v p=%v pa=%v d=%v n=%d rate=%v defined=%v", c.name, got, c.nps, c.p, c.pa, c.d, c.n, c.rate, c.defined)
		}
	}
}

func TestTally_MergeAndClassify(t *testing.T) {
	a, b := tallyOf(10, 0), tallyOf(8)
	a.Merge(b)
	if a.N() != 3 || a.Sent != 3 || a.Passives != 1 {
		t.Fatalf("merge: %+v", a)
	}
	for score, want := range map[int]string{0: "detractor", 6: "detractor", 7: "passive", 8: "passive", 9: "promoter", 10: "promoter"} {
		if got := Classify(score); got != want {
			t.Errorf("Classify(%d) = %s, want %s", score, got, want)
		}
	}
}
