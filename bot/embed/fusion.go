package embed

import "sort"

// FusionMethod names how sparse and dense rankings are combined.
type FusionMethod string

// Fusion methods.
const (
	// RRF is reciprocal rank fusion: Σ 1/(k+rank). Robust to incomparable
	// score scales; what Qdrant's Fusion.RRF does.
	RRF FusionMethod = "rrf"
	// Weighted is a convex combination of the raw similarity scores; keeps
	// scores interpretable for thresholds.
	Weighted FusionMethod = "weighted"
)

// Fusion configures hybrid scoring.
type Fusion struct {
	Method FusionMethod `yaml:"method"`
	// DenseWeight is the weight of the dense score in Weighted fusion (0..1).
	DenseWeight float64 `yaml:"dense_weight"`
	// K is the RRF constant (default 60).
	K float64 `yaml:"k"`
}

// Scored is one ranked item for fusion.
type Scored struct {
	ID    string
	Score float64
}

// Fuse combines two rankings (best first). For RRF the returned scores are
// rescaled so that rank 1 in both lists scores 1, keeping them usable with
// the same thresholds as cosine scores.
func Fuse(f Fusion, sparse, dense []Scored) []Scored {
	acc := map[string]float64{}
	switch f.Method {
	case Weighted:
		w := f.DenseWeight
		for _, s := range sparse {
			acc[s.ID] += (1 - w) * s.Score
		}
		for _, d := range dense {
			acc[d.ID] += w * d.Score
		}
	default:
		k := f.K
		if k <= 0 {
			k = 60
		}
		for i, s := range sparse {
			acc[s.ID] += 1 / (k + float64(i+1))
		}
		for i, d := range dense {
			acc[d.ID] += 1 / (k + float64(i+1))
		}
		for id := range acc {
			acc[id] /= 2 / (k + 1)
		}
	}
	out := make([]Scored, 0, len(acc))
	for id, s := range acc {
		out = append(out, Scored{id, s})
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Score > out[j].Score || (out[i].Score == out[j].Score && out[i].ID < out[j].ID)
	})
	return out
}
