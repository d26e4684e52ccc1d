package embed

import "context"

// Dense embeds texts into dense vectors (one per text, same order).
type Dense interface {
	Embed(ctx context.Context, texts []string) ([][]float32, error)
}
