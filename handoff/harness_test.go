package handoff

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"kefu/conv"
	"kefu/engine"
	"kefu/internal/testredis"
)

// forEachEngine runs f on the embedded engine, on a real Redis and on a
// real three-master Redis Cluster (which proves the hash-tag discipline:
// keys used together in one Update share a slot).
func forEachEngine(t *testing.T, f func(t *testing.T, eng engine.Engine)) {
	t.Run("embedded", func(t *testing.T) { f(t, embeddedEngine(t)) })
	t.Run("redis", func(t *testing.T) { f(t, redisEngine(t)) })
	t.Run("cluster", func(t *testing.T) { f(t, clusterEngine(t)) })
}

var (
	clusterOnce sync.Once
	cluster     *testredis.Cluster
	clusterErr  error
	clusterSeq  atomic.Int64
)

// clusterEngine returns an engine on the package's shared cluster (started
// once: cluster startup takes about a second) with a fresh key prefix.
func clusterEngine(t testing.TB) engine.Engine {
	t.Helper()
	clusterOnce.Do(func() { cluster, clusterErr = testredis.LaunchCluster() })
	if clusterErr != nil {
		t.Fatal(clusterErr)
	}
	return engine.NewRedis(cluster.Client(), fmt.Sprintf("kefu%d:", clusterSeq.Add(1)))
}

func TestMain(m *testing.M) {
	code := m.Run()
	if cluster != nil {
		cluster.Stop()
	}
	os.Exit(code)
}

func embeddedEngine(t testing.TB) engine.Engine {
	t.Helper()
	e, err := engine.OpenEmbedded(t.TempDir(), engine.EmbeddedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

func redisEngine(t testing.TB) engine.Engine {
	t.Helper()
	srv := testredis.Start(t)
	return engine.NewRedis(srv.Client(), "kefu:")
}

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock {
	// A Wednesday 10:00 in Shanghai: inside usual business hours.
	return &clock{t: time.Date(2026, 11, 18, 10, 0, 0, 0, time.FixedZone("CST", 8*3600))}
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

// fakeSender records outbound messages and enforces the OA/KF rule the
// real sender enforces: at most 5 customer messages per customer message
// (trigger), within 48 h. A violation fails the test.
type fakeSender struct {
	t     testing.TB
	now   func() time.Time
	mu    sync.Mutex
	sent  []conv.Outbound
	ids   map[string]bool
	books map[string]*book
	// lag keeps sends in an outbox until flush, like the real sender
	// between enqueue and delivery; Quota counts them, as the real one does.
	lag     bool
	pending []conv.Outbound
}

// flush delivers the outbox of a lagging sender.
func (f *fakeSender) flush() {
	f.mu.Lock()
	p := f.pending
	f.pending, f.lag = nil, false
	f.mu.Unlock()
	for _, j := range p {
		_ = f.Send(context.Background(), j)
	}
}

type book struct {
	trigger time.Time
	used    int
}

func newFakeSender(t testing.TB, now func() time.Time) *fakeSender {
	return &fakeSender{t: t, now: now, ids: map[string]bool{}, books: map[string]*book{}}
}

func (f *fakeSender) Send(_ context.Context, job conv.Outbound) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if job.ID == "" {
		f.t.Errorf("outbound without ID: %+v", job)
	}
	if f.ids[job.ID] {
		return nil // idempotent by ID, like the real sender
	}
	if f.lag {
		// Like the real sender: a queued customer message holds a slot,
		// and RefuseOverQuota refuses one the allowance cannot cover.
		if job.RefuseOverQuota && job.Kind == conv.OutCustomer && job.Channel != "web" && f.leftLocked(job.Channel, job.To, job.TriggerAt) <= 0 {
			return conv.ErrQuotaExhausted
		}
		for _, p := range f.pending {
			if p.ID == job.ID {
				return nil
			}
		}
		f.pending = append(f.pending, job)
		return nil
	}
	if job.RefuseOverQuota && job.Kind == conv.OutCustomer && job.Channel != "web" && f.leftLocked(job.Channel, job.To, job.TriggerAt) <= 0 {
		return conv.ErrQuotaExhausted
	}
	if job.Kind == conv.OutCustomer && job.Channel != "web" {
		if job.TriggerAt.IsZero() {
			f.t.Errorf("customer message %s without TriggerAt", job.ID)
		}
		b := f.books[job.Channel+"|"+job.To]
		if b == nil || job.TriggerAt.After(b.trigger) {
			b = &book{trigger: job.TriggerAt}
			f.books[job.Channel+"|"+job.To] = b
		}
		if b.used >= 5 {
			f.t.Errorf("quota violated: 6th message %s to %s for trigger %s", job.ID, job.To, b.trigger)
			return conv.ErrQuotaExhausted
		}
		if f.now().Sub(b.trigger) > 48*time.Hour {
			return conv.ErrWindowClosed
		}
		b.used++
	}
	f.ids[job.ID] = true
	f.sent = append(f.sent, job)
	return nil
}

func (f *fakeSender) Quota(_ context.Context, channel, user string, last time.Time) (int, time.Time, error) {
	if channel == "web" {
		return -1, time.Time{}, nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	b := f.books[channel+"|"+user]
	if b == nil || last.After(b.trigger) {
		b = &book{trigger: last}
	}
	until := b.trigger.Add(48 * time.Hour)
	if f.now().After(until) {
		return 0, until, nil
	}
	return f.leftLocked(channel, user, last), until, nil
}

// leftLocked is the allowance after trigger less delivered and queued
// customer messages; f.mu is held.
func (f *fakeSender) leftLocked(channel, user string, trigger time.Time) int {
	b := f.books[channel+"|"+user]
	if b == nil || trigger.After(b.trigger) {
		b = &book{trigger: trigger}
	}
	if f.now().Sub(b.trigger) > 48*time.Hour {
		return 0
	}
	left := 5 - b.used
	for _, p := range f.pending {
		if p.Kind == conv.OutCustomer && p.Channel == channel && p.To == user {
			left--
		}
	}
	return max(left, 0)
}

func (f *fakeSender) to(user string) []conv.Outbound {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []conv.Outbound
	for _, j := range f.sent {
		if j.To == user {
			out = append(out, j)
		}
	}
	return out
}

// recorder collects events and closed hooks.
type recorder struct {
	mu     sync.Mutex
	events []conv.Event
	ended  []conv.ContactEnded
}

func (r *recorder) emit(ev conv.Event) {
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.mu.Unlock()
}

func (r *recorder) closed(_ context.Context, e conv.ContactEnded) {
	r.mu.Lock()
	r.ended = append(r.ended, e)
	r.mu.Unlock()
}

func (r *recorder) count(t conv.EventType) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.events {
		if e.Type == t {
			n++
		}
	}
	return n
}

func (r *recorder) endedList() []conv.ContactEnded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]conv.ContactEnded(nil), r.ended...)
}

// desk is one Service under test with its fakes.
type desk struct {
	*Service
	clock *clock
	out   *fakeSender
	rec   *recorder
	eng   engine.Engine
}

func testStores(t testing.TB) *conv.StoreTree {
	tree, err := conv.NewStoreTree(conv.StoreNode{ID: "brand", Hours: map[string]string{"mon-fri": "09:00-21:00", "sat-sun": "10:00-18:00"},
		Holidays: []string{"2026-10-01"},
		Children: []conv.StoreNode{{ID: "north", Children: []conv.StoreNode{{ID: "s1"}, {ID: "s2"}}}, {ID: "s3"}}})
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

func testAgents() []conv.AgentProfile {
	return []conv.AgentProfile{
		{Name: "alice", Number: "1001", Role: conv.RoleAgent, Stores: []conv.StoreID{"north"}, MaxChats: 2},
		{Name: "bob", Number: "1002", Role: conv.RoleAgent, Stores: []conv.StoreID{"north"}, Skills: []string{"vip"}, MaxChats: 2},
		{Name: "carol", Number: "1003", Role: conv.RoleAgent, Stores: []conv.StoreID{"s3"}},
		{Name: "sam", Number: "9001", Role: conv.RoleSupervisor},
	}
}

func newDesk(t testing.TB, eng engine.Engine, tune ...func(*Config, *Deps)) *desk {
	t.Helper()
	clk := newClock()
	out := newFakeSender(t, clk.Now)
	rec := &recorder{}
	cfg := DefaultConfig()
	d := Deps{Engine: eng, Sender: out, Stores: testStores(t), Agents: testAgents(), Emit: rec.emit, Now: clk.Now}
	for _, f := range tune {
		f(&cfg, &d)
	}
	s, err := New(cfg, d)
	if err != nil {
		t.Fatal(err)
	}
	s.OnClosed(rec.closed)
	return &desk{Service: s, clock: clk, out: out, rec: rec, eng: eng}
}

func principal(name string) conv.Principal {
	for _, a := range testAgents() {
		if a.Name == name {
			return conv.Principal{User: a.Name, Name: a.Name, Role: a.Role, Stores: a.Stores}
		}
	}
	return conv.Principal{User: name, Role: conv.RoleAgent, Stores: []conv.StoreID{"nowhere"}}
}

var msgSeq atomic.Int64

// customerMsg is an OA text message from user at store.
func (d *desk) customerMsg(user string, store conv.StoreID, text string) conv.Message {
	return conv.Message{ID: fmt.Sprintf("m%d-%s", msgSeq.Add(1), user), Channel: "oa", ChannelType: conv.ChannelWeChatOA,
		Account: "gh_test", Customer: conv.NewCustomerID("oa", user), ExternalUser: user, Store: store,
		Kind: conv.MsgText, Text: text, CreatedAt: d.clock.Now()}
}

func (d *desk) online(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		if err := d.SetStatus(context.Background(), principal(n), conv.AgentOnline); err != nil {
			t.Fatal(err)
		}
	}
}

func (d *desk) dispatch(t testing.TB) int {
	t.Helper()
	n, err := d.Dispatch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (d *desk) handoff(t testing.TB, user string, store conv.StoreID) conv.Conversation {
	t.Helper()
	m := d.customerMsg(user, store, "转人工")
	if err := d.Handoff(context.Background(), m, "explicit_request"); err != nil {
		t.Fatal(err)
	}
	c, ok, err := d.Active(context.Background(), m.Customer)
	if err != nil || !ok {
		t.Fatalf("no active conversation after handoff: ok=%v err=%v", ok, err)
	}
	return c
}

func mustConv(t testing.TB, d *desk, id conv.ConvID) conv.Conversation {
	t.Helper()
	c, err := d.Conversation(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func wantErr(t testing.TB, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("err = %v, want %v", err, target)
	}
}
