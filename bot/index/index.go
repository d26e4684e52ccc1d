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
// question (standard and similar); hits are pooled per entry.
type Doc struct {
	Entry  string
	Seq    int // position of the question within the entry
	Sparse embed.Sparse
	Dense  []float32
	Meta   Meta
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
