package embed

import (
	"encoding/binary"
	"math"
	"slices"
	"sort"
	"unicode/utf8"
)

// LexicalOptions tunes the built-in lexical embedder.
type LexicalOptions struct {
	// MaxN is the longest character n-gram (default 3).
	MaxN int
	// Weights[n-1] scales n-grams of length n (default 0.5, 1, 0.7). Single
	// characters recall paraphrases; bigrams carry most of the meaning in
	// Chinese; trigrams reward exact phrases.
	Weights []float64
}

func (o *LexicalOptions) defaults() {
	if o.MaxN <= 0 {
		o.MaxN = 3
	}
	if len(o.Weights) < o.MaxN {
		def := []float64{0.5, 1, 0.7, 0.5, 0.5}
		w := make([]float64, o.MaxN)
		copy(w, o.Weights)
		for i := len(o.Weights); i < o.MaxN; i++ {
			w[i] = def[min(i, len(def)-1)]
		}
		o.Weights = w
	}
}

// Lexical is the built-in embedder: text → sparse vector of hashed character
// n-grams, weighted by tf × idf where the idf is learnt from the knowledge
// base's questions. Term ids are 32-bit hashes of the n-gram, so they are
// stable across rebuilds (Qdrant sparse indices, incremental re-indexing).
// A Lexical is read-only after Fit and safe for concurrent use.
type Lexical struct {
	opt  LexicalOptions
	df   map[uint32]int32
	docs int
	// assoc expands a term into terms that paraphrases of the same entry use
	// instead (learnt by LearnAssociations).
	assoc map[uint32][]TermWeight
}

// TermWeight is a term id with a weight.
type TermWeight struct {
	Term uint32
	W    float32
}

// NewLexical returns an untrained embedder (all idf equal until Fit).
func NewLexical(opt LexicalOptions) *Lexical {
	opt.defaults()
	return &Lexical{opt: opt, df: map[uint32]int32{}}
}

// Options returns the options in effect.
func (l *Lexical) Options() LexicalOptions { return l.opt }

// Grams calls fn for every character n-gram (1..maxN) of text that does not
// span a space, with n and its hash id.
func Grams(text string, maxN int, fn func(n int, id uint32)) {
	var buf [16]rune
	rs := buf[:0]
	for _, r := range text {
		rs = append(rs, r)
	}
	var b [4]byte
	for i := range rs {
		if rs[i] == ' ' {
			continue
		}
		h := uint32(2166136261)
		for n := 1; n <= maxN && i+n <= len(rs); n++ {
			r := rs[i+n-1]
			if r == ' ' {
				break
			}
			binary.LittleEndian.PutUint32(b[:], uint32(r))
			for _, c := range b {
				h ^= uint32(c)
				h *= 16777619
			}
			// Mixing n in keeps a rune and a same-hash longer gram apart.
			fn(n, h^uint32(n)*0x9E3779B1)
		}
	}
}

// GramID is the id of one n-gram string (for tests and tools).
func GramID(gram string) uint32 {
	var id uint32
	n := utf8.RuneCountInString(gram)
	Grams(gram, n, func(k int, h uint32) {
		if k == n && id == 0 {
			id = h
		}
	})
	return id
}

// Fit learns document frequencies from docs (normalised questions).
func (l *Lexical) Fit(docs []string) {
	l.df = make(map[uint32]int32, len(docs)*8)
	l.docs = 0
	for _, d := range docs {
		l.AddDoc(d, 1)
	}
}

// AddDoc adds (sign=1) or removes (sign=-1) one document's terms from the
// document frequencies, for incremental re-indexing.
func (l *Lexical) AddDoc(doc string, sign int32) {
	seen := map[uint32]struct{}{}
	Grams(doc, l.opt.MaxN, func(_ int, id uint32) {
		if _, ok := seen[id]; !ok {
			seen[id] = struct{}{}
			l.df[id] += sign
			if l.df[id] <= 0 {
				delete(l.df, id)
			}
		}
	})
	l.docs += int(sign)
}

// Docs is the number of documents the idf was learnt from.
func (l *Lexical) Docs() int { return l.docs }

// IDF is the smoothed inverse document frequency of term id. Terms unseen in
// the KB get the maximum, but they match nothing anyway.
func (l *Lexical) IDF(id uint32) float64 {
	n := float64(l.docs)
	return math.Log((1+n)/(1+float64(l.df[id]))) + 1
}

// TF returns the n-gram-weighted, sublinear term frequencies of text
// (no idf): what Qdrant stores for a sparse vector with the IDF modifier.
func (l *Lexical) TF(text string) Sparse {
	m := make(map[uint32]float64, 3*len(text)/2)
	Grams(text, l.opt.MaxN, func(n int, id uint32) {
		m[id] += 1
		_ = n
	})
	w := make(map[uint32]float64, len(m))
	Grams(text, l.opt.MaxN, func(n int, id uint32) {
		if _, done := w[id]; !done {
			// Sublinear tf: a repeated character ("???", "钱钱钱") is not
			// more important for being repeated.
			w[id] = (1 + math.Log(m[id])) * l.opt.Weights[n-1]
		}
	})
	return FromMap(w)
}

// Embed returns the L2-normalised tf·idf vector of text.
func (l *Lexical) Embed(text string) Sparse {
	v := l.TF(text)
	for i, id := range v.Idx {
		v.Val[i] *= float32(l.IDF(id))
	}
	return v.Normalized()
}

// EmbedQuery is Embed plus association expansion (when learnt): terms that
// paraphrases of KB entries use for the query's terms are added with a
// fraction of their weight, then the vector is re-normalised.
func (l *Lexical) EmbedQuery(text string, expand float64) Sparse {
	v := l.Embed(text)
	if expand <= 0 || len(l.assoc) == 0 {
		return v
	}
	add := map[uint32]float64{}
	for i, id := range v.Idx {
		for _, a := range l.assoc[id] {
			add[a.Term] += float64(v.Val[i]) * float64(a.W) * l.IDF(a.Term) / l.IDF(id)
		}
	}
	if len(add) == 0 {
		return v
	}
	return v.AddScaled(FromMap(add), expand).Normalized()
}

// Pair is one paraphrase pair: a question and another question of the same entry.
type Pair struct{ A, B string }

// LearnAssociations learns, from paraphrase pairs of the knowledge base
// (an entry's standard question and its similar questions), which n-grams
// stand in for which: for each pair, every bigram+ of one side that the other
// side lacks is associated with the other side's unmatched terms. Counts are
// turned into conditional probabilities P(b|a) and kept when a co-occurs
// with b at least minCount times; top per term are kept. This is the
// "translation model" idea of QA retrieval (Xue, Jeon & Croft 2008) in a
// compact form: it lets a new query phrased like earlier paraphrases reach
// entries whose own questions use different words.
func (l *Lexical) LearnAssociations(pairs []Pair, minCount int, top int) {
	type key struct{ a, b uint32 }
	co := map[key]float64{}
	cnt := map[uint32]float64{}
	terms := func(s string) map[uint32]bool {
		m := map[uint32]bool{}
		Grams(s, l.opt.MaxN, func(n int, id uint32) {
			if n >= 2 {
				m[id] = true
			}
		})
		return m
	}
	for _, p := range pairs {
		ta, tb := terms(p.A), terms(p.B)
		var ua, ub []uint32
		for t := range ta {
			if !tb[t] {
				ua = append(ua, t)
			}
		}
		for t := range tb {
			if !ta[t] {
				ub = append(ub, t)
			}
		}
		if len(ua) == 0 || len(ub) == 0 {
			continue
		}
		// Each side's unmatched terms share one unit of evidence so that long
		// questions do not dominate.
		wa, wb := 1/float64(len(ub)), 1/float64(len(ua))
		for _, a := range ua {
			cnt[a]++
			for _, b := range ub {
				co[key{a, b}] += wa
			}
		}
		for _, b := range ub {
			cnt[b]++
			for _, a := range ua {
				co[key{b, a}] += wb
			}
		}
	}
	byTerm := map[uint32][]TermWeight{}
	for k, c := range co {
		if cnt[k.a] < float64(minCount) || c < 0.2 {
			continue
		}
		byTerm[k.a] = append(byTerm[k.a], TermWeight{k.b, float32(c / cnt[k.a])})
	}
	l.assoc = make(map[uint32][]TermWeight, len(byTerm))
	for t, ws := range byTerm {
		sort.Slice(ws, func(i, j int) bool { return ws[i].W > ws[j].W || (ws[i].W == ws[j].W && ws[i].Term < ws[j].Term) })
		if len(ws) > top {
			ws = ws[:top]
		}
		l.assoc[t] = slices.Clip(ws)
	}
}

// Associations is the number of terms with learnt associations.
func (l *Lexical) Associations() int { return len(l.assoc) }

// Clone returns a copy whose document frequencies can be updated (AddDoc)
// without disturbing searches that still use l.
func (l *Lexical) Clone() *Lexical {
	c := *l
	c.df = make(map[uint32]int32, len(l.df))
	for k, v := range l.df {
		c.df[k] = v
	}
	return &c
}
