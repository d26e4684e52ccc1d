// Package bot is kefu's FAQ bot: it answers customers from the knowledge
// base when confident, asks back when torn between a few entries, and hands
// over to a human when it cannot help.
//
// Retrieval: text normalisation for WeChat input (textnorm), a built-in
// lexical embedder with IDF and associations learnt from the KB (embed),
// an optional OpenAI-compatible dense embedder fused with it, and an
// embedded or Qdrant vector store (index). The decision policy is Decide;
// the curation loop (misses, links, drafts, ratings, tuning) is in
// curation.go; the `kefu kb …` commands are in bot/kbcli.
package bot

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"kefu/bot/embed"
	"kefu/bot/index"
	"kefu/bot/kb"
	"kefu/bot/textnorm"
	"kefu/conv"
)

// Query is one customer message for the bot.
type Query struct {
	Text     string
	Store    conv.StoreID
	Customer conv.CustomerID
	Channel  string
	Conv     conv.ConvID
}

// Action is what the bot decided to do with a message.
type Action string

// Actions.
const (
	ActAnswer   Action = "answer"
	ActClarify  Action = "clarify"
	ActHandoff  Action = "handoff"
	ActFallback Action = "fallback"
)

// Decision is the bot's answer to one message.
type Decision struct {
	Action Action
	// Reply is the message to send (for handoff: the "transferring" notice).
	Reply conv.Reply
	// Extra holds further messages of an answer: its image and link card.
	Extra []conv.Reply
	// EntryID is the entry answered with (answer only).
	EntryID string
	// Score is the top candidate's score (0 when no retrieval ran).
	Score float64
	// Candidates are the retrieved entries, best first; for clarify, the
	// options in the numbered order shown to the customer.
	Candidates []Candidate
	// Reason explains the decision for logs and reports, e.g.
	// "confident", "close_candidates", "explicit_request", "anger",
	// "repeated_miss", "low_score", "picked", "rating".
	Reason string
}

// Bot answers customer questions. It is safe for concurrent use.
type Bot struct {
	cfg     Config
	state   State
	journal Journal
	log     *slog.Logger
	idx     index.Index
	cur     atomic.Pointer[retriever]
	pubMu   sync.Mutex // serialises Publish
	dense   embed.Dense
	now     func() time.Time
	handoff []string
	anger   []string
	notHand *strings.Replacer
}

// New loads the knowledge base at cfg.KB and builds (or loads) its index.
// state may be nil (a process-local MemoryState is used). When state also
// implements Journal (EngineState does) the curation journal goes there;
// otherwise to DataDir/journal.jsonl, or memory without a DataDir.
func New(cfg Config, state State, logger *slog.Logger) (*Bot, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	entries, err := kb.ReadFile(cfg.KB, kb.ImportOptions{})
	if err != nil {
		return nil, fmt.Errorf("bot: load kb: %w", err)
	}
	return NewWithEntries(cfg, entries, state, logger)
}

// NewWithEntries is New with the knowledge base given in memory (tests,
// evaluation). cfg.KB is not read; Validate is not required to pass on it.
func NewWithEntries(cfg Config, entries []kb.Entry, state State, logger *slog.Logger) (*Bot, error) {
	if cfg.KB == "" {
		cfg.KB = "(memory)"
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if state == nil {
		state = NewMemoryState()
	}
	b := &Bot{cfg: cfg, state: state, log: logger.With("component", "bot"), now: time.Now}
	if j, ok := state.(Journal); ok {
		b.journal = j
	} else if cfg.DataDir != "" {
		b.journal = NewFileJournal(filepath.Join(cfg.DataDir, "journal.jsonl"))
	} else {
		b.journal = &MemJournal{}
	}
	for _, w := range cfg.HandoffWords {
		b.handoff = append(b.handoff, textnorm.Fold(w))
	}
	for _, w := range cfg.AngerWords {
		b.anger = append(b.anger, textnorm.Fold(w))
	}
	var blank []string
	for _, w := range cfg.NotHandoff {
		if w != "" {
			blank = append(blank, textnorm.Fold(w), " ")
		}
	}
	b.notHand = strings.NewReplacer(blank...)
	if cfg.Embedding != nil {
		b.dense = embed.NewOpenAI(embed.OpenAIConfig{
			BaseURL: cfg.Embedding.URL, Model: cfg.Embedding.Model, APIKey: cfg.Embedding.APIKey,
			BatchSize: cfg.Embedding.BatchSize, Timeout: cfg.Embedding.Timeout, Retries: cfg.Embedding.Retries,
			CacheDir: cfg.DataDir,
		})
	}
	if cfg.Qdrant != nil {
		q, err := index.NewQdrant(context.Background(), index.QdrantConfig{
			Addr: cfg.Qdrant.Addr, APIKey: cfg.Qdrant.APIKey, TLS: cfg.Qdrant.TLS, Collection: cfg.Qdrant.Collection,
		})
		if err != nil {
			return nil, fmt.Errorf("bot: qdrant: %w", err)
		}
		b.idx = q
		b.log.Info("vector store", "kind", "qdrant", "addr", cfg.Qdrant.Addr, "collection", cfg.Qdrant.Collection)
	} else {
		b.idx = index.NewEmbedded()
		b.log.Info("vector store", "kind", "embedded", "data_dir", cfg.DataDir)
	}
	if err := b.Publish(context.Background(), entries, cfg.Progress); err != nil {
		b.idx.Close()
		return nil, err
	}
	return b, nil
}

// Close releases the vector store.
func (b *Bot) Close() error { return b.idx.Close() }

// Entries returns the published knowledge base (all statuses).
func (b *Bot) Entries() []kb.Entry {
	r := b.cur.Load()
	out := make([]kb.Entry, 0, len(r.entries))
	for _, e := range r.entries {
		out = append(out, *e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Entry returns one entry by id.
func (b *Bot) Entry(id string) (kb.Entry, bool) {
	e, ok := b.cur.Load().entries[id]
	if !ok {
		return kb.Entry{}, false
	}
	return *e, true
}

func (b *Bot) snapshotPath() string {
	if b.cfg.DataDir == "" {
		return ""
	}
	return filepath.Join(b.cfg.DataDir, "index.gob")
}

// modelTag fingerprints what the vectors depend on besides the entries.
func (b *Bot) modelTag() string {
	h := sha256.New()
	fmt.Fprintf(h, "%+v|%+v", lexicalOptions, b.cfg.Typos)
	if e := b.cfg.Embedding; e != nil {
		fmt.Fprintf(h, "|%s|%s", e.URL, e.Model)
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// Publish makes entries the live knowledge base. Only entries whose content
// changed are re-embedded and re-indexed; progress (may be nil) is called
// as they are. The first Publish of an embedded index loads the snapshot in
// DataDir when it was built from the same model, so a restart with an
// unchanged KB embeds nothing.
func (b *Bot) Publish(ctx context.Context, entries []kb.Entry, progress func(done, total int)) error {
	b.pubMu.Lock()
	defer b.pubMu.Unlock()
	// Own a copy: validation normalises in place, and the caller may keep
	// using (or editing) its slice while this KB is live.
	entries = slices.Clone(entries)
	if err := kb.ValidateAll(entries, nil, kb.ValidateOptions{AllowEmptyAnswer: true}); err != nil {
		return err
	}
	start := time.Now()
	em, hashes := entryMap(entries)
	// What a stored vector depends on is the entry and the model (lexical
	// options, typos, dense model): a store that outlives the process
	// (Qdrant) compares both after an upgrade.
	tag := b.modelTag()
	for id, h := range hashes {
		hashes[id] = tag + "." + h
	}
	prev := b.cur.Load()
	var (
		old     map[string]string
		norm    *textnorm.Normalizer
		lex     *embed.Lexical
		drift   int
		kbPrint = kbFingerprint(tag, hashes)
		rebuilt bool
	)
	if prev != nil {
		// Incremental publish: keep the normaliser and update document
		// frequencies for the changed entries only, so unchanged vectors stay
		// valid. Their weights drift a little; once changes since the last
		// full build add up to a tenth of the entries, rebuild all.
		norm, lex, drift = prev.norm, prev.lex.Clone(), prev.drift
		old = prev.hashes
		normAll := func(qs []string) []string {
			out := make([]string, len(qs))
			for i, q := range qs {
				out[i] = norm.Normalize(q)
			}
			return out
		}
		for id, h := range old {
			if _, ok := em[id]; !ok || hashes[id] != h {
				lex.AddEntry(normAll(prev.entries[id].Questions()), -1)
				drift++
			}
		}
		for id, e := range em {
			if old[id] != hashes[id] {
				lex.AddEntry(normAll(e.Questions()), 1)
				drift++
			}
		}
		if drift*10 > lex.Docs() {
			norm, lex, old = nil, nil, nil
		}
	}
	if lex == nil {
		norm, lex, _ = newModel(entries, b.cfg.Typos, b.cfg.Expansion > 0)
		drift, rebuilt = 0, true
		if prev == nil {
			if emb, ok := b.idx.(*index.Embedded); ok && b.snapshotPath() != "" {
				if tag, err := emb.Load(b.snapshotPath()); err == nil && tag == kbPrint {
					old = hashes // the snapshot holds exactly these vectors
				}
			} else if hs, ok := b.idx.(interface {
				Hashes(context.Context) (map[string]string, error)
			}); ok {
				// A persistent external store: re-embed only what changed.
				if h, err := hs.Hashes(ctx); err == nil {
					old = h
				} else {
					b.log.Warn("cannot read stored entry hashes; re-indexing everything", "err", err)
				}
			}
		}
	}
	// Associations only shape queries, never stored vectors, so they are
	// relearnt from the current similar questions on every publish.
	if !rebuilt && b.cfg.Expansion > 0 {
		learnAssociations(norm, lex, entries)
	}
	r := &retriever{norm: norm, lex: lex, idx: b.idx, dense: b.dense, expansion: b.cfg.Expansion, entries: em, hashes: hashes, drift: drift}
	if e := b.cfg.Embedding; e != nil {
		r.fusion, r.queryTO = e.Fusion, e.QueryTimeout
		if r.queryTO == 0 {
			r.queryTO = 800 * time.Millisecond
		}
	}
	if rebuilt && prev != nil {
		old = nil
		// A rebuild replaces every vector: delete what the KB no longer has.
		var gone []string
		for id := range prev.hashes {
			if _, ok := em[id]; !ok {
				gone = append(gone, id)
			}
		}
		if err := b.idx.Delete(ctx, gone); err != nil {
			return fmt.Errorf("bot: publish: %w", err)
		}
	}
	changed, removed, err := r.sync(ctx, old, progress)
	if err != nil {
		return fmt.Errorf("bot: publish: %w", err)
	}
	b.cur.Store(r)
	if emb, ok := b.idx.(*index.Embedded); ok && b.snapshotPath() != "" && (changed > 0 || removed > 0) {
		// Only a snapshot of a full build can be trusted after a restart:
		// after incremental publishes its idf no longer matches a fresh fit.
		tag := kbPrint
		if !rebuilt || drift > 0 {
			tag = "incremental"
		}
		if err := emb.Save(b.snapshotPath(), tag); err != nil {
			b.log.Warn("index snapshot not saved", "err", err)
		}
	}
	if f, ok := b.dense.(interface{ Flush() error }); ok {
		if err := f.Flush(); err != nil {
			b.log.Warn("embedding cache not saved", "err", err)
		}
	}
	b.log.Info("kb published", "entries", len(entries), "reindexed", changed, "removed", removed, "took", time.Since(start))
	return nil
}

// kbFingerprint identifies a KB and model: equal fingerprints give equal vectors.
func kbFingerprint(model string, hashes map[string]string) string {
	ids := make([]string, 0, len(hashes))
	for id := range hashes {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	h := sha256.New()
	h.Write([]byte(model))
	for _, id := range ids {
		fmt.Fprintf(h, "\n%s\t%s", id, hashes[id])
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// Reload re-reads cfg.KB and publishes it.
func (b *Bot) Reload(ctx context.Context) error {
	entries, err := kb.ReadFile(b.cfg.KB, kb.ImportOptions{})
	if err != nil {
		return err
	}
	return b.Publish(ctx, entries, nil)
}

// Search finds entries for agents: any store when store is "", published
// and unexpired only, agent-only entries included on request.
func (b *Bot) Search(ctx context.Context, text string, store conv.StoreID, includeAgentOnly bool, k int) []Candidate {
	f := index.Filter{Store: string(store), AnyStore: store == "", Statuses: []string{string(kb.Published)}, Now: b.now()}
	if !includeAgentOnly {
		f.Visibilities = []string{string(kb.Customer)}
	}
	r := b.cur.Load()
	cands, _, err := r.search(ctx, text, f, k)
	if err != nil {
		b.log.Warn("agent search failed", "err", err)
		return nil
	}
	for i := range cands {
		if e, ok := r.entries[cands[i].EntryID]; ok {
			cands[i].Answer, cands[i].Category, cands[i].AgentOnly = e.Answer, e.Category, e.Visibility == kb.AgentOnly
		}
	}
	return cands
}

// customerFilter is the filter of everything a customer of store may get.
func (b *Bot) customerFilter(store conv.StoreID) index.Filter {
	return index.Filter{Store: string(store), Visibilities: []string{string(kb.Customer)}, Statuses: []string{string(kb.Published)}, Now: b.now()}
}

// errNoKB guards against a Bot used before its first publish.
var errNoKB = errors.New("bot: no knowledge base published")

// Sentinel errors of the curation API; they wrap the shared conv errors.
var (
	errBadInput = conv.ErrBadInput
	errNotFound = conv.ErrNotFound
)

// Journal returns the curation journal.
func (b *Bot) Journal() Journal { return b.journal }

// StateKeys names the engine keys Respond reads for customer c's memory
// (none when the State is not engine-backed or holds c in process), so a
// caller can read them ahead (gateway.ReadAhead).
func (b *Bot) StateKeys(c conv.CustomerID) []string {
	if k, ok := b.state.(KeyedState); ok {
		return k.Keys(c)
	}
	return nil
}
