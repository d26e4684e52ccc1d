package evaluate

import (
	"math"
	"sort"
	"strings"
)

// Baseline is the classic lexical reference retriever: character 1+2-gram
// TF-IDF cosine over lower-cased text, one document per question, entry
// score = best question. It is deliberately plain (no normalisation, no
// learning) so that the bot's gains over it are measurable.
type Baseline struct {
	idf   map[string]float64
	docs  []bdoc
	post  map[string][]int
	nDocs int
}

type bdoc struct {
	entry string
	vec   map[string]float64
}

func baseGrams(s string) map[string]float64 {
	rs := []rune(strings.ToLower(s))
	m := map[string]float64{}
	for i := range rs {
		m[string(rs[i])]++
		if i+1 < len(rs) {
			m[string(rs[i:i+2])]++
		}
	}
	return m
}

// NewBaseline indexes questions (entry ids and texts, same length).
func NewBaseline(entries, texts []string) *Baseline {
	b := &Baseline{idf: map[string]float64{}, post: map[string][]int{}, nDocs: len(texts)}
	df := map[string]int{}
	tfs := make([]map[string]float64, len(texts))
	for i, t := range texts {
		tfs[i] = baseGrams(t)
		for g := range tfs[i] {
			df[g]++
		}
	}
	n := float64(len(texts))
	for g, d := range df {
		b.idf[g] = math.Log((1+n)/(1+float64(d))) + 1
	}
	for i, tf := range tfs {
		v := b.weigh(tf)
		b.docs = append(b.docs, bdoc{entries[i], v})
		for g := range v {
			b.post[g] = append(b.post[g], i)
		}
	}
	return b
}

func (b *Baseline) weigh(tf map[string]float64) map[string]float64 {
	v := map[string]float64{}
	var norm float64
	for g, c := range tf {
		idf, ok := b.idf[g]
		if !ok {
			idf = math.Log(1+float64(b.nDocs)) + 1
		}
		w := c * idf
		v[g] = w
		norm += w * w
	}
	norm = math.Sqrt(norm)
	for g := range v {
		v[g] /= norm
	}
	return v
}

// Search returns entry ids ranked by cosine, best first, at most k.
func (b *Baseline) Search(q string, k int) []string {
	qv := b.weigh(baseGrams(q))
	acc := map[int]float64{}
	for g, w := range qv {
		for _, d := range b.post[g] {
			acc[d] += w * b.docs[d].vec[g]
		}
	}
	best := map[string]float64{}
	for d, s := range acc {
		if e := b.docs[d].entry; s > best[e] {
			best[e] = s
		}
	}
	type es struct {
		e string
		s float64
	}
	list := make([]es, 0, len(best))
	for e, s := range best {
		list = append(list, es{e, s})
	}
	sort.Slice(list, func(i, j int) bool { return list[i].s > list[j].s || (list[i].s == list[j].s && list[i].e < list[j].e) })
	out := make([]string, 0, k)
	for _, x := range list {
		if len(out) == k {
			break
		}
		out = append(out, x.e)
	}
	return out
}
