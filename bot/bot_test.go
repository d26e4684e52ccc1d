package bot

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"kefu/bot/kb"
	"kefu/conv"
)

func samplePath(t testing.TB) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "configs", "kb.sample.jsonl")
}

func newSampleBot(t testing.TB, mut func(*Config)) *Bot {
	t.Helper()
	cfg := DefaultConfig()
	cfg.KB = samplePath(t)
	if mut != nil {
		mut(&cfg)
	}
	b, err := New(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func ask(t *testing.T, b *Bot, cust, store, text string) Decision {
	t.Helper()
	d, err := b.Respond(context.Background(), Query{Text: text, Customer: conv.CustomerID(cust), Store: conv.StoreID(store)})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestBot_SampleAnswers(t *testing.T) {
	b := newSampleBot(t, nil)
	cases := []struct{ q, want string }{
		{"你们晚上几点关门呀？？", "hours-001"},
		{"請問怎麼退貨", "return-001"},
		{"退款多久能到账呢", "return-003"},
		{"满多少包邮", "delivery-002"},
		{"积分能抵现金吗", "member-003"},
		{"我要开发票", "invoice-001"},
		{"优惠卷怎么领[微笑]", "coupon-001"},
	}
	for _, c := range cases {
		d := ask(t, b, "c-"+c.q, "", c.q)
		if len(d.Candidates) == 0 || d.Candidates[0].EntryID != c.want {
			t.Errorf("%q: %s (score %.3f, cands %v), want top %s", c.q, d.Action, d.Score, d.Candidates, c.want)
		}
		if d.Action == ActAnswer && d.EntryID != c.want {
			t.Errorf("%q: answered %s, want %s", c.q, d.EntryID, c.want)
		}
	}
}

func TestBot_HandoffWords(t *testing.T) {
	b := newSampleBot(t, nil)
	for _, q := range []string{"转人工", "我要找人工", "HUMAN please", "你们这服务太差了，我要投诉", "垃圾"} {
		d := ask(t, b, "h", "", q)
		if d.Action != ActHandoff {
			t.Errorf("%q: got %s, want handoff", q, d.Action)
		}
	}
	for _, q := range []string{"滚筒洗衣机保修多久", "有人工智能音箱吗"} {
		if d := ask(t, b, "n-"+q, "", q); d.Action == ActHandoff {
			t.Errorf("%q: handed off (%s), but it is a product question", q, d.Reason)
		}
	}
}

func TestBot_TwoMissesHandOff(t *testing.T) {
	b := newSampleBot(t, nil)
	d1 := ask(t, b, "m", "", "火星上的天气怎么样")
	if d1.Action != ActFallback {
		t.Fatalf("first miss: %s (%.3f)", d1.Action, d1.Score)
	}
	d2 := ask(t, b, "m", "", "量子力学的基本原理")
	if d2.Action != ActHandoff || d2.Reason != "repeated_miss" {
		t.Fatalf("second miss: %s %s", d2.Action, d2.Reason)
	}
}

func TestBot_GreetingIsNotAMiss(t *testing.T) {
	b := newSampleBot(t, nil)
	for _, q := range []string{"你好", "在吗？", "[微笑]", "您好！！"} {
		d := ask(t, b, "g", "", q)
		if d.Action != ActFallback || d.Reason != "greeting" || d.Reply.Text != b.cfg.Texts.Greeting {
			t.Errorf("%q: %s %s %q", q, d.Action, d.Reason, d.Reply.Text)
		}
	}
}

func TestBot_ClarifyPick(t *testing.T) {
	b := newSampleBot(t, func(c *Config) { c.Answer = 0.99; c.Clarify = 0.01; c.Margin = 0.5 })
	d := ask(t, b, "p", "", "退货")
	if d.Action != ActClarify || len(d.Candidates) < 2 {
		t.Fatalf("want clarify with options, got %s %v", d.Action, d.Candidates)
	}
	if !strings.Contains(d.Reply.Text, "1. ") || !strings.Contains(d.Reply.Text, "2. ") {
		t.Fatalf("clarify text lacks numbered list: %q", d.Reply.Text)
	}
	want := d.Candidates[1].EntryID
	d2 := ask(t, b, "p", "", "２")
	if d2.Action != ActAnswer || d2.EntryID != want {
		t.Fatalf("pick 2: got %s %s, want answer %s", d2.Action, d2.EntryID, want)
	}
	// The pick is journalled as a label.
	recs, _ := b.journal.Records(context.Background())
	found := false
	for _, r := range recs {
		found = found || (r.Kind == RecPick && r.Entry == want && r.Question == "退货")
	}
	if !found {
		t.Fatalf("pick not journalled: %+v", recs)
	}
}

func TestBot_MenuClickPicks(t *testing.T) {
	b := newSampleBot(t, func(c *Config) { c.Answer = 0.99; c.Clarify = 0.01; c.Margin = 0.5 })
	d := ask(t, b, "menu", "", "退货")
	menu, ok := b.MenuReply(d)
	if !ok || menu.Kind != conv.ReplyMenu || len(menu.Menu) != len(d.Candidates) {
		t.Fatalf("menu %+v for %+v", menu, d)
	}
	d2 := ask(t, b, "menu", "", menu.Menu[1].Content)
	if d2.Action != ActAnswer || d2.EntryID != d.Candidates[1].EntryID || d2.Reason != "picked" {
		t.Fatalf("menu click: %s %s %s, want pick of %s", d2.Action, d2.EntryID, d2.Reason, d.Candidates[1].EntryID)
	}
	if _, ok := b.MenuReply(d2); ok {
		t.Error("menu for an answer")
	}
}

func TestBot_NeverServesHiddenEntries(t *testing.T) {
	b := newSampleBot(t, func(c *Config) { c.Answer = 0.05; c.Clarify = 0.01; c.Margin = 0 })
	check := func(store, q string, banned ...string) {
		t.Helper()
		for i := 0; i < 2; i++ {
			d := ask(t, b, fmt.Sprintf("x%d", i), store, q)
			for _, c := range append(d.Candidates, Candidate{EntryID: d.EntryID}) {
				for _, bad := range banned {
					if c.EntryID == bad {
						t.Errorf("%q in store %q offered %s", q, store, bad)
					}
				}
			}
		}
	}
	check("", "顾客要求超期退货如何处理", "internal-001")    // agent-only
	check("", "双十一活动什么时候开始", "draft-001")        // draft
	check("store-002", "人民广场店营业时间", "hours-003") // other store
	check("", "徐家汇店在哪里", "store-003")            // store-scoped, no store known
	if d := ask(t, b, "y", "store-002", "徐家汇店在哪里"); d.EntryID != "store-003" && (len(d.Candidates) == 0 || d.Candidates[0].EntryID != "store-003") {
		t.Errorf("store entry not found in its own store: %+v", d)
	}
	// Expired: move the clock past hours-002's validity.
	b.now = func() time.Time { return time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC) }
	check("", "春节期间门店营业吗", "hours-002")
	// Agents can find the agent-only entry.
	found := false
	for _, c := range b.Search(context.Background(), "超期退货怎么处理", "", true, 5) {
		found = found || (c.EntryID == "internal-001" && c.AgentOnly)
	}
	if !found {
		t.Error("agent search did not return the agent-only entry")
	}
}

func TestBot_Rating(t *testing.T) {
	b := newSampleBot(t, nil)
	d := ask(t, b, "r", "", "怎么开发票")
	if d.Action != ActAnswer || !strings.Contains(d.Reply.Text, "有帮助吗") {
		t.Fatalf("want answer with rating prompt, got %s %q", d.Action, d.Reply.Text)
	}
	d2 := ask(t, b, "r", "", "2")
	if d2.Reply.Text != b.cfg.Texts.RateSorry {
		t.Fatalf("rating reply: %q", d2.Reply.Text)
	}
	recs, _ := b.journal.Records(context.Background())
	var rated bool
	for _, r := range recs {
		rated = rated || (r.Kind == RecRating && r.Entry == d.EntryID && r.Helpful != nil && !*r.Helpful)
	}
	if !rated {
		t.Fatal("rating not journalled")
	}
}

func TestBot_ConcurrentRespond(t *testing.T) {
	b := newSampleBot(t, nil)
	entries := b.Entries()
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				_, err := b.Respond(context.Background(), Query{Text: entries[(g*7+i)%len(entries)].Question, Customer: conv.CustomerID(fmt.Sprint(g))})
				if err != nil {
					t.Error(err)
					return
				}
			}
		}(g)
	}
	// Publishing concurrently with answering must be safe.
	entries[0].Similar = append(entries[0].Similar, "你们开到几点")
	if err := b.Publish(context.Background(), entries, nil); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
}

func TestConfig_Validate(t *testing.T) {
	cases := []struct {
		mut  func(*Config)
		want string
	}{
		{func(c *Config) {}, ""},
		{func(c *Config) { c.KB = "" }, "bot.kb:"},
		{func(c *Config) { c.Answer = 0 }, "bot.thresholds.answer: must be in (0,1]"},
		{func(c *Config) { c.Answer = 1.5 }, "bot.thresholds.answer"},
		{func(c *Config) { c.Clarify = 0.9; c.Answer = 0.8 }, "bot.thresholds.clarify: must not exceed"},
		{func(c *Config) { c.Margin = -1 }, "bot.thresholds.margin"},
		{func(c *Config) { c.MaxMisses = 0 }, "bot.max_misses"},
		{func(c *Config) { c.ClarifyOptions = 1 }, "bot.clarify_options"},
		{func(c *Config) { c.Texts.Fallback = "" }, "bot.texts.fallback"},
		{func(c *Config) { c.Texts.Confirm = "no placeholder" }, "bot.texts.confirm"},
		{func(c *Config) { c.Embedding = &EmbeddingConfig{URL: "ftp://x", Model: "m"} }, "bot.embedding.url"},
		{func(c *Config) { c.Embedding = &EmbeddingConfig{URL: "http://x/v1"} }, "bot.embedding.model"},
		{func(c *Config) { c.Qdrant = &QdrantConfig{Addr: "nohost"} }, "bot.qdrant.addr"},
	}
	for i, c := range cases {
		cfg := DefaultConfig()
		cfg.KB = "kb.jsonl"
		c.mut(&cfg)
		err := cfg.Validate()
		switch {
		case c.want == "" && err != nil:
			t.Errorf("case %d: unexpected error %v", i, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("case %d: error %v, want it to contain %q", i, err, c.want)
		}
	}
}

func TestBot_RestartLoadsSnapshot(t *testing.T) {
	dir := t.TempDir()
	b1 := newSampleBot(t, func(c *Config) { c.DataDir = dir })
	want := b1.Search(context.Background(), "怎么退货", "", false, 3)
	b2 := newSampleBot(t, func(c *Config) { c.DataDir = dir })
	got := b2.Search(context.Background(), "怎么退货", "", false, 3)
	if len(got) == 0 || len(got) != len(want) || got[0] != want[0] {
		t.Fatalf("after restart: %v, before: %v", got, want)
	}
	_ = kb.Published
}

// TestBot_VerbatimQuestionAnswers: pooling lowers the score of an entry
// whose many phrasings disagree with the query, so a question the KB holds
// word for word — one similar question among several different ones —
// would otherwise fall into the clarify band. It must be answered, unless
// another entry holds the same question too (then the customer chooses).
func TestBot_VerbatimQuestionAnswers(t *testing.T) {
	entries := []kb.Entry{
		{ID: "delivery", Question: "多久能送到", Similar: []string{"什么时候发货", "下单后几天到", "配送要多久", "发货时间", "火星快递怎么寄"}, Answer: "2–5 天送达。"},
		{ID: "tracking", Question: "怎么查物流", Similar: []string{"快递单号在哪看"}, Answer: "订单详情里查看物流。"},
		{ID: "gift", Question: "礼品卡怎么用", Similar: []string{"怎么寄礼物"}, Answer: "结算时选择礼品卡。"},
		{ID: "gift-wrap", Question: "可以包装礼物吗", Similar: []string{"怎么寄礼物"}, Answer: "下单时勾选礼品包装。"},
	}
	cfg := DefaultConfig()
	cfg.AskRating = false
	b, err := NewWithEntries(cfg, entries, NewMemoryState(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	r := b.cur.Load()
	cands, _, err := r.search(context.Background(), "火星快递怎么寄", b.customerFilter(""), 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(cands) == 0 || cands[0].EntryID != "delivery" || cands[0].Score != 1 {
		t.Fatalf("verbatim similar question: candidates %+v, want delivery at score 1", cands)
	}
	if len(cands) > 1 && cands[1].Score >= 1 {
		t.Fatalf("only the entry holding the question scores 1: %+v", cands)
	}
	if d := ask(t, b, "c1", "", "火星快递怎么寄？"); d.Action != ActAnswer || d.EntryID != "delivery" {
		t.Errorf("verbatim question: %s %q (%.3f), want an answer from delivery", d.Action, d.EntryID, d.Score)
	}
	// A near miss is scored by pooling as before (not 1).
	if cands, _, _ := r.search(context.Background(), "火星快递怎么寄过去", b.customerFilter(""), 3); len(cands) == 0 || cands[0].Score >= 1 {
		t.Errorf("near miss scored as verbatim: %+v", cands)
	}
	// Two entries hold the same question: both score 1, the bot asks.
	d := ask(t, b, "c2", "", "怎么寄礼物")
	if d.Action != ActClarify || len(d.Candidates) < 2 {
		t.Fatalf("question held by two entries: %s %+v, want a clarify between them", d.Action, d.Candidates)
	}
	got := []string{d.Candidates[0].EntryID, d.Candidates[1].EntryID}
	slices.Sort(got)
	if got[0] != "gift" || got[1] != "gift-wrap" {
		t.Errorf("clarify offers %v, want gift and gift-wrap", got)
	}
}
