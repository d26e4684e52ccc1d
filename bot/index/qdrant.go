package index

import (
	"context"
	"errors"
)

// QdrantConfig configures the Qdrant store.
type QdrantConfig struct {
	Addr       string
	APIKey     string
	TLS        bool
	Collection string
}

// NewQdrant connects to Qdrant.
func NewQdrant(ctx context.Context, cfg QdrantConfig) (Index, error) {
	return nil, errors.New("not implemented")
}
