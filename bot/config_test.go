package bot

import (
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"kefu/bot/embed"
)

// TestConfig_YAML decodes the documented keys strictly (unknown keys are
// errors, as the app's config loader will do) over the defaults.
func TestConfig_YAML(t *testing.T) {
	src := `
kb: configs/kb.sample.jsonl
data_dir: data/bot
thresholds: {answer: 0.7, clarify: 0.45, margin: 0.05}
max_misses: 3
clarify_options: 2
state_ttl: 10m
ask_rating: false
expansion: 0
texts:
  fallback: 抱歉，我没听懂。
handoff_words: [转人工, 人工]
not_handoff: [人工智能]
typos: {微粒代: 微粒贷}
embedding:
  url: http://127.0.0.1:8080/v1
  model: bge-small-zh
  batch_size: 32
  timeout: 5s
  query_timeout: 300ms
  retries: 1
  fusion: {method: weighted, dense_weight: 0.4}
qdrant: {addr: "qdrant:6334", collection: kefu_kb}
`
	cfg := DefaultConfig()
	dec := yaml.NewDecoder(strings.NewReader(src))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.Answer != 0.7 || cfg.StateTTL != 10*time.Minute || cfg.AskRating || cfg.Texts.Fallback != "抱歉，我没听懂。" ||
		cfg.Texts.Handoff == "" || cfg.Embedding.QueryTimeout != 300*time.Millisecond ||
		cfg.Embedding.Fusion.Method != embed.Weighted || cfg.Embedding.Fusion.DenseWeight != 0.4 || cfg.Qdrant.Collection != "kefu_kb" {
		t.Errorf("decoded %+v", cfg)
	}
	bad := yaml.NewDecoder(strings.NewReader("thresholds: {answr: 0.5}\n"))
	bad.KnownFields(true)
	c2 := DefaultConfig()
	if err := bad.Decode(&c2); err == nil {
		t.Error("unknown key accepted")
	}
}
