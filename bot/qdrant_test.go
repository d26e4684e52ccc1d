package bot

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/qdrant/go-client/qdrant"

	"kefu/bot/embed"
	"kefu/bot/index"
	"kefu/bot/index/qdranttest"
	"kefu/bot/kb"
	"kefu/conv"
)

// qdrantTargets returns the Qdrant servers to test against: always the
// in-process fake (real go-client over gRPC), plus a real server when
// KEFU_TEST_QDRANT_ADDR is set.
func qdrantTargets(t *testing.T) map[string]string {
	fake, err := qdranttest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fake.Stop)
	fakes[fake.Addr] = fake
	return map[string]string{"fake": fake.Addr, "real": os.Getenv("KEFU_TEST_QDRANT_ADDR")}
}

var fakes = map[string]*qdranttest.Server{}

func TestQdrant_MatchesEmbedded(t *testing.T) {
	for name, addr := range qdrantTargets(t) {
		t.Run(name, func(t *testing.T) {
			if addr == "" {
				t.Skip("KEFU_TEST_QDRANT_ADDR not set (host:6334 of a real Qdrant): covered by the in-process fake only")
			}
			coll := fmt.Sprintf("kefu_test_%d", time.Now().UnixNano())
			qb := newSampleBot(t, func(c *Config) { c.Qdrant = &QdrantConfig{Addr: addr, Collection: coll} })
			eb := newSampleBot(t, nil)
			ctx := context.Background()
			for _, q := range []string{"几点关门", "怎么退货", "积分会过期吗", "满多少包邮", "发票开错了", "徐家汇店在哪里"} {
				for _, store := range []string{"", "store-002"} {
					we := eb.customerSearch(t, q, store)
					qe := qb.customerSearch(t, q, store)
					if len(we) == 0 || len(qe) == 0 || we[0].EntryID != qe[0].EntryID {
						t.Errorf("%q store %q: qdrant %v, embedded %v", q, store, ids(qe), ids(we))
					}
				}
			}
			// Filters: agent-only, draft and other stores' entries never reach customers.
			for _, q := range []string{"顾客要求超期退货如何处理", "双十一活动什么时候开始", "人民广场店营业时间"} {
				for _, c := range qb.customerSearch(t, q, "store-002") {
					if slices.Contains([]string{"internal-001", "draft-001", "hours-003"}, c.EntryID) {
						t.Errorf("%q: customer search returned hidden entry %s", q, c.EntryID)
					}
				}
			}
			if got := qb.Search(ctx, "超期退货怎么处理", "", true, 3); len(got) == 0 || got[0].EntryID != "internal-001" {
				t.Errorf("agent search: %v", ids(got))
			}
			// Incremental publish: one entry changed, one removed.
			entries := qb.Entries()
			entries = slices.DeleteFunc(entries, func(e kb.Entry) bool { return e.ID == "gift-002" })
			for i := range entries {
				if entries[i].ID == "hours-001" {
					entries[i].Similar = append(entries[i].Similar, "打烊时间")
				}
			}
			if err := qb.Publish(ctx, entries, nil); err != nil {
				t.Fatal(err)
			}
			if got := qb.customerSearch(t, "打烊时间", ""); len(got) == 0 || got[0].EntryID != "hours-001" {
				t.Errorf("after publish: %v", ids(got))
			} else if got[0].Score != 1 && name == "fake" {
				// The fake computes Qdrant's IDF modifier, which equals the
				// model's idf on the same documents: a verbatim question is
				// a perfect lexical match and scores 1, as on the embedded index.
				t.Errorf("verbatim similar question through Qdrant scores %v, want 1", got[0].Score)
			}
			if got := qb.customerSearch(t, "礼品卡余额怎么查", ""); len(got) > 0 && got[0].EntryID == "gift-002" {
				t.Error("removed entry still found")
			}
			if f := fakes[addr]; f != nil {
				checkFakeSchema(t, f, coll)
			}
		})
	}
}

func (b *Bot) customerSearch(t *testing.T, q, store string) []Candidate {
	t.Helper()
	r := b.cur.Load()
	c, _, err := r.search(context.Background(), q, b.customerFilter(conv.StoreID(store)), 3)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ids(c []Candidate) []string {
	var out []string
	for _, x := range c {
		out = append(out, fmt.Sprintf("%s:%.2f", x.EntryID, x.Score))
	}
	return out
}

func checkFakeSchema(t *testing.T, f *qdranttest.Server, coll string) {
	t.Helper()
	if len(f.Errors) > 0 {
		t.Errorf("protocol violations: %v", f.Errors)
	}
	c := f.Collection(coll)
	if c == nil {
		t.Fatal("collection not created")
	}
	if c.GetSparseVectorsConfig().GetMap()["lexical"].GetModifier() != qdrant.Modifier_Idf {
		t.Error("sparse vector without IDF modifier")
	}
	log := strings.Join(f.Calls(), "\n")
	if !strings.Contains(log, "query "+coll) || !strings.Contains(log, "delete "+coll) {
		t.Errorf("fake saw no queries or deletes:\n%s", log)
	}
	for _, field := range []string{"entry", "stores", "all_stores", "category", "visibility", "status", "valid_until"} {
		if !strings.Contains(log, "index "+field) {
			t.Errorf("no payload index on %s", field)
		}
	}
}

// TestQdrant_Hybrid checks prefetch + RRF fusion through the real client:
// an entry ranked first by both sparse and dense vectors wins, and the
// rescaled fused score of a double first is 1.
func TestQdrant_Hybrid(t *testing.T) {
	for name, addr := range qdrantTargets(t) {
		t.Run(name, func(t *testing.T) {
			if addr == "" {
				t.Skip("KEFU_TEST_QDRANT_ADDR not set (host:6334 of a real Qdrant): covered by the in-process fake only")
			}
			ctx := context.Background()
			coll := fmt.Sprintf("kefu_hybrid_%d", time.Now().UnixNano())
			q, err := index.NewQdrant(ctx, index.QdrantConfig{Addr: addr, Collection: coll})
			if err != nil {
				t.Fatal(err)
			}
			defer q.Close()
			lex := embed.NewLexical(lexicalOptions)
			texts := map[string]string{"a": "怎么退货", "b": "退款多久到账", "c": "营业时间"}
			lex.Fit([]string{"怎么退货", "退款多久到账", "营业时间"})
			dense := map[string][]float32{"a": {1, 0, 0}, "b": {0, 1, 0}, "c": {0, 0, 1}}
			var docs []index.Doc
			for id, tx := range texts {
				docs = append(docs, index.Doc{Entry: id, Sparse: lex.Doc(tx), Dense: dense[id], Meta: index.Meta{Visibility: "customer", Status: "published"}})
			}
			if err := q.Upsert(ctx, docs); err != nil {
				t.Fatal(err)
			}
			hits, err := q.Search(ctx, index.Query{Sparse: lex.QueryTF("怎么退货"), Dense: []float32{0.9, 0.1, 0}}, index.Filter{AnyStore: true, Now: time.Now()}, 3)
			if err != nil {
				t.Fatal(err)
			}
			if len(hits) == 0 || hits[0].Entry != "a" {
				t.Fatalf("hybrid hits %+v", hits)
			}
			if name == "fake" && (hits[0].Score < 0.999 || hits[0].Score > 1.001) {
				t.Errorf("double first should score 1 after rescaling, got %v", hits[0].Score)
			}
			// A restarted client on the existing collection still uses its
			// dense vectors.
			q2, err := index.NewQdrant(ctx, index.QdrantConfig{Addr: addr, Collection: coll})
			if err != nil {
				t.Fatal(err)
			}
			defer q2.Close()
			dh, err := q2.Search(ctx, index.Query{Dense: []float32{0, 0.1, 1}}, index.Filter{AnyStore: true}, 1)
			if err != nil || len(dh) != 1 || dh[0].Entry != "c" {
				t.Errorf("dense search after reopen: %+v %v", dh, err)
			}
			if f := fakes[addr]; f != nil && len(f.Errors) > 0 {
				t.Errorf("protocol violations: %v", f.Errors)
			}
		})
	}
}

// TestQdrant_RestartReindexesOnlyChanged restarts a bot on an existing
// collection with one entry edited: only that entry's points are written.
func TestQdrant_RestartReindexesOnlyChanged(t *testing.T) {
	fake, err := qdranttest.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Stop()
	kbPath := copySample(t)
	cfg := func(c *Config) { c.KB = kbPath; c.Qdrant = &QdrantConfig{Addr: fake.Addr, Collection: "restart"} }
	newSampleBot(t, cfg).Close()
	points := fake.Points("restart")
	entries, err := kb.ReadFile(kbPath, kb.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	entries[0].Similar = append(entries[0].Similar, "几点打烊")
	if err := kb.WriteFile(kbPath, entries); err != nil {
		t.Fatal(err)
	}
	fake.Calls()
	b := newSampleBot(t, cfg)
	var upserts []string
	for _, l := range fake.Calls() {
		if strings.HasPrefix(l, "upsert") {
			upserts = append(upserts, l)
		}
	}
	want := fmt.Sprintf("upsert restart %d", len(entries[0].Questions())+1)
	if len(upserts) != 1 || upserts[0] != want {
		t.Errorf("restart wrote %v, want [%s]", upserts, want)
	}
	if fake.Points("restart") != points+1 {
		t.Errorf("points %d, want %d", fake.Points("restart"), points+1)
	}
	if got := b.customerSearch(t, "几点打烊", ""); len(got) == 0 || got[0].EntryID != entries[0].ID {
		t.Errorf("edited entry not found: %v", ids(got))
	}
}

// TestQdrant_HybridVerbatimQuestion: Qdrant's fused hybrid query returns
// no lexical scores (index.Hit.Best is 0), so the verbatim rule compares
// the normalised texts instead; a similar question asked word for word
// still scores 1 and is answered, as on the embedded index.
func TestQdrant_HybridVerbatimQuestion(t *testing.T) {
	srv, _, _ := toyEmbeddings(t)
	for name, addr := range qdrantTargets(t) {
		t.Run(name, func(t *testing.T) {
			if addr == "" {
				t.Skip("KEFU_TEST_QDRANT_ADDR not set (host:6334 of a real Qdrant): covered by the in-process fake only")
			}
			coll := fmt.Sprintf("kefu_test_%d", time.Now().UnixNano())
			b := newSampleBot(t, func(c *Config) {
				c.Qdrant = &QdrantConfig{Addr: addr, Collection: coll}
				c.Embedding = &EmbeddingConfig{URL: srv.URL + "/v1", Model: "toy", APIKey: "k", BatchSize: 16, Fusion: embed.Fusion{Method: embed.RRF}}
			})
			hits := b.customerSearch(t, "晚上营业到几点", "")
			if len(hits) == 0 || hits[0].EntryID != "hours-001" || hits[0].Score != 1 {
				t.Fatalf("verbatim similar question through Qdrant hybrid: %v, want hours-001 at exactly 1", hits)
			}
			if near := b.customerSearch(t, "周末晚上营业到几点", ""); len(near) > 0 && near[0].Score >= 1 {
				t.Errorf("a longer question scored as verbatim: %v", ids(near))
			}
		})
	}
}
