package bot

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"kefu/bot/embed"
	"kefu/bot/index"
	"kefu/bot/kb"
	"kefu/bot/textnorm"
)

// Candidate is one knowledge-base entry proposed for a question.
type Candidate struct {
	EntryID  string  `json:"id"`
	Question string  `json:"question,omitempty"`
	Score    float64 `json:"score"`
	// Answer, Category and AgentOnly are filled for agent search only.
	Answer    string `json:"answer,omitempty"`
	Category  string `json:"category,omitempty"`
	AgentOnly bool   `json:"agent_only,omitempty"`
}

// retriever is an immutable view of one published KB: normaliser, lexical
// model and entry table. The index it points to is shared and updated in
// place on publish; a new retriever replaces the old one atomically.
type retriever struct {
	norm      *textnorm.Normalizer
	lex       *embed.Lexical
	idx       index.Index
	dense     embed.Dense
	fusion    embed.Fusion
	queryTO   time.Duration
	expansion float64
	entries   map[string]*kb.Entry
	hashes    map[string]string
	// drift counts entries re-indexed incrementally since the last full
	// build (see Publish).
	drift int
}

// lexicalOptions are the built-in embedder settings; changing them changes
// every vector, so they are part of the index fingerprint. Single
// characters weigh 4× a bigram: short colloquial questions share few
// bigrams with an entry's wording but most of its characters. Chosen with
// the pooling weights (index.Pool) on dev halves only — 40 random
// paraphrase halvings of bq, and plain bq, afqmc and lcqmc (BENCHMARKS.md).
var lexicalOptions = embed.LexicalOptions{MaxN: 2, Weights: []float64{4, 1}, K1: 1.2, B: 0.75}

// kbTexts returns the questions of every entry (normalised fitting corpus).
func kbTexts(entries []kb.Entry) []string {
	var out []string
	for i := range entries {
		out = append(out, entries[i].Questions()...)
	}
	return out
}

// newModel builds the normaliser and lexical model of a KB.
func newModel(entries []kb.Entry, typos map[string]string, assoc bool) (*textnorm.Normalizer, *embed.Lexical, []string) {
	norm := textnorm.New(textnorm.Options{Typos: typos})
	raw := kbTexts(entries)
	norm.Learn(raw)
	lex := embed.NewLexical(lexicalOptions)
	var normed []string
	var pairs []embed.Pair
	var groups [][]string
	for i := range entries {
		qs := entries[i].Questions()
		nq := make([]string, len(qs))
		for j, q := range qs {
			nq[j] = norm.Normalize(q)
		}
		normed = append(normed, nq...)
		groups = append(groups, nq)
		// Every pair of questions of one entry is a paraphrase pair.
		for a := 0; a < len(nq); a++ {
			for b := a + 1; b < len(nq); b++ {
				pairs = append(pairs, embed.Pair{A: nq[a], B: nq[b]})
			}
		}
	}
	lex.FitEntries(groups)
	if assoc && len(pairs) > 0 {
		lex.LearnAssociations(pairs, 2, 8)
	}
	return norm, lex, normed
}

// learnAssociations relearns query expansion from the entries' questions.
func learnAssociations(norm *textnorm.Normalizer, lex *embed.Lexical, entries []kb.Entry) {
	var pairs []embed.Pair
	for i := range entries {
		qs := entries[i].Questions()
		if len(qs) < 2 {
			continue
		}
		nq := make([]string, len(qs))
		for j, q := range qs {
			nq[j] = norm.Normalize(q)
		}
		for a := 0; a < len(nq); a++ {
			for b := a + 1; b < len(nq); b++ {
				pairs = append(pairs, embed.Pair{A: nq[a], B: nq[b]})
			}
		}
	}
	lex.LearnAssociations(pairs, 2, 8)
}

func metaOf(e *kb.Entry) index.Meta {
	m := index.Meta{Stores: e.Stores, Category: e.Category, Visibility: string(e.Visibility), Status: string(e.Status)}
	if !e.ValidUntil.IsZero() {
		m.ValidUntil = e.ValidUntil.Unix()
	}
	return m
}

// docsOf embeds an entry's questions.
func (r *retriever) docsOf(ctx context.Context, e *kb.Entry) ([]index.Doc, error) {
	qs := e.Questions()
	docs := make([]index.Doc, len(qs))
	texts := make([]string, len(qs))
	for i, q := range qs {
		n := r.norm.Normalize(q)
		texts[i] = n
		docs[i] = index.Doc{Entry: e.ID, Seq: i, Sparse: r.lex.Embed(n), Meta: metaOf(e), Hash: r.hashes[e.ID]}
	}
	var prof embed.Sparse
	for _, d := range docs {
		prof = prof.AddScaled(d.Sparse, 1/float64(len(docs)))
	}
	if r.dense != nil {
		vecs, err := r.dense.Embed(ctx, texts)
		if err != nil {
			return nil, fmt.Errorf("dense embedding of entry %s: %w", e.ID, err)
		}
		for i := range docs {
			docs[i].Dense = vecs[i]
		}
	}
	return append(docs, index.Doc{Entry: e.ID, Seq: index.ProfileSeq, Sparse: prof, Meta: metaOf(e), Hash: r.hashes[e.ID]}), nil
}

// sync brings the index from the entries described by old (id → hash) to
// r.entries, re-embedding only what changed; progress is reported per entry.
func (r *retriever) sync(ctx context.Context, old map[string]string, progress func(done, total int)) (changed, removed int, err error) {
	var todo []*kb.Entry
	for id, e := range r.entries {
		if old[id] != r.hashes[id] {
			todo = append(todo, e)
		}
	}
	slices.SortFunc(todo, func(a, b *kb.Entry) int { return strings.Compare(a.ID, b.ID) })
	var gone []string
	for id := range old {
		if _, ok := r.entries[id]; !ok {
			gone = append(gone, id)
		}
	}
	if len(gone) > 0 {
		if err := r.idx.Delete(ctx, gone); err != nil {
			return 0, 0, err
		}
	}
	const batch = 256
	for i := 0; i < len(todo); i += batch {
		var docs []index.Doc
		for _, e := range todo[i:min(i+batch, len(todo))] {
			d, err := r.docsOf(ctx, e)
			if err != nil {
				return 0, 0, err
			}
			docs = append(docs, d...)
		}
		if err := r.idx.Upsert(ctx, docs); err != nil {
			return 0, 0, err
		}
		if progress != nil {
			progress(min(i+batch, len(todo)), len(todo))
		}
	}
	return len(todo), len(gone), nil
}

// search returns the best k entries for text under filter f.
func (r *retriever) search(ctx context.Context, text string, f index.Filter, k int) ([]Candidate, string, error) {
	n := r.norm.Normalize(text)
	if n == "" {
		return nil, n, nil
	}
	q := index.Query{Sparse: r.lex.EmbedQuery(n, r.expansion), Fusion: r.fusion}
	if s, ok := r.idx.(interface{ IDFOnServer() bool }); ok && s.IDFOnServer() {
		// Qdrant's IDF modifier applies the idf itself.
		q.Sparse = r.lex.QueryTF(n)
	}
	if r.dense != nil {
		dctx := ctx
		if r.queryTO > 0 {
			var cancel context.CancelFunc
			dctx, cancel = context.WithTimeout(ctx, r.queryTO)
			defer cancel()
		}
		// A slow or failing embedding service degrades to lexical-only
		// retrieval instead of failing the customer's message.
		if v, err := r.dense.Embed(dctx, []string{n}); err == nil && len(v) == 1 {
			q.Dense = v[0]
		}
	}
	hits, err := r.idx.Search(ctx, q, f, k)
	if err != nil {
		return nil, n, err
	}
	out := make([]Candidate, 0, len(hits))
	exact := false
	for _, h := range hits {
		e, ok := r.entries[h.Entry]
		if !ok {
			continue // indexed by a newer publish than this view
		}
		c := Candidate{EntryID: e.ID, Question: e.Question, Score: h.Score}
		if h.Best >= exactScore {
			c.Score, exact = 1, true
		}
		out = append(out, c)
	}
	if !exact && !lexicalBest(hits) {
		// No lexical score came back (Qdrant's fused hybrid query): compare
		// the text itself for the best few entries instead.
		for i := range min(len(out), verbatimChecks) {
			if r.holdsVerbatim(out[i].EntryID, n) {
				out[i].Score, exact = 1, true
			}
		}
	}
	if exact {
		slices.SortStableFunc(out, func(a, b Candidate) int { return cmp.Compare(b.Score, a.Score) })
	}
	return out, n, nil
}

// verbatimChecks is how many of the best entries are compared by text when
// the store returned no lexical scores.
const verbatimChecks = 3

// lexicalBest reports whether any hit carries its best question's lexical
// score (index.Hit.Best).
func lexicalBest(hits []index.Hit) bool {
	for _, h := range hits {
		if h.Best > 0 {
			return true
		}
	}
	return false
}

// holdsVerbatim reports whether entry id has a question whose normalised
// text is n.
func (r *retriever) holdsVerbatim(id, n string) bool {
	e, ok := r.entries[id]
	if !ok {
		return false
	}
	for _, q := range e.Questions() {
		if r.norm.Normalize(q) == n {
			return true
		}
	}
	return false
}

// exactScore is the lexical score of a question that matches the query
// word for word (1 up to float32 rounding); where the store returns no
// lexical scores the normalised texts are compared. Such an entry scores 1: pooling
// rewards entries whose many phrasings agree with the query, which lowers
// an exact match of one phrasing among many diverse ones below the answer
// threshold — yet a question the KB holds verbatim (say, a missed question
// an agent linked to the entry) must be answered.
const exactScore = 0.999

func entryMap(entries []kb.Entry) (map[string]*kb.Entry, map[string]string) {
	m := make(map[string]*kb.Entry, len(entries))
	h := make(map[string]string, len(entries))
	for i := range entries {
		e := &entries[i]
		m[e.ID] = e
		h[e.ID] = e.Hash()
	}
	return m, h
}
