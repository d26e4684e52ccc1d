package embed

import (
	"cmp"
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
	// IDFPower sharpens (>1) or flattens (<1) the idf weighting (default 1).
	IDFPower float64
	// K1 and B are the BM25 term-frequency saturation and length
	// normalisation of document vectors (defaults 0.8 and 0.5, tuned on the
	// dev half of the evaluation queries only).
	K1, B float64
}

func (o *LexicalOptions) defaults() {
	if o.MaxN <= 0 {
		o.MaxN = 3
	}
	if o.IDFPower <= 0 {
		o.IDFPower = 1
	}
	if o.K1 <= 0 {
		o.K1 = 0.8
	}
	if o.B < 0 || o.B > 1 {
		o.B = 0.5
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
// n-grams. Documents get BM25-saturated term frequencies, queries get idf
// weights learnt from the knowledge base's questions, so their inner product
// is the BM25 score; queries are scaled by the score a perfect match would
// get, so scores fall in [0,1] and thresholds mean the same on every KB.
// This split is also what Qdrant's sparse vectors with the IDF modifier
// compute (documents: Doc; query: QueryTF; Qdrant applies the idf).
//
// Term ids are 32-bit hashes of the n-gram, stable across rebuilds (Qdrant
// sparse indices, incremental re-indexing). A Lexical is read-only after
// Fit and safe for concurrent use.
type Lexical struct {
	opt    LexicalOptions
	df     map[uint32]int32
	docs   int
	sumLen float64
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
	l.docs, l.sumLen = 0, 0
	for _, d := range docs {
		l.AddDoc(d, 1)
	}
}

// AddDoc adds (sign=1) or removes (sign=-1) one document's terms from the
// document frequencies, for incremental re-indexing.
func (l *Lexical) AddDoc(doc string, sign int32) {
	seen := map[uint32]struct{}{}
	Grams(doc, l.opt.MaxN, func(n int, id uint32) {
		l.sumLen += float64(sign) * l.opt.Weights[n-1]
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

// FitEntries learns document frequencies counting each entry — all its
// questions together — as one document. With paraphrases in the KB this
// keeps an entry's signature words rare: under per-question counting, ten
// paraphrases of one entry saying "提额" would make "提额" look common and
// lower exactly the evidence that leads to that entry (bq with paraphrases,
// dev half: R@1 0.190 → 0.199). Without similar questions it equals Fit.
func (l *Lexical) FitEntries(groups [][]string) {
	l.df = make(map[uint32]int32, len(groups)*8)
	l.docs, l.sumLen = 0, 0
	for _, g := range groups {
		l.AddEntry(g, 1)
	}
}

// AddEntry adds (sign=1) or removes (sign=-1) one entry's questions as one
// document (see FitEntries), for incremental re-indexing. The average
// document length stays the average question length.
func (l *Lexical) AddEntry(questions []string, sign int32) {
	if len(questions) == 0 {
		return
	}
	seen := map[uint32]struct{}{}
	var length float64
	for _, q := range questions {
		Grams(q, l.opt.MaxN, func(n int, id uint32) {
			length += l.opt.Weights[n-1]
			if _, ok := seen[id]; !ok {
				seen[id] = struct{}{}
				l.df[id] += sign
				if l.df[id] <= 0 {
					delete(l.df, id)
				}
			}
		})
	}
	l.sumLen += float64(sign) * length / float64(len(questions))
	l.docs += int(sign)
}

// Docs is the number of documents the idf was learnt from.
func (l *Lexical) Docs() int { return l.docs }

// IDF is the BM25 inverse document frequency of term id (the formula
// Qdrant's IDF modifier uses). Terms unseen in the KB get the maximum, but
// they match nothing anyway.
func (l *Lexical) IDF(id uint32) float64 {
	n, df := float64(l.docs), float64(l.df[id])
	idf := math.Log(1 + (n-df+0.5)/(df+0.5))
	if l.opt.IDFPower != 1 {
		idf = math.Pow(idf, l.opt.IDFPower)
	}
	return idf
}

// counts returns the raw n-gram counts of text and its weighted length.
func (l *Lexical) counts(text string) (map[uint32]float64, map[uint32]int, float64) {
	c := make(map[uint32]float64, 3*len(text)/2)
	ns := make(map[uint32]int, 3*len(text)/2)
	var dl float64
	Grams(text, l.opt.MaxN, func(n int, id uint32) {
		c[id]++
		ns[id] = n
		dl += l.opt.Weights[n-1]
	})
	return c, ns, dl
}

func (l *Lexical) avgLen() float64 {
	if l.docs <= 0 || l.sumLen <= 0 {
		return 1
	}
	return l.sumLen / float64(l.docs)
}

// Doc returns the document vector of text: n-gram weight × BM25-saturated
// term frequency (no idf; the query carries it).
func (l *Lexical) Doc(text string) Sparse {
	c, ns, dl := l.counts(text)
	return l.doc(c, ns, dl)
}

// doc is Doc from text's counts (Query reuses the counts it has).
func (l *Lexical) doc(c map[uint32]float64, ns map[uint32]int, dl float64) Sparse {
	k1, b := l.opt.K1, l.opt.B
	norm := k1 * (1 - b + b*dl/l.avgLen())
	w := make(map[uint32]float64, len(c))
	for id, tf := range c {
		w[id] = l.opt.Weights[ns[id]-1] * tf * (k1 + 1) / (tf + norm)
	}
	return FromMap(w)
}

// QueryTF returns the query's n-gram weights without idf (for a store that
// applies idf itself, like Qdrant's IDF modifier), scaled like Query.
func (l *Lexical) QueryTF(text string) Sparse {
	q := l.Query(text)
	for i, id := range q.Idx {
		q.Val[i] /= float32(l.IDF(id))
	}
	return q
}

// Query returns the query vector of text: n-gram weight × idf, scaled so
// that a document identical to the query scores 1.
func (l *Lexical) Query(text string) Sparse {
	// The same numbers as building Doc's and the query's maps (counts, doc,
	// FromMap), from one sorted slice of the query's grams: this runs on
	// every customer message, where the maps were most of its cost.
	var buf [96]termGram
	gs := buf[:0]
	var dl float64
	Grams(text, l.opt.MaxN, func(n int, id uint32) {
		gs = append(gs, termGram{id, int32(n)})
		dl += l.opt.Weights[n-1]
	})
	// Stable, so the last gram of a run has the n the map kept (last write).
	slices.SortStableFunc(gs, func(a, b termGram) int { return cmp.Compare(a.id, b.id) })
	k1, b := l.opt.K1, l.opt.B
	norm := k1 * (1 - b + b*dl/l.avgLen())
	terms := 0
	for i := range gs {
		if i == 0 || gs[i].id != gs[i-1].id {
			terms++
		}
	}
	q := Sparse{Idx: make([]uint32, 0, terms), Val: make([]float32, 0, terms)}
	var self float64
	for i := 0; i < len(gs); {
		j, tf := i+1, 1.0
		for j < len(gs) && gs[j].id == gs[i].id {
			j++
			tf++
		}
		id, wn := gs[i].id, l.opt.Weights[gs[j-1].n-1]
		qw := wn * l.IDF(id)
		dw := wn * tf * (k1 + 1) / (tf + norm)
		if qw != 0 {
			q.Idx, q.Val = append(q.Idx, id), append(q.Val, float32(qw))
			if dw != 0 {
				self += float64(float32(qw)) * float64(float32(dw))
			}
		}
		i = j
	}
	if self > 0 {
		for i := range q.Val {
			q.Val[i] = float32(float64(q.Val[i]) / self)
		}
	}
	return q
}

// termGram is one n-gram occurrence: its term id and length.
type termGram struct {
	id uint32
	n  int32
}

// Embed returns the document vector of text (see Doc).
func (l *Lexical) Embed(text string) Sparse { return l.Doc(text) }

// EmbedQuery is Query plus association expansion (when learnt): terms that
// paraphrases of KB entries use instead of the query's terms are added with
// a fraction expand of the weight of the term they stand in for.
func (l *Lexical) EmbedQuery(text string, expand float64) Sparse {
	v := l.Query(text)
	if expand <= 0 || len(l.assoc) == 0 {
		return v
	}
	// Contributions are summed per term in the order the map summed them
	// (a stable sort keeps it), so the vector is the one FromMap built.
	var buf [128]termWeight64
	add := buf[:0]
	for i, id := range v.Idx {
		for _, a := range l.assoc[id] {
			add = append(add, termWeight64{a.Term, float64(v.Val[i]) * float64(a.W) * l.IDF(a.Term) / l.IDF(id)})
		}
	}
	if len(add) == 0 {
		return v
	}
	slices.SortStableFunc(add, func(a, b termWeight64) int { return cmp.Compare(a.term, b.term) })
	var ex Sparse
	for i := 0; i < len(add); {
		j, sum := i+1, add[i].w
		for j < len(add) && add[j].term == add[i].term {
			sum += add[j].w
			j++
		}
		if sum != 0 {
			ex.Idx, ex.Val = append(ex.Idx, add[i].term), append(ex.Val, float32(sum))
		}
		i = j
	}
	return v.AddScaled(ex, expand)
}

type termWeight64 struct {
	term uint32
	w    float64
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
