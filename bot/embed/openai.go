package embed

import (
	"context"
	"errors"
	"time"
)

// OpenAIConfig configures the OpenAI-compatible dense embedder.
type OpenAIConfig struct {
	BaseURL   string
	Model     string
	APIKey    string
	BatchSize int
	Timeout   time.Duration
	Retries   int
	CacheDir  string
}

// OpenAI is a client of POST /v1/embeddings.
type OpenAI struct{ cfg OpenAIConfig }

// NewOpenAI returns a client.
func NewOpenAI(cfg OpenAIConfig) *OpenAI { return &OpenAI{cfg} }

// Embed implements Dense.
func (o *OpenAI) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	return nil, errors.New("not implemented")
}
