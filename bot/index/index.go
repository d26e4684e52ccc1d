// Package index stores the vectors of knowledge-base questions and answers
// filtered nearest-neighbour queries: an embedded in-memory index persisted
// under data_dir (default) and a Qdrant-backed one.
package index

import (
	"context"
	"slices"
	"time"

	"kefu/bot/embed"
)

// Meta is the filterable payload of a document, copied from its entry.
type Meta struct {
	Stores     []string `json:"stores,omitempty"` // empty: every store
	Category   string   `json:"category,omitempty"`
	Visibility string   `json:"visibility"`
	Status     string   `json:"status"`
	// ValidUntil is a Unix time; 0 means no expiry.
	ValidUntil int64 `json:"valid_until,omitempty"`
}

// Doc is one indexed question of an entry. An entry has one Doc per
// question (standard and similar) plus one profile Doc (Seq = ProfileSeq,
// the mean of its question vectors); hits are pooled per entry (see Pool).
type Doc struct {
	Entry  string
	Seq    int // position of the question within the entry, or ProfileSeq
	Sparse embed.Sparse
	Dense  []float32
	Meta   Meta
	// Hash is the entry's content hash (kb.Entry.Hash), stored so a store
	// that outlives the process (Qdrant) can tell what changed on restart.
	Hash string
}

// Filter restricts a search. Zero fields do not filter.
type Filter struct {
	// Store keeps entries for every store plus those listing Store. With
	// Store empty only entries for every store match.
	Store string
	// AnyStore disables store filtering (agent search across the chain).
	AnyStore     bool
	Category     string
	Visibilities []string
	Statuses     []string
	// Now drops entries whose ValidUntil is not after it (zero: no check).
	Now time.Time
}

// Match reports whether m passes f.
func (f *Filter) Match(m *Meta) bool {
	if !f.AnyStore && len(m.Stores) > 0 && (f.Store == "" || !slices.Contains(m.Stores, f.Store)) {
		return false
	}
	if f.Category != "" && m.Category != f.Category {
		return false
	}
	if len(f.Visibilities) > 0 && !slices.Contains(f.Visibilities, m.Visibility) {
		return false
	}
	if len(f.Statuses) > 0 && !slices.Contains(f.Statuses, m.Status) {
		return false
	}
	if !f.Now.IsZero() && m.ValidUntil != 0 && f.Now.Unix() >= m.ValidUntil {
		return false
	}
	return true
}

// Query is what to search for: a sparse vector, a dense one, or both (hybrid).
type Query struct {
	Sparse embed.Sparse
	Dense  []float32
	// Fusion combines sparse and dense rankings when both are given.
	Fusion embed.Fusion
}

// Hit is one entry found, with its best question's score.
type Hit struct {
	Entry string
	// Score is the fused score (sparse cosine alone when no dense vector).
	Score  float64
	Sparse float64
	Dense  float64
	// Best is the lexical score of the entry's best-matching question
	// alone (before pooling); 1 means a perfect match, i.e. the question
	// reads like the query word for word after normalisation. Zero when
	// no lexical score is known (dense only, or Qdrant's fused query; the
	// bot then compares the texts of the best few entries instead).
	Best float64
}

// Index is the vector store interface the bot needs.
type Index interface {
	// Upsert adds or replaces the documents of the given entries: every
	// existing document of an entry named in docs is replaced.
	Upsert(ctx context.Context, docs []Doc) error
	// Delete removes every document of the entries.
	Delete(ctx context.Context, entries []string) error
	// Search returns up to k entries, best first.
	Search(ctx context.Context, q Query, f Filter, k int) ([]Hit, error)
	Close() error
}

// ProfileSeq marks an entry's profile document.
const ProfileSeq = -1

// Pooling weights of the entry score (see Pool), chosen together with the
// lexical options (bot's lexicalOptions) on the dev half of bq over 40
// random paraphrase halvings (docs/BENCHMARKS.md).
const (
	PoolSecond  = 0.2
	PoolProfile = 0.5
)

// Pool combines the scores of one entry's documents: its best question m1,
// its second best m2 and its profile p, as (m1 + 0.2·m2 + 0.5·p)/1.7.
// Several paraphrases matching, and matching the terms an entry's
// paraphrases share (the profile), is evidence beyond the single best
// question: on bq with half the queries added as similar questions it
// lifted R@1 on the dev half from 0.17 to 0.20 when it was introduced.
// With one question per entry
// it is the best question's score × 0.88, so rankings equal max-pooling.
func Pool(m1, m2, p float64) float64 {
	return (m1 + PoolSecond*m2 + PoolProfile*p) / (1 + PoolSecond + PoolProfile)
}

// pooler accumulates per-entry document scores.
type pooler struct {
	m1, m2, p float64
}

func (a *pooler) add(seq int, s float64) {
	switch {
	case seq == ProfileSeq:
		a.p = s
	case s > a.m1:
		a.m1, a.m2 = s, a.m1
	case s > a.m2:
		a.m2 = s
	}
}

func (a *pooler) score() float64 { return Pool(a.m1, a.m2, a.p) }
