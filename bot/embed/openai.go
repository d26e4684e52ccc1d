package embed

import (
	"bufio"
	"bytes"
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/gob"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// OpenAIConfig configures the OpenAI-compatible dense embedder.
type OpenAIConfig struct {
	// BaseURL is the API base including /v1, e.g. http://127.0.0.1:8080/v1.
	BaseURL string
	Model   string
	APIKey  string
	// BatchSize is the most inputs per request (default 64); OpenAI allows
	// 2048, local servers often far fewer.
	BatchSize int
	// Timeout bounds one HTTP request (default 10s).
	Timeout time.Duration
	// Retries is how many times a request is retried after 429, 5xx or a
	// network error (default 2); 4xx other than 429 is not retried.
	Retries int
	// CacheSize is how many texts' vectors are kept in memory (default 50k):
	// re-indexing an unchanged KB and repeated customer questions cost no
	// API calls.
	CacheSize int
	// CacheDir, when set, persists the cache (embeddings.gob) so that a
	// restart or a full lexical rebuild re-embeds nothing already known:
	// dense API calls are the expensive part of publishing.
	CacheDir string
	// Client overrides the HTTP client (tests).
	Client *http.Client
}

// OpenAI is a client of POST {BaseURL}/embeddings. It is safe for
// concurrent use.
type OpenAI struct {
	cfg   OpenAIConfig
	hc    *http.Client
	mu    sync.Mutex
	cache map[[32]byte]*list.Element
	lru   *list.List
	dirty bool
}

type cacheItem struct {
	key [32]byte
	vec []float32
}

var _ Dense = (*OpenAI)(nil)

// NewOpenAI returns a client with defaults filled in.
func NewOpenAI(cfg OpenAIConfig) *OpenAI {
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 64
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Retries == 0 {
		cfg.Retries = 2
	}
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = 50_000
	}
	hc := cfg.Client
	if hc == nil {
		hc = &http.Client{Timeout: cfg.Timeout}
	}
	o := &OpenAI{cfg: cfg, hc: hc, cache: map[[32]byte]*list.Element{}, lru: list.New()}
	o.load()
	return o
}

type diskItem struct {
	Key [32]byte
	Vec []float32
}

func (o *OpenAI) cachePath() string {
	if o.cfg.CacheDir == "" {
		return ""
	}
	return filepath.Join(o.cfg.CacheDir, "embeddings.gob")
}

// load reads the persisted cache; a missing or corrupt file is ignored.
func (o *OpenAI) load() {
	p := o.cachePath()
	if p == "" {
		return
	}
	f, err := os.Open(p)
	if err != nil {
		return
	}
	defer f.Close()
	var items []diskItem
	if gob.NewDecoder(bufio.NewReader(f)).Decode(&items) != nil {
		return
	}
	// Oldest first, so the most recently used end up at the LRU front.
	for i := len(items) - 1; i >= 0; i-- {
		o.store(items[i].Key, items[i].Vec)
	}
	o.dirty = false
}

// Flush writes the cache to CacheDir if it changed since the last flush.
func (o *OpenAI) Flush() error {
	p := o.cachePath()
	o.mu.Lock()
	if p == "" || !o.dirty {
		o.mu.Unlock()
		return nil
	}
	items := make([]diskItem, 0, o.lru.Len())
	for el := o.lru.Front(); el != nil; el = el.Next() {
		it := el.Value.(*cacheItem)
		items = append(items, diskItem{it.key, it.vec})
	}
	o.dirty = false
	o.mu.Unlock()
	if err := os.MkdirAll(o.cfg.CacheDir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(o.cfg.CacheDir, ".embeddings-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	w := bufio.NewWriter(tmp)
	if err := gob.NewEncoder(w).Encode(items); err != nil {
		tmp.Close()
		return err
	}
	if err := w.Flush(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), p)
}

// APIError is a non-retryable error answer of the embeddings endpoint.
type APIError struct {
	Status  int
	Message string
}

// Error implements error.
func (e *APIError) Error() string {
	return fmt.Sprintf("embeddings: HTTP %d: %s", e.Status, e.Message)
}

func (o *OpenAI) key(text string) [32]byte {
	return sha256.Sum256([]byte(o.cfg.Model + "\x00" + text))
}

func (o *OpenAI) cached(k [32]byte) ([]float32, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if el, ok := o.cache[k]; ok {
		o.lru.MoveToFront(el)
		return el.Value.(*cacheItem).vec, true
	}
	return nil, false
}

func (o *OpenAI) store(k [32]byte, v []float32) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, ok := o.cache[k]; ok {
		return
	}
	o.cache[k] = o.lru.PushFront(&cacheItem{k, v})
	o.dirty = true
	for o.lru.Len() > o.cfg.CacheSize {
		old := o.lru.Remove(o.lru.Back()).(*cacheItem)
		delete(o.cache, old.key)
	}
}

// Embed implements Dense: cached texts are served from memory, the rest are
// sent in batches of at most BatchSize.
func (o *OpenAI) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	out := make([][]float32, len(texts))
	var missIdx []int
	for i, t := range texts {
		if v, ok := o.cached(o.key(t)); ok {
			out[i] = v
		} else {
			missIdx = append(missIdx, i)
		}
	}
	for start := 0; start < len(missIdx); start += o.cfg.BatchSize {
		idx := missIdx[start:min(start+o.cfg.BatchSize, len(missIdx))]
		batch := make([]string, len(idx))
		for j, i := range idx {
			// The OpenAI API rejects empty strings; a space embeds as "nothing".
			batch[j] = texts[i]
			if strings.TrimSpace(batch[j]) == "" {
				batch[j] = " "
			}
		}
		vecs, err := o.request(ctx, batch)
		if err != nil {
			return nil, err
		}
		for j, i := range idx {
			out[i] = vecs[j]
			o.store(o.key(texts[i]), vecs[j])
		}
	}
	return out, nil
}

type embReq struct {
	Model string   `json:"model"`
	Input []string `json:"input"`
}

type embResp struct {
	Data []struct {
		Index     int       `json:"index"`
		Embedding []float32 `json:"embedding"`
	} `json:"data"`
	Error *struct {
		Message string `json:"message"`
	} `json:"error"`
}

func (o *OpenAI) request(ctx context.Context, batch []string) ([][]float32, error) {
	body, _ := json.Marshal(embReq{Model: o.cfg.Model, Input: batch})
	url := strings.TrimRight(o.cfg.BaseURL, "/") + "/embeddings"
	var lastErr error
	for attempt := 0; attempt <= o.cfg.Retries; attempt++ {
		if attempt > 0 {
			wait := time.Duration(1<<(attempt-1)) * 200 * time.Millisecond
			var ra *retryAfter
			if errors.As(lastErr, &ra) {
				wait = ra.d
			}
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		vecs, err := o.once(ctx, url, body, len(batch))
		if err == nil {
			return vecs, nil
		}
		lastErr = err
		var api *APIError
		if errors.As(err, &api) || ctx.Err() != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("embeddings: giving up after %d attempts: %w", o.cfg.Retries+1, lastErr)
}

// retryAfter is a retryable failure with the server's requested delay.
type retryAfter struct {
	status int
	d      time.Duration
}

// Error implements error.
func (r *retryAfter) Error() string { return fmt.Sprintf("HTTP %d, retry after %v", r.status, r.d) }

// maxRetryAfter caps a server's Retry-After so a misbehaving server cannot
// stall publishing for minutes.
const maxRetryAfter = 30 * time.Second

func (o *OpenAI) once(ctx context.Context, url string, body []byte, n int) ([][]float32, error) {
	rctx, cancel := context.WithTimeout(ctx, o.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if o.cfg.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+o.cfg.APIKey)
	}
	resp, err := o.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, err
	}
	var er embResp
	_ = json.Unmarshal(data, &er)
	switch {
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		d := 500 * time.Millisecond
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
			d = min(time.Duration(s)*time.Second, maxRetryAfter)
		}
		return nil, &retryAfter{resp.StatusCode, d}
	case resp.StatusCode != http.StatusOK:
		msg := strings.TrimSpace(string(data))
		if er.Error != nil {
			msg = er.Error.Message
		}
		return nil, &APIError{resp.StatusCode, msg}
	}
	if len(er.Data) != n {
		return nil, &APIError{resp.StatusCode, fmt.Sprintf("got %d embeddings for %d inputs", len(er.Data), n)}
	}
	out := make([][]float32, n)
	for _, d := range er.Data {
		if d.Index < 0 || d.Index >= n || out[d.Index] != nil {
			return nil, &APIError{resp.StatusCode, fmt.Sprintf("bad or duplicate index %d", d.Index)}
		}
		out[d.Index] = d.Embedding
	}
	return out, nil
}
