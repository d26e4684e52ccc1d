package embed

import (
	"context"
	"encoding/json"
	"errors"
	"hash/fnv"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeOpenAI enforces the OpenAI embeddings rules the client depends on:
// bearer auth, JSON body, known model, non-empty string inputs, a maximum
// batch size; it can answer 429 with Retry-After a given number of times.
type fakeOpenAI struct {
	mu       sync.Mutex
	key      string
	model    string
	maxBatch int
	throttle int // 429s still to send
	requests int
	inputs   int
}

func (f *fakeOpenAI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests++
	fail := func(code int, msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"message": msg, "type": "invalid_request_error"}})
	}
	if r.Method != http.MethodPost || r.URL.Path != "/v1/embeddings" {
		fail(404, "not found")
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+f.key {
		fail(401, "Incorrect API key provided")
		return
	}
	if f.throttle > 0 {
		f.throttle--
		w.Header().Set("Retry-After", "1")
		fail(429, "Rate limit reached")
		return
	}
	var req struct {
		Model string          `json:"model"`
		Input json.RawMessage `json:"input"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		fail(400, "We could not parse the JSON body of your request.")
		return
	}
	if req.Model != f.model {
		fail(404, "The model `"+req.Model+"` does not exist")
		return
	}
	var inputs []string
	if err := json.Unmarshal(req.Input, &inputs); err != nil || len(inputs) == 0 {
		fail(400, "'input' must be a non-empty array of strings")
		return
	}
	if len(inputs) > f.maxBatch {
		fail(400, "too many inputs")
		return
	}
	type item struct {
		Object    string    `json:"object"`
		Index     int       `json:"index"`
		Embedding []float32 `json:"embedding"`
	}
	var data []item
	for i, in := range inputs {
		if in == "" {
			fail(400, "'$.input' is invalid: empty string")
			return
		}
		h := fnv.New32a()
		h.Write([]byte(in))
		v := h.Sum32()
		data = append(data, item{"embedding", i, []float32{float32(v & 0xff), float32(v >> 8 & 0xff), float32(len([]rune(in)))}})
	}
	f.inputs += len(inputs)
	json.NewEncoder(w).Encode(map[string]any{"object": "list", "data": data, "model": f.model})
}

func newFake(t *testing.T) (*fakeOpenAI, *httptest.Server) {
	f := &fakeOpenAI{key: "sk-test", model: "bge-small-zh", maxBatch: 4}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func TestOpenAI_BatchingAndCache(t *testing.T) {
	f, srv := newFake(t)
	c := NewOpenAI(OpenAIConfig{BaseURL: srv.URL + "/v1", Model: "bge-small-zh", APIKey: "sk-test", BatchSize: 4})
	texts := []string{"一", "二", "三", "四", "五", "六", "七", "八", "九", ""}
	vecs, err := c.Embed(context.Background(), texts)
	if err != nil {
		t.Fatal(err)
	}
	if len(vecs) != len(texts) || vecs[2][2] != 1 {
		t.Fatalf("vectors %v", vecs)
	}
	if f.requests != 3 {
		t.Errorf("%d requests for 10 inputs with batch 4, want 3", f.requests)
	}
	// Same texts again: served from cache.
	if _, err := c.Embed(context.Background(), texts[:5]); err != nil {
		t.Fatal(err)
	}
	if f.requests != 3 || f.inputs != 10 {
		t.Errorf("cache missed: %d requests, %d inputs", f.requests, f.inputs)
	}
}

func TestOpenAI_RetryAfter429(t *testing.T) {
	f, srv := newFake(t)
	f.throttle = 1
	c := NewOpenAI(OpenAIConfig{BaseURL: srv.URL + "/v1", Model: "bge-small-zh", APIKey: "sk-test", BatchSize: 4, Retries: 2})
	start := time.Now()
	if _, err := c.Embed(context.Background(), []string{"退货"}); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < 900*time.Millisecond {
		t.Errorf("retried after %v, want the server's Retry-After of 1s", waited)
	}
	if f.requests != 2 {
		t.Errorf("%d requests, want 2", f.requests)
	}
}

func TestOpenAI_ClientErrorsAreNotRetried(t *testing.T) {
	f, srv := newFake(t)
	cases := []struct {
		name string
		cfg  OpenAIConfig
		want int
	}{
		{"bad key", OpenAIConfig{APIKey: "wrong", Model: "bge-small-zh", BatchSize: 4}, 401},
		{"bad model", OpenAIConfig{APIKey: "sk-test", Model: "nope", BatchSize: 4}, 404},
		{"batch too big", OpenAIConfig{APIKey: "sk-test", Model: "bge-small-zh", BatchSize: 8}, 400},
	}
	for _, c := range cases {
		f.requests = 0
		c.cfg.BaseURL = srv.URL + "/v1"
		_, err := NewOpenAI(c.cfg).Embed(context.Background(), strings.Split("a b c d e f", " "))
		var api *APIError
		if !errors.As(err, &api) || api.Status != c.want {
			t.Errorf("%s: error %v, want HTTP %d", c.name, err, c.want)
		}
		if f.requests != 1 {
			t.Errorf("%s: %d requests, want 1 (no retry)", c.name, f.requests)
		}
	}
}

// The per-request timeout is enforced by the client: every attempt is
// abandoned by the client (the server sees its request cancelled) rather
// than answered, and Embed fails once the retries are spent.
func TestOpenAI_Timeout(t *testing.T) {
	var mu sync.Mutex
	var attempts, cancelled int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		attempts++
		mu.Unlock()
		// Reading the body lets the server notice the client hanging up.
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-time.After(time.Minute): // far beyond any timeout under test
		case <-r.Context().Done():
			mu.Lock()
			cancelled++
			mu.Unlock()
		}
	}))
	defer srv.Close()
	c := NewOpenAI(OpenAIConfig{BaseURL: srv.URL + "/v1", Model: "m", Timeout: 50 * time.Millisecond, Retries: 1})
	if _, err := c.Embed(context.Background(), []string{"x"}); err == nil {
		t.Fatal("want timeout error")
	}
	deadline := time.Now().Add(10 * time.Second) // the server notices cancellations asynchronously
	for {
		mu.Lock()
		a, n := attempts, cancelled
		mu.Unlock()
		if a == 2 && n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("server saw %d attempts, %d cancelled by the client; want 2 and 2 (Retries: 1)", a, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestFuse(t *testing.T) {
	sp := []Scored{{"a", 0.9}, {"b", 0.5}, {"c", 0.1}}
	de := []Scored{{"b", 0.8}, {"c", 0.7}, {"a", 0.1}}
	rrf := Fuse(Fusion{Method: RRF}, sp, de)
	if rrf[0].ID != "b" && rrf[0].ID != "a" {
		t.Errorf("rrf top %v", rrf)
	}
	w := Fuse(Fusion{Method: Weighted, DenseWeight: 1}, sp, de)
	if w[0].ID != "b" || w[0].Score != 0.8 {
		t.Errorf("weighted with dense weight 1 should follow dense: %v", w)
	}
	w0 := Fuse(Fusion{Method: Weighted, DenseWeight: 0}, sp, de)
	if w0[0].ID != "a" {
		t.Errorf("weighted with dense weight 0 should follow sparse: %v", w0)
	}
}

func TestOpenAI_PersistentCache(t *testing.T) {
	f, srv := newFake(t)
	dir := t.TempDir()
	cfg := OpenAIConfig{BaseURL: srv.URL + "/v1", Model: "bge-small-zh", APIKey: "sk-test", BatchSize: 4, CacheDir: dir}
	c1 := NewOpenAI(cfg)
	want, err := c1.Embed(context.Background(), []string{"会员积分", "退货"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c1.Flush(); err != nil {
		t.Fatal(err)
	}
	f.requests = 0
	got, err := NewOpenAI(cfg).Embed(context.Background(), []string{"退货", "会员积分"})
	if err != nil {
		t.Fatal(err)
	}
	if f.requests != 0 {
		t.Errorf("restarted client made %d requests for cached texts", f.requests)
	}
	if got[0][0] != want[1][0] || got[1][2] != want[0][2] {
		t.Errorf("cached vectors differ: %v vs %v", got, want)
	}
}
