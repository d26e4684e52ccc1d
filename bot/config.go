package bot

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"kefu/bot/embed"
)

// Default thresholds. Scores are cosine similarities of the lexical vectors
// (0..1). They were picked on the bq evaluation set with 20% of entries
// withheld so that the false-answer rate stays ≤ 10% (see BENCHMARKS.md);
// every KB should re-tune them with `kefu kb tune` once it has labels.
const (
	DefaultAnswer  = 0.70
	DefaultClarify = 0.55
	DefaultMargin  = 0.06
	// DefaultMaxMisses is how many fallbacks in a row hand off to a human.
	DefaultMaxMisses = 2
	// DefaultStateTTL is how long a customer's pending choice, rating prompt
	// and miss counter live: a reply "2" an hour later is a new question.
	DefaultStateTTL = 30 * time.Minute
	// DefaultExpansion weights learnt query expansion (0 disables it). It
	// is off by default: on the dev half of bq with paraphrases it gave no
	// gain over the entry pooling of similar questions (index.Pool).
	DefaultExpansion = 0
	// DefaultClarifyOptions is how many candidates a clarify offers at most.
	DefaultClarifyOptions = 3
)

// Thresholds drive the decision policy; they belong to one knowledge base.
type Thresholds struct {
	// Answer is the minimum top score to answer directly.
	Answer float64 `yaml:"answer" json:"answer"`
	// Clarify is the minimum score for a candidate to be offered in a
	// clarifying question; below it the bot falls back.
	Clarify float64 `yaml:"clarify" json:"clarify"`
	// Margin: candidates within Margin of the top score are "close"; when
	// more than one is close the bot asks instead of guessing.
	Margin float64 `yaml:"margin" json:"margin"`
}

// Texts are the customer-facing messages, in Chinese by default.
type Texts struct {
	ClarifyHead string `yaml:"clarify_head"`
	ClarifyTail string `yaml:"clarify_tail"`
	// Confirm asks about a single uncertain candidate; %s is its question.
	Confirm    string `yaml:"confirm"`
	Fallback   string `yaml:"fallback"`
	Handoff    string `yaml:"handoff"`
	RatePrompt string `yaml:"rate_prompt"`
	RateThanks string `yaml:"rate_thanks"`
	RateSorry  string `yaml:"rate_sorry"`
	Greeting   string `yaml:"greeting"`
	NoneOfThem string `yaml:"none_of_them"`
}

// DefaultTexts returns the built-in Chinese texts.
func DefaultTexts() Texts {
	return Texts{
		ClarifyHead: "您想问的是以下哪个问题？",
		ClarifyTail: "请回复序号（如 1），都不是请回复 0。",
		Confirm:     "您是想问「%s」吗？回复 1 是，回复 0 不是。",
		Fallback:    "抱歉，这个问题我暂时回答不了。您可以换个说法再问，或回复“人工”转接人工客服。",
		Handoff:     "好的，正在为您转接人工客服，请稍候。",
		RatePrompt:  "有帮助吗？1 有 2 没有",
		RateThanks:  "感谢您的反馈！",
		RateSorry:   "抱歉没能帮到您。回复“人工”可转接人工客服。",
		Greeting:    "您好，请问有什么可以帮您？",
		NoneOfThem:  "好的，请您换个说法描述一下问题，或回复“人工”转接人工客服。",
	}
}

// EmbeddingConfig enables the optional dense embedder: any OpenAI-compatible
// POST /v1/embeddings endpoint (e.g. a local bge-m3 server).
type EmbeddingConfig struct {
	URL    string `yaml:"url"` // base URL, e.g. http://127.0.0.1:8080/v1
	Model  string `yaml:"model"`
	APIKey string `yaml:"api_key"`
	// BatchSize is the most inputs per request (default 64).
	BatchSize int           `yaml:"batch_size"`
	Timeout   time.Duration `yaml:"timeout"`
	// QueryTimeout bounds the embedding call inside Respond; on timeout the
	// bot answers from the lexical index alone.
	QueryTimeout time.Duration `yaml:"query_timeout"`
	Retries      int           `yaml:"retries"`
	Fusion       embed.Fusion  `yaml:"fusion"`
}

// QdrantConfig switches the vector store to Qdrant (gRPC).
type QdrantConfig struct {
	Addr       string `yaml:"addr"` // host:port of the gRPC API (6334)
	APIKey     string `yaml:"api_key"`
	TLS        bool   `yaml:"tls"`
	Collection string `yaml:"collection"`
}

// Config configures a Bot.
type Config struct {
	// KB is the path of the knowledge-base file (.jsonl, .yaml, .csv, .xlsx).
	KB string `yaml:"kb"`
	// DataDir holds the persisted index and the curation journal; empty
	// keeps everything in memory.
	DataDir    string `yaml:"data_dir"`
	Thresholds `yaml:"thresholds"`
	// MaxMisses fallbacks in a row hand off to a human.
	MaxMisses int `yaml:"max_misses"`
	// ClarifyOptions is the most candidates offered in a clarify (2..9).
	ClarifyOptions int `yaml:"clarify_options"`
	// StateTTL bounds per-customer memory.
	StateTTL time.Duration `yaml:"state_ttl"`
	// AskRating appends Texts.RatePrompt to answers.
	AskRating bool `yaml:"ask_rating"`
	// Expansion weights learnt query expansion (0 disables).
	Expansion float64 `yaml:"expansion"`
	Texts     Texts   `yaml:"texts"`
	// HandoffWords are explicit requests for a human; AngerWords are
	// complaints and insults. Both hand off at once. Matched after width
	// and case folding.
	HandoffWords []string `yaml:"handoff_words"`
	AngerWords   []string `yaml:"anger_words"`
	// NotHandoff are phrases that contain a handoff or anger word but mean
	// something else; they are ignored when matching.
	NotHandoff []string `yaml:"not_handoff"`
	// Typos are extra corrections applied to questions and queries.
	Typos     map[string]string `yaml:"typos"`
	Embedding *EmbeddingConfig  `yaml:"embedding"`
	Qdrant    *QdrantConfig     `yaml:"qdrant"`
	// Progress, when set, is called while New indexes the KB (e.g. a
	// terminal progress bar from kb.NewBar).
	Progress func(done, total int) `yaml:"-"`
}

// DefaultHandoffWords are explicit requests for a person.
var DefaultHandoffWords = []string{"转人工", "人工客服", "人工服务", "人工", "真人", "客服", "human", "agent", "找经理", "店长"}

// DefaultNotHandoff are longer words that contain a handoff or anger word
// without meaning it ("人工智能" is not a request for a person, "滚筒" is a
// washing machine); they are blanked out before matching.
var DefaultNotHandoff = []string{"人工智能", "人工湖", "人工费", "滚筒", "滚动", "翻滚", "滚梯"}

// DefaultAngerWords are complaint and anger markers.
var DefaultAngerWords = []string{"投诉", "举报", "差评", "垃圾", "骗子", "骗人", "坑人", "欺诈", "太差", "气死", "什么破", "滚", "妈的", "他妈", "tmd", "退钱", "12315", "消协", "律师", "曝光"}

// DefaultConfig returns a Config with every default set.
func DefaultConfig() Config {
	return Config{
		Thresholds:     Thresholds{Answer: DefaultAnswer, Clarify: DefaultClarify, Margin: DefaultMargin},
		MaxMisses:      DefaultMaxMisses,
		ClarifyOptions: DefaultClarifyOptions,
		StateTTL:       DefaultStateTTL,
		AskRating:      true,
		Expansion:      DefaultExpansion,
		Texts:          DefaultTexts(),
		HandoffWords:   DefaultHandoffWords,
		AngerWords:     DefaultAngerWords,
		NotHandoff:     DefaultNotHandoff,
	}
}

// Validate checks the configuration; errors name the YAML key path.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, f string, a ...any) {
		errs = append(errs, fmt.Errorf("bot.%s: "+f, append([]any{key}, a...)...))
	}
	in01 := func(key string, v float64) {
		if !(v > 0 && v <= 1) {
			bad(key, "must be in (0,1], got %v", v)
		}
	}
	if strings.TrimSpace(c.KB) == "" {
		bad("kb", "required (path of the knowledge base file)")
	}
	in01("thresholds.answer", c.Answer)
	in01("thresholds.clarify", c.Clarify)
	if c.Clarify > c.Answer {
		bad("thresholds.clarify", "must not exceed thresholds.answer (%v > %v)", c.Clarify, c.Answer)
	}
	if c.Margin < 0 || c.Margin >= 1 {
		bad("thresholds.margin", "must be in [0,1), got %v", c.Margin)
	}
	if c.MaxMisses < 1 {
		bad("max_misses", "must be at least 1, got %d", c.MaxMisses)
	}
	if c.ClarifyOptions < 2 || c.ClarifyOptions > 9 {
		bad("clarify_options", "must be in [2,9], got %d", c.ClarifyOptions)
	}
	if c.StateTTL <= 0 {
		bad("state_ttl", "must be positive, got %v", c.StateTTL)
	}
	if c.Expansion < 0 || c.Expansion > 1 {
		bad("expansion", "must be in [0,1], got %v", c.Expansion)
	}
	t := c.Texts
	for _, kv := range []struct{ k, v string }{
		{"clarify_head", t.ClarifyHead}, {"fallback", t.Fallback}, {"handoff", t.Handoff}, {"confirm", t.Confirm},
		{"rate_prompt", t.RatePrompt}, {"rate_thanks", t.RateThanks}, {"rate_sorry", t.RateSorry},
		{"greeting", t.Greeting}, {"none_of_them", t.NoneOfThem},
	} {
		if strings.TrimSpace(kv.v) == "" {
			bad("texts."+kv.k, "must not be empty")
		}
	}
	if t.Confirm != "" && strings.Count(t.Confirm, "%s") != 1 {
		bad("texts.confirm", "must contain exactly one %%s (the question)")
	}
	if e := c.Embedding; e != nil {
		if u, err := url.Parse(e.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("embedding.url", "must be an http(s) URL, got %q", e.URL)
		}
		if e.Model == "" {
			bad("embedding.model", "required")
		}
		if e.BatchSize < 0 || e.BatchSize > 2048 {
			bad("embedding.batch_size", "must be in [0,2048], got %d", e.BatchSize)
		}
		if e.Timeout < 0 || e.QueryTimeout < 0 {
			bad("embedding.timeout", "must not be negative")
		}
		if e.Retries < 0 || e.Retries > 10 {
			bad("embedding.retries", "must be in [0,10], got %d", e.Retries)
		}
		switch e.Fusion.Method {
		case "", embed.RRF, embed.Weighted:
		default:
			bad("embedding.fusion.method", "must be rrf or weighted, got %q", e.Fusion.Method)
		}
		if e.Fusion.DenseWeight < 0 || e.Fusion.DenseWeight > 1 {
			bad("embedding.fusion.dense_weight", "must be in [0,1], got %v", e.Fusion.DenseWeight)
		}
	}
	if q := c.Qdrant; q != nil {
		if q.Addr == "" || !strings.Contains(q.Addr, ":") {
			bad("qdrant.addr", "must be host:port of the gRPC API, got %q", q.Addr)
		}
		if q.Collection == "" {
			bad("qdrant.collection", "required")
		}
	}
	return errors.Join(errs...)
}
