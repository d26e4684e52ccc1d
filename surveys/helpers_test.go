package surveys

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"kefu/conv"
	"kefu/engine"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// cst is the brand's time zone in tests.
var cst = func() *time.Location {
	l, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		panic(err)
	}
	return l
}()

// noon is a Monday 12:00 in Shanghai: outside quiet hours.
var noon = time.Date(2026, 11, 23, 12, 0, 0, 0, cst)

// fakeSender records outbound messages, delivering each ID once like the
// gateway's sender.
type fakeSender struct {
	mu   sync.Mutex
	sent []conv.Outbound
	ids  map[string]bool
	// delivered is told about each new message, as gateway.Sender.OnResult
	// is after a successful delivery.
	delivered func(conv.Outbound)
}

func (f *fakeSender) Send(_ context.Context, o conv.Outbound) error {
	f.mu.Lock()
	if f.ids == nil {
		f.ids = map[string]bool{}
	}
	if f.ids[o.ID] {
		f.mu.Unlock()
		return nil
	}
	f.ids[o.ID] = true
	f.sent = append(f.sent, o)
	done := f.delivered
	f.mu.Unlock()
	if done != nil {
		done(o)
	}
	return nil
}

func (f *fakeSender) all() []conv.Outbound {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]conv.Outbound(nil), f.sent...)
}

// bySource returns the messages whose ID starts with prefix.
func (f *fakeSender) byPrefix(prefix string) []conv.Outbound {
	var out []conv.Outbound
	for _, o := range f.all() {
		if strings.HasPrefix(o.ID, prefix) {
			out = append(out, o)
		}
	}
	return out
}

// to returns the messages of kind sent to recipient, oldest first.
func (f *fakeSender) to(kind conv.OutboundKind, recipient string) []conv.Outbound {
	var out []conv.Outbound
	for _, o := range f.all() {
		if o.Kind == kind && o.To == recipient {
			out = append(out, o)
		}
	}
	return out
}

// containing keeps the messages whose text contains s.
func containing(os []conv.Outbound, s string) []conv.Outbound {
	var out []conv.Outbound
	for _, o := range os {
		if strings.Contains(o.Reply.Text, s) {
			out = append(out, o)
		}
	}
	return out
}

// quotaSender also answers the quota book, like *gateway.Sender.
type quotaSender struct {
	*fakeSender
	left  int
	until time.Time
}

func (q *quotaSender) Quota(context.Context, string, string, time.Time) (int, time.Time, error) {
	return q.left, q.until, nil
}

// events collects emitted events.
type events struct {
	mu  sync.Mutex
	all []conv.Event
}

func (e *events) emit(ev conv.Event) {
	e.mu.Lock()
	e.all = append(e.all, ev)
	e.mu.Unlock()
}

func (e *events) of(t conv.EventType) []conv.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []conv.Event
	for _, ev := range e.all {
		if ev.Type == t {
			out = append(out, ev)
		}
	}
	return out
}

// reasons lists the reason codes of not-sent events.
func (e *events) reasons() []string {
	var out []string
	for _, ev := range e.of(conv.EvSurveyNotSent) {
		out = append(out, ev.Reason)
	}
	return out
}

func testLogger() *slog.Logger {
	if os.Getenv("KEFU_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func openEmbedded(t testing.TB) engine.Engine {
	t.Helper()
	e, err := engine.OpenEmbedded(t.TempDir(), engine.EmbeddedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

// testTree is brand → region east → two stores, with managers on every level.
func testTree() conv.StoreNode {
	return conv.StoreNode{ID: "brand", Name: "品牌总部", Managers: []conv.Manager{{Name: "HQ", WeComUserID: "hq-boss", Login: "hq"}},
		Children: []conv.StoreNode{{ID: "east", Name: "华东区", Managers: []conv.Manager{{Name: "区域经理", WeComUserID: "region-mgr", Login: "region"}},
			Children: []conv.StoreNode{
				{ID: "store-001", Name: "南京路店", Opening: "10:00", Managers: []conv.Manager{{Name: "王店长", WeComUserID: "mgr-001", Login: "wang", RobotKey: "robot-key-1"}}},
				{ID: "store-002", Name: "淮海路店", Managers: []conv.Manager{{Name: "李店长", WeComUserID: "mgr-002", Login: "li"}}},
			}}}}
}

func testConfig() Config {
	cfg := DefaultConfig()
	cfg.Stores = testTree()
	cfg.Alerts.WeComAppChannel = "mgr"
	cfg.Alerts.ConsoleURL = "https://kefu.example.com"
	cfg.Alerts.ClaimSecret = "claim-secret-0123456789"
	cfg.Digest.Enabled = false
	return cfg
}

type harness struct {
	t     *testing.T
	svc   *Service
	eng   engine.Engine
	clock *clock
	out   *fakeSender
	ev    *events
}

func newHarness(t *testing.T, tune ...func(*Config, *Options)) *harness {
	t.Helper()
	return newHarnessSender(t, nil, tune...)
}

// newHarnessSender builds a harness whose sender wrap makes from the
// recording fake (nil: the fake itself).
func newHarnessSender(t *testing.T, wrap func(*fakeSender) Sender, tune ...func(*Config, *Options)) *harness {
	t.Helper()
	h := &harness{t: t, eng: openEmbedded(t), clock: &clock{t: noon}, out: &fakeSender{}, ev: &events{}}
	cfg := testConfig()
	opts := Options{Emit: h.ev.emit, Now: h.clock.Now, Logger: testLogger()}
	var sender Sender = h.out
	if wrap != nil {
		sender = wrap(h.out)
	}
	for _, f := range tune {
		f(&cfg, &opts)
	}
	svc, err := New(cfg, h.eng, sender, opts)
	if err != nil {
		t.Fatal(err)
	}
	h.svc = svc
	h.out.mu.Lock()
	h.out.delivered = func(o conv.Outbound) { svc.OutboundResult(o, nil) }
	h.out.mu.Unlock()
	return h
}

// run fires every timer due now.
func (h *harness) run() {
	ctx := context.Background()
	for h.svc.RunDue(ctx) > 0 {
	}
}

// advance moves the clock and fires what became due.
func (h *harness) advance(d time.Duration) {
	h.clock.Advance(d)
	h.run()
}

// oaContact is an agent-closed OA contact of customer ext ending now.
func (h *harness) oaContact(ext string) conv.ContactEnded {
	now := h.clock.Now()
	return conv.ContactEnded{Conv: conv.ConvID("conv-" + ext + "-" + now.Format("150405.000")), Customer: conv.NewCustomerID("demo", ext), Channel: "demo",
		ChannelType: conv.ChannelWeChatOA, ExternalUser: ext, Store: "store-001", Agent: "agent-7", HandedOff: true, Entries: []string{"kb-12"},
		Disposition: "咨询", Resolved: true, Outcome: "closed", StartedAt: now.Add(-9 * time.Minute), EndedAt: now, LastCustomerMsgAt: now.Add(-time.Minute)}
}

func (h *harness) schedule(ce conv.ContactEnded) {
	h.t.Helper()
	if err := h.svc.Schedule(context.Background(), ce); err != nil {
		h.t.Fatal(err)
	}
}

// reply routes a customer text through the stage.
func (h *harness) reply(ce conv.ContactEnded, id, text string) ([]conv.Reply, bool) {
	h.t.Helper()
	msg := conv.Message{ID: id, Channel: ce.Channel, ChannelType: ce.ChannelType, Customer: ce.Customer, ExternalUser: ce.ExternalUser,
		Store: ce.Store, Kind: conv.MsgText, Text: text, CreatedAt: h.clock.Now()}
	replies, handled, err := h.svc.Route(context.Background(), msg)
	if err != nil {
		h.t.Fatal(err)
	}
	return replies, handled
}

func texts(rs []conv.Reply) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Text)
	}
	return out
}
