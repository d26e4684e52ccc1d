// Package embed turns normalised text into vectors: the built-in lexical
// embedder (sparse, character n-grams weighted by IDF learnt from the
// knowledge base), an OpenAI-compatible dense embedder client, and rank
// fusion for hybrid retrieval.
package embed

import (
	"math"
	"slices"
)

// Sparse is a sparse vector with strictly increasing indices.
type Sparse struct {
	Idx []uint32
	Val []float32
}

// Len is the number of non-zero dimensions.
func (s Sparse) Len() int { return len(s.Idx) }

// Dot is the inner product of two sparse vectors.
func (s Sparse) Dot(o Sparse) float64 {
	var sum float64
	i, j := 0, 0
	for i < len(s.Idx) && j < len(o.Idx) {
		switch {
		case s.Idx[i] == o.Idx[j]:
			sum += float64(s.Val[i]) * float64(o.Val[j])
			i++
			j++
		case s.Idx[i] < o.Idx[j]:
			i++
		default:
			j++
		}
	}
	return sum
}

// Norm is the L2 norm.
func (s Sparse) Norm() float64 {
	var sum float64
	for _, v := range s.Val {
		sum += float64(v) * float64(v)
	}
	return math.Sqrt(sum)
}

// Normalized returns s scaled to unit length (s itself when zero).
func (s Sparse) Normalized() Sparse {
	n := s.Norm()
	if n == 0 {
		return s
	}
	out := Sparse{Idx: slices.Clone(s.Idx), Val: make([]float32, len(s.Val))}
	for i, v := range s.Val {
		out.Val[i] = float32(float64(v) / n)
	}
	return out
}

// FromMap builds a Sparse from a map, dropping zeros.
func FromMap(m map[uint32]float64) Sparse {
	s := Sparse{Idx: make([]uint32, 0, len(m)), Val: make([]float32, 0, len(m))}
	for k, v := range m {
		if v != 0 {
			s.Idx = append(s.Idx, k)
		}
	}
	slices.Sort(s.Idx)
	for _, k := range s.Idx {
		s.Val = append(s.Val, float32(m[k]))
	}
	return s
}

// AddScaled returns s + f·o.
func (s Sparse) AddScaled(o Sparse, f float64) Sparse {
	out := Sparse{Idx: make([]uint32, 0, len(s.Idx)+len(o.Idx)), Val: make([]float32, 0, len(s.Idx)+len(o.Idx))}
	i, j := 0, 0
	for i < len(s.Idx) || j < len(o.Idx) {
		switch {
		case j >= len(o.Idx) || (i < len(s.Idx) && s.Idx[i] < o.Idx[j]):
			out.Idx, out.Val = append(out.Idx, s.Idx[i]), append(out.Val, s.Val[i])
			i++
		case i >= len(s.Idx) || o.Idx[j] < s.Idx[i]:
			out.Idx, out.Val = append(out.Idx, o.Idx[j]), append(out.Val, float32(f*float64(o.Val[j])))
			j++
		default:
			out.Idx, out.Val = append(out.Idx, s.Idx[i]), append(out.Val, s.Val[i]+float32(f*float64(o.Val[j])))
			i++
			j++
		}
	}
	return out
}
