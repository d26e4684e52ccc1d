package bot

import (
	"context"
	"encoding/json"
	"hash/fnv"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"kefu/bot/embed"
	"kefu/bot/kb"
)

func copySample(t *testing.T) string {
	data, err := os.ReadFile(samplePath(t))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "kb.jsonl")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCuration_MissesLinkApprove(t *testing.T) {
	kbPath := copySample(t)
	dir := t.TempDir()
	b := newSampleBot(t, func(c *Config) { c.KB = kbPath; c.DataDir = dir; c.MaxMisses = 9 })
	ctx := context.Background()
	for i, q := range []string{"你们卖不卖宠物粮食", "有没有宠物粮食卖", "火星快递怎么寄", "卖宠物粮食吗"} {
		if d := ask(t, b, "m"+string(rune('a'+i)), "s1", q); d.Action != ActFallback {
			t.Fatalf("%q: want fallback, got %s (%.2f)", q, d.Action, d.Score)
		}
	}
	groups, err := b.Misses(ctx, b.now().AddDate(0, 0, -1))
	if err != nil {
		t.Fatal(err)
	}
	if len(groups) != 2 || groups[0].Count != 3 || groups[1].Count != 1 {
		t.Fatalf("groups: %+v", groups)
	}
	// An agent links the miss to an entry; after approval it is a similar
	// question, in the index and in the KB file.
	sugg, err := b.LinkMiss(ctx, "火星快递怎么寄", "delivery-001", "agent-7")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.LinkMiss(ctx, "x", "no-such-entry", "agent-7"); err == nil {
		t.Error("link to a missing entry accepted")
	}
	pending, _ := b.Suggestions(ctx)
	if len(pending) != 1 || pending[0].ID != sugg.ID {
		t.Fatalf("suggestions %+v", pending)
	}
	e, err := b.Approve(ctx, sugg.ID, "editor")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(e.Similar, "火星快递怎么寄") || e.Version != 2 {
		t.Fatalf("approved entry %+v", e)
	}
	if d := ask(t, b, "z", "", "火星快递怎么寄"); d.EntryID != "delivery-001" {
		t.Errorf("linked question now answers %q (%s)", d.EntryID, d.Action)
	}
	onDisk, err := kb.ReadFile(kbPath, kb.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(onDisk, func(e kb.Entry) bool { return e.ID == "delivery-001" })
	if !slices.Contains(onDisk[i].Similar, "火星快递怎么寄") {
		t.Error("KB file not updated")
	}
	if p, _ := b.Suggestions(ctx); len(p) != 0 {
		t.Errorf("approved suggestion still pending: %+v", p)
	}
	// A drafted entry lands as a draft: never served until published.
	dr, err := b.DraftEntry(ctx, "卖宠物粮食吗", "本店暂不销售宠物食品。", "agent-7")
	if err != nil {
		t.Fatal(err)
	}
	ne, err := b.Approve(ctx, dr.ID, "editor")
	if err != nil {
		t.Fatal(err)
	}
	if ne.Status != kb.Draft {
		t.Fatalf("draft approved as %s", ne.Status)
	}
	if d := ask(t, b, "y", "", "卖宠物粮食吗"); d.EntryID == ne.ID {
		t.Error("draft entry served to a customer")
	}
}

func TestTune(t *testing.T) {
	var labels []Label
	// Scores ≥ 0.7 are right 19 times in 20; below, right 1 time in 3.
	for i := 0; i < 60; i++ {
		s := 0.3 + float64(i)*0.01
		correct := (s >= 0.7 && i%20 != 0) || (s < 0.7 && i%3 == 0)
		labels = append(labels, Label{Score: s, Correct: correct})
	}
	p := Tune(labels, Thresholds{Answer: 0.6, Clarify: 0.4, Margin: 0.05}, 0.9)
	if p.Answer < 0.65 || p.Answer > 0.75 {
		t.Errorf("proposed answer threshold %.2f, want ≈0.70", p.Answer)
	}
	if p.Precision < 0.9 {
		t.Errorf("precision %.2f below target", p.Precision)
	}
	if few := Tune(labels[:5], Thresholds{Answer: 0.6}, 0.9); few.Answer != 0.6 {
		t.Error("tuned from too few labels")
	}
}

func TestLabels(t *testing.T) {
	yes, no := true, false
	recs := []Record{
		{Kind: RecClarify, Question: "q1", Candidates: []Candidate{{EntryID: "a", Score: 0.5}, {EntryID: "b", Score: 0.45}}},
		{Kind: RecPick, Question: "q1", Entry: "b"},
		{Kind: RecAnswer, Question: "q2", Candidates: []Candidate{{EntryID: "c", Score: 0.8}}},
		{Kind: RecRating, Question: "q2", Entry: "c", Helpful: &yes},
		{Kind: RecAnswer, Question: "q3", Candidates: []Candidate{{EntryID: "d", Score: 0.7}}},
		{Kind: RecRating, Question: "q3", Entry: "d", Helpful: &no},
		{Kind: RecClarify, Question: "q4", Store: "s1", Candidates: []Candidate{{EntryID: "e", Score: 0.45}}},
		{Kind: RecPick, Question: "q4"},
		{Kind: RecFallback, Question: "q5", Candidates: []Candidate{{EntryID: "f", Score: 0.3}}},
		{Kind: RecLink, Question: "q5", Entry: "g"},
	}
	got := Labels(recs)
	want := []Label{
		{Score: 0.5, Correct: false, Question: "q1", Right: "b"},
		{Score: 0.8, Correct: true, Question: "q2", Right: "c"},
		{Score: 0.7, Correct: false, Question: "q3", Wrong: "d"},
		{Score: 0.45, Correct: false, Question: "q4", Store: "s1", Wrong: "e"},
		{Score: 0.3, Correct: false, Question: "q5", Right: "g"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("labels %+v, want %+v", got, want)
	}
}

// TestBot_RescoreReplaysLabelsOnTheCurrentModel: labels carry the scores
// of the model that made the decision; Rescore gives them today's top
// score and keeps the verdict only where it still applies.
func TestBot_RescoreReplaysLabelsOnTheCurrentModel(t *testing.T) {
	b := newSampleBot(t, nil)
	ctx := context.Background()
	top := func(q string) Candidate {
		t.Helper()
		c, _, err := b.cur.Load().search(ctx, q, b.customerFilter(""), 1)
		if err != nil || len(c) == 0 {
			t.Fatalf("search %q: %v %v", q, c, err)
		}
		return c[0]
	}
	hours, refund := top("几点关门"), top("退款多久到账")
	if hours.EntryID == refund.EntryID {
		t.Fatalf("sample KB: %q and %q have the same top entry", "几点关门", "退款多久到账")
	}
	labels := []Label{
		{Score: 0.12, Correct: false, Question: "几点关门", Right: hours.EntryID},   // was wrong, now right
		{Score: 0.95, Correct: true, Question: "退款多久到账", Right: hours.EntryID},  // the right entry is no longer on top
		{Score: 0.9, Correct: false, Question: "退款多久到账", Wrong: refund.EntryID}, // still the known-wrong entry
		{Score: 0.9, Correct: false, Question: "退款多久到账", Wrong: "no-such"},      // new top never judged: dropped
		{Score: 0.4, Correct: true}, // no question: kept as is
	}
	got := b.Rescore(ctx, labels)
	want := []Label{
		{Score: hours.Score, Correct: true, Question: "几点关门", Right: hours.EntryID},
		{Score: refund.Score, Correct: false, Question: "退款多久到账", Right: hours.EntryID},
		{Score: refund.Score, Correct: false, Question: "退款多久到账", Wrong: refund.EntryID},
		{Score: 0.4, Correct: true},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("rescored\n %+v\nwant\n %+v", got, want)
	}
}

// toyEmbeddings is an OpenAI-compatible embeddings server that checks the
// API key and path and embeds a text as a bag of a few hashed characters
// (a toy "semantic" space); it counts calls and embedded texts.
func toyEmbeddings(t *testing.T) (srv *httptest.Server, calls, inputs *int) {
	calls, inputs = new(int), new(int)
	var mu sync.Mutex
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer k" || r.URL.Path != "/v1/embeddings" {
			http.Error(w, `{"error":{"message":"unauthorized"}}`, http.StatusUnauthorized)
			return
		}
		var req struct {
			Model string   `json:"model"`
			Input []string `json:"input"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req.Input) == 0 {
			http.Error(w, `{"error":{"message":"bad request"}}`, http.StatusBadRequest)
			return
		}
		mu.Lock()
		*calls++
		*inputs += len(req.Input)
		mu.Unlock()
		type item struct {
			Index     int       `json:"index"`
			Embedding []float32 `json:"embedding"`
		}
		var data []item
		for i, in := range req.Input {
			v := make([]float32, 8)
			for _, r := range in {
				h := fnv.New32a()
				h.Write([]byte(string(r)))
				v[h.Sum32()%8]++
			}
			data = append(data, item{i, v})
		}
		json.NewEncoder(w).Encode(map[string]any{"data": data})
	}))
	t.Cleanup(srv.Close)
	return srv, calls, inputs
}

// TestBot_HybridDense runs the bot with the dense embedder against an
// httptest OpenAI-compatible server: publishing embeds every question, a
// query embeds once, and results are fused with the lexical ranking.
func TestBot_HybridDense(t *testing.T) {
	srv, calls, inputs := toyEmbeddings(t)
	for _, m := range []embed.FusionMethod{embed.RRF, embed.Weighted} {
		*calls, *inputs = 0, 0
		b := newSampleBot(t, func(c *Config) {
			c.Embedding = &EmbeddingConfig{URL: srv.URL + "/v1", Model: "toy", APIKey: "k", BatchSize: 16, Fusion: embed.Fusion{Method: m, DenseWeight: 0.3}}
		})
		if *calls == 0 || *inputs < 40 {
			t.Fatalf("%s: publish embedded %d texts in %d calls", m, *inputs, *calls)
		}
		d := ask(t, b, "h", "", "退款多久能到账")
		if len(d.Candidates) == 0 || d.Candidates[0].EntryID != "return-003" {
			t.Errorf("%s: hybrid top %v", m, ids(d.Candidates))
		}
	}
}

// countingDense counts the texts it embeds.
type countingDense struct{ n int }

func (c *countingDense) Embed(_ context.Context, texts []string) ([][]float32, error) {
	c.n += len(texts)
	out := make([][]float32, len(texts))
	for i := range out {
		out[i] = []float32{1, float32(len(texts[i]))}
	}
	return out, nil
}

func TestPublish_ReembedsOnlyChanged(t *testing.T) {
	b := newSampleBot(t, nil)
	cd := &countingDense{}
	b.dense = cd
	entries := b.Entries()
	// First publish with the embedder: everything is new to it.
	b.cur.Load().hashes = map[string]string{}
	if err := b.Publish(context.Background(), entries, nil); err != nil {
		t.Fatal(err)
	}
	total := cd.n
	cd.n = 0
	if err := b.Publish(context.Background(), entries, nil); err != nil {
		t.Fatal(err)
	}
	if cd.n != 0 {
		t.Errorf("unchanged KB re-embedded %d texts", cd.n)
	}
	entries[3].Similar = append(entries[3].Similar, "新的说法")
	if err := b.Publish(context.Background(), entries, nil); err != nil {
		t.Fatal(err)
	}
	if want := len(entries[3].Questions()); cd.n != want {
		t.Errorf("one changed entry re-embedded %d texts, want %d (of %d)", cd.n, want, total)
	}
}
