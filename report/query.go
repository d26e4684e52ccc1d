package report

import (
	"context"
	"fmt"
	"sort"
	"time"

	"kefu/conv"
)

// Dimension is what a KPI table groups by.
type Dimension string

// Dimensions of KPI tables. DimStore rolls up the store tree: a region's
// row sums its stores.
const (
	DimTotal   Dimension = ""
	DimStore   Dimension = "store"
	DimAgent   Dimension = "agent"
	DimChannel Dimension = "channel"
	DimDay     Dimension = "day"
	DimWeek    Dimension = "week"
	DimMonth   Dimension = "month"
)

// ParseDimension validates a --by / ?by= value.
func ParseDimension(s string) (Dimension, error) {
	switch d := Dimension(s); d {
	case DimTotal, DimStore, DimAgent, DimChannel, DimDay, DimWeek, DimMonth:
		return d, nil
	}
	return "", fmt.Errorf("%w: by must be store, agent, channel, day, week or month", conv.ErrBadInput)
}

// Query selects buckets. Days are the contacts' start days "2006-01-02" in
// the report zone, both ends inclusive; empty means unbounded.
type Query struct {
	From, To string
	By       Dimension
	// Store keeps this tree node and everything below it.
	Store   conv.StoreID
	Agent   string
	Channel string
	// Scope hides stores the viewer may not see (nil: all).
	Scope func(conv.StoreID) bool
}

// Row is one line of a KPI table.
type Row struct {
	Key   string `json:"key"`
	Label string `json:"label"`
	// Depth is the row's level in the store tree (0 for other dimensions).
	Depth  int     `json:"depth"`
	Counts Counts  `json:"counts"`
	KPIs   []Value `json:"kpis"`
}

// Table is a KPI table with its total and the definitions of its columns.
type Table struct {
	By          Dimension    `json:"by"`
	From        string       `json:"from"`
	To          string       `json:"to"`
	Rows        []Row        `json:"rows"`
	Total       Row          `json:"total"`
	Definitions []Definition `json:"definitions"`
	// ProvisionalFrom is the first contact day whose FCR can still drop:
	// its repeat window has not fully passed.
	ProvisionalFrom string `json:"provisional_from"`
}

func (r *Reporter) match(q *Query, k Key) bool {
	if q.From != "" && k.Day < q.From || q.To != "" && k.Day > q.To {
		return false
	}
	if q.Agent != "" && k.Agent != q.Agent || q.Channel != "" && k.Channel != q.Channel {
		return false
	}
	if q.Store != "" && !r.within(k.Store, q.Store) {
		return false
	}
	return q.Scope == nil || q.Scope(k.Store)
}

func (r *Reporter) within(store, scope conv.StoreID) bool {
	if store == scope {
		return true
	}
	return r.tree != nil && r.tree.Within(store, scope)
}

// each calls fn for every bucket matching q; callers hold r.mu (read).
// Unless fine is set or q filters by agent or channel, it walks the
// day × store roll-up instead of the day × store × channel × agent buckets:
// the same sums from an order of magnitude fewer buckets.
func (r *Reporter) each(q *Query, fine bool, fn func(Key, *Counts)) {
	buckets, days := r.f.buckets, r.f.days
	if !fine && q.Agent == "" && q.Channel == "" {
		ru := r.rollup()
		buckets, days = ru.buckets, ru.days
	}
	if q.From != "" && q.From == q.To {
		for _, k := range days[q.From] {
			if r.match(q, k) {
				fn(k, buckets[k])
			}
		}
		return
	}
	for k, c := range buckets {
		if r.match(q, k) {
			fn(k, c)
		}
	}
}

// rollupCache is the day × store sum of the buckets, rebuilt lazily when
// the fold has changed (gen) since it was built.
type rollupCache struct {
	gen     int64
	buckets map[Key]*Counts
	days    map[string][]Key
}

// rollup returns the current roll-up; callers hold r.mu (read), which
// keeps the fold still while it is built.
func (r *Reporter) rollup() *rollupCache {
	r.rollMu.Lock()
	defer r.rollMu.Unlock()
	if r.roll != nil && r.roll.gen == r.gen {
		return r.roll
	}
	ru := &rollupCache{gen: r.gen, buckets: make(map[Key]*Counts, len(r.f.buckets)/8), days: map[string][]Key{}}
	for k, c := range r.f.buckets {
		kk := Key{Day: k.Day, Store: k.Store}
		acc := ru.buckets[kk]
		if acc == nil {
			acc = &Counts{}
			ru.buckets[kk] = acc
			ru.days[kk.Day] = append(ru.days[kk.Day], kk)
		}
		acc.Add(c)
	}
	r.roll = ru
	return ru
}

// KPIs returns the KPI table of q.
func (r *Reporter) KPIs(q Query) Table {
	r.mu.RLock()
	defer r.mu.RUnlock()
	t := Table{By: q.By, From: q.From, To: q.To, Definitions: r.Definitions(),
		ProvisionalFrom: r.now().Add(-r.cfg.RepeatWindow - 24*time.Hour).In(r.loc).Format(time.DateOnly)}
	groups := map[string]*Counts{}
	var total Counts
	add := func(g string, c *Counts) {
		acc := groups[g]
		if acc == nil {
			acc = &Counts{}
			groups[g] = acc
		}
		acc.Add(c)
	}
	r.each(&q, q.By == DimAgent || q.By == DimChannel, func(k Key, c *Counts) {
		total.Add(c)
		switch q.By {
		case DimStore:
			add(string(k.Store), c)
			if r.tree != nil {
				for _, a := range r.tree.Ancestors(k.Store) {
					// A region row sums only what the viewer may see, and only
					// when the viewer may see the region itself.
					if (q.Store == "" || r.within(a, q.Store)) && (q.Scope == nil || q.Scope(a)) {
						add(string(a), c)
					}
				}
			}
		case DimAgent:
			add(k.Agent, c)
		case DimChannel:
			add(k.Channel, c)
		case DimDay, DimWeek, DimMonth:
			add(period(q.By, k.Day), c)
		}
	})
	t.Total = Row{Key: "", Label: "Total", Counts: total, KPIs: total.Compute()}
	for _, g := range r.order(q.By, groups) {
		c := groups[g]
		t.Rows = append(t.Rows, Row{Key: g, Label: r.label(q.By, g), Depth: r.depth(&q, g), Counts: *c, KPIs: c.Compute()})
	}
	return t
}

// order sorts group keys: store-tree order for stores, time for periods,
// names otherwise.
func (r *Reporter) order(by Dimension, groups map[string]*Counts) []string {
	keys := make([]string, 0, len(groups))
	for g := range groups {
		keys = append(keys, g)
	}
	sort.Strings(keys)
	if by != DimStore || r.tree == nil || r.tree.Root.ID == "" {
		return keys
	}
	var out []string
	seen := map[string]bool{}
	var walk func(n *conv.StoreNode)
	walk = func(n *conv.StoreNode) {
		if _, ok := groups[string(n.ID)]; ok {
			out = append(out, string(n.ID))
			seen[string(n.ID)] = true
		}
		for i := range n.Children {
			walk(&n.Children[i])
		}
	}
	walk(&r.tree.Root)
	for _, k := range keys {
		if !seen[k] {
			out = append(out, k)
		}
	}
	return out
}

func (r *Reporter) label(by Dimension, g string) string {
	switch {
	case by == DimStore && r.tree != nil:
		if n, ok := r.tree.Node(conv.StoreID(g)); ok && n.Name != "" {
			return n.Name + " (" + g + ")"
		}
	case by == DimAgent && g == "":
		return "(bot / unassigned)"
	}
	if g == "" {
		return "(none)"
	}
	return g
}

// depth counts the ancestors shown above g, so a manager's own store is
// not indented under regions they cannot see.
func (r *Reporter) depth(q *Query, g string) int {
	if q.By != DimStore || r.tree == nil {
		return 0
	}
	n := 0
	for _, a := range r.tree.Ancestors(conv.StoreID(g)) {
		if (q.Store == "" || r.within(a, q.Store)) && (q.Scope == nil || q.Scope(a)) {
			n++
		}
	}
	return n
}

// period maps a day to its day, ISO week ("2026-W48") or month ("2026-11").
func period(by Dimension, day string) string {
	switch by {
	case DimWeek:
		t, err := time.Parse(time.DateOnly, day)
		if err != nil {
			return day
		}
		y, w := t.ISOWeek()
		return fmt.Sprintf("%04d-W%02d", y, w)
	case DimMonth:
		if len(day) >= 7 {
			return day[:7]
		}
	}
	return day
}

// Drop is one reason for leaving a funnel stage.
type Drop struct {
	Reason string `json:"reason"`
	Count  int64  `json:"count"`
}

// Stage is one step of the funnel.
type Stage struct {
	Name  string `json:"name"`
	Label string `json:"label"`
	Count int64  `json:"count"`
	// Parent is the stage this one is a share of; Conversion = Count ÷ the
	// parent's count (0 without a parent or when it is 0).
	Parent     string  `json:"parent,omitempty"`
	Conversion float64 `json:"conversion"`
	Drops      []Drop  `json:"drops,omitempty"`
	// Filter lists the stage's conversations in Drill.
	Filter string `json:"filter,omitempty"`
}

// Funnel is the contact waterfall of PRODUCT.md §8.
type Funnel struct {
	From   string  `json:"from"`
	To     string  `json:"to"`
	Stages []Stage `json:"stages"`
}

// Funnel returns the funnel of q (q.By is ignored).
func (r *Reporter) Funnel(q Query) Funnel {
	r.mu.RLock()
	var c Counts
	r.each(&q, false, func(_ Key, b *Counts) { c.Add(b) })
	r.mu.RUnlock()
	return buildFunnel(q, &c, r.cfg)
}

func buildFunnel(q Query, c *Counts, cfg Config) Funnel {
	pos := func(n int64) int64 { return max(n, 0) }
	reasons := func(prefix string, m map[string]int64) []Drop {
		var out []Drop
		for k, v := range m {
			out = append(out, Drop{Reason: prefix + k, Count: v})
		}
		sort.Slice(out, func(i, j int) bool {
			if out[i].Count != out[j].Count {
				return out[i].Count > out[j].Count
			}
			return out[i].Reason < out[j].Reason
		})
		return out
	}
	lateCalled := c.CaseCalled - c.CallbackIn
	overdueOpen := pos(c.CaseOverdue - lateCalled)
	window := fmtDur(cfg.RepeatWindow)
	st := []Stage{
		{Name: "contacts", Label: "Contacts", Count: c.Contacts, Filter: ""},
		{Name: "bot_answered", Label: "Bot-answered (contained)", Count: c.BotContained, Parent: "contacts", Filter: "contained",
			Drops: []Drop{{"handed off", c.HandedOff}, {"no bot answer, no handoff / still open", pos(c.Contacts - c.BotContained - c.HandedOff)}}},
		{Name: "handed_off", Label: "Handed off", Count: c.HandedOff, Parent: "contacts", Filter: "handed_off"},
		{Name: "picked_up", Label: "Picked up", Count: c.Answered, Parent: "handed_off", Filter: "picked_up",
			Drops: append(reasons("abandoned: ", c.AbandonReasons), Drop{"still waiting", pos(c.HandedOff - c.Answered - c.Abandoned)})},
		{Name: "abandoned", Label: "Abandoned", Count: c.Abandoned, Parent: "handed_off", Filter: "abandoned",
			Drops: reasons("", c.AbandonReasons)},
		{Name: "resolved", Label: "Resolved (bot or agent)", Count: c.BotContained + c.Resolved, Parent: "contacts", Filter: "resolved",
			Drops: []Drop{{"agent: not resolved", c.Unresolved}, {"abandoned", c.Abandoned}, {"other / still open", pos(c.Contacts - c.BotContained - c.Resolved - c.Unresolved - c.Abandoned)}}},
		{Name: "no_repeat", Label: "No repeat within " + window, Count: pos(c.Ended - c.Repeat), Parent: "contacts", Filter: "no_repeat",
			Drops: []Drop{{"repeat within " + window, c.Repeat}, {"still open", pos(c.Contacts - c.Ended)}}},
		{Name: "surveyed", Label: "Surveyed", Count: c.SurveySent, Parent: "contacts", Filter: "surveyed",
			Drops: append(reasons("not sent: ", c.NotSentReasons), Drop{"no survey yet", pos(c.Contacts - c.SurveySent - c.SurveyNot)})},
		{Name: "answered", Label: "Answered", Count: c.Responses, Parent: "surveyed", Filter: "answered",
			Drops: []Drop{{"no answer", pos(c.SurveySent - c.Responses)}}},
		{Name: "promoters", Label: "Promoters", Count: c.Promoters, Parent: "answered", Filter: "promoter"},
		{Name: "passives", Label: "Passives", Count: c.Passives, Parent: "answered", Filter: "passive"},
		{Name: "detractors", Label: "Detractors", Count: c.Detractors, Parent: "answered", Filter: "detractor"},
		{Name: "called_back", Label: "Detractor called back within deadline", Count: c.CallbackIn, Parent: "detractors", Filter: "called_back",
			Drops: []Drop{{"no case opened", pos(c.Detractors - c.Cases)}, {"called back late", lateCalled},
				{"overdue, not called back", overdueOpen}, {"open, not yet due", pos(c.Cases - c.CaseCalled - overdueOpen)}}},
		{Name: "case_closed", Label: "Case closed", Count: c.CaseClosed, Parent: "detractors", Filter: "case_closed",
			Drops: []Drop{{"case still open", pos(c.Cases - c.CaseClosed)}}},
		{Name: "recovered", Label: "Recovered on re-survey", Count: c.Recovered, Parent: "case_closed", Filter: "",
			Drops: []Drop{{"re-survey not recovered", c.ReSurveys - c.Recovered}}},
	}
	idx := map[string]int64{}
	for i := range st {
		idx[st[i].Name] = st[i].Count
		if p, ok := idx[st[i].Parent]; ok && p > 0 {
			st[i].Conversion = float64(st[i].Count) / float64(p)
		}
		var drops []Drop
		for _, d := range st[i].Drops {
			if d.Count > 0 {
				drops = append(drops, d)
			}
		}
		st[i].Drops = drops
	}
	return Funnel{From: q.From, To: q.To, Stages: st}
}

// ContactRef is one conversation in a drill-down list.
type ContactRef struct {
	Conv     conv.ConvID     `json:"conv"`
	Customer conv.CustomerID `json:"customer,omitempty"`
	Store    conv.StoreID    `json:"store,omitempty"`
	Channel  string          `json:"channel,omitempty"`
	Agent    string          `json:"agent,omitempty"`
	Start    time.Time       `json:"start"`
	Outcome  string          `json:"outcome,omitempty"`
	Score    *int            `json:"score,omitempty"`
}

// DrillFilters are the predicates Drill accepts (funnel stage filters and
// KPI tags); "" lists every contact.
var DrillFilters = []string{"", "contained", "handed_off", "picked_up", "abandoned", "resolved", "unresolved",
	"repeat", "no_repeat", "surveyed", "not_sent", "answered", "promoter", "passive", "detractor", "called_back", "case_closed", "open"}

// Drill lists up to limit conversations of q whose group (for q.By) is key
// and that pass filter, newest first. Only contacts still kept in memory
// (Config.KeepContacts) are listed.
func (r *Reporter) Drill(q Query, key, filter string, limit int) ([]ContactRef, error) {
	ok := false
	for _, f := range DrillFilters {
		ok = ok || f == filter
	}
	if !ok {
		return nil, fmt.Errorf("%w: unknown filter %q", conv.ErrBadInput, filter)
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []ContactRef
	for _, c := range r.f.contacts {
		agent := firstNonEmpty(c.EndAgent, c.PickAgent)
		k := Key{Day: c.Day, Store: c.Store, Channel: c.Channel, Agent: agent}
		if q.Agent != "" && c.PickAgent != q.Agent && c.EndAgent != q.Agent {
			continue
		}
		k.Agent = "" // agent filter handled above
		qq := q
		qq.Agent = ""
		if !r.match(&qq, k) || !r.inGroup(q.By, key, c) || !r.pass(filter, c) {
			continue
		}
		ref := ContactRef{Conv: c.ID, Customer: c.Customer, Store: c.Store, Channel: c.Channel, Agent: agent,
			Start: time.UnixMilli(c.Start).In(r.loc), Outcome: c.Outcome}
		if c.Score > 0 {
			s := c.Score - 1
			ref.Score = &s
		}
		out = append(out, ref)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Start.Equal(out[j].Start) {
			return out[i].Start.After(out[j].Start)
		}
		return out[i].Conv < out[j].Conv
	})
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func (r *Reporter) inGroup(by Dimension, key string, c *contact) bool {
	switch by {
	case DimStore:
		return key == "" || r.within(c.Store, conv.StoreID(key))
	case DimAgent:
		return c.PickAgent == key || c.EndAgent == key
	case DimChannel:
		return c.Channel == key
	case DimDay, DimWeek, DimMonth:
		return key == "" || period(by, c.Day) == key
	}
	return true
}

func (r *Reporter) pass(filter string, c *contact) bool {
	switch filter {
	case "":
		return true
	case "contained":
		return c.Ended && c.BotAnswered && !c.HandedOff
	case "handed_off":
		return c.HandedOff
	case "picked_up":
		return c.PickedAt > 0
	case "abandoned":
		return c.Abandoned != ""
	case "resolved":
		return c.Resolved == "true" || c.Ended && c.BotAnswered && !c.HandedOff
	case "unresolved":
		return c.Resolved == "false"
	case "repeat":
		return c.Repeat
	case "no_repeat":
		return c.Ended && !c.Repeat
	case "surveyed":
		return c.SurveySent
	case "not_sent":
		return c.NotSent != ""
	case "answered":
		return c.Score > 0
	case "promoter":
		return c.Score-1 >= r.cfg.PromoterMin
	case "passive":
		return c.Score > 0 && c.Score-1 > r.cfg.DetractorMax && c.Score-1 < r.cfg.PromoterMin
	case "detractor":
		return c.Score > 0 && c.Score-1 <= r.cfg.DetractorMax
	case "called_back":
		cs := r.f.cases[c.Case]
		return cs != nil && cs.Called != 0 && cs.Called <= cs.Deadline
	case "case_closed":
		cs := r.f.cases[c.Case]
		return cs != nil && cs.Closed != 0
	case "open":
		return !c.Ended
	}
	return false
}

// Point is one period of a trend series.
type Point struct {
	Period string  `json:"period"`
	Value  float64 `json:"value"`
	N      int64   `json:"n"`
	OK     bool    `json:"ok"`
}

// Series is one line of a trend chart.
type Series struct {
	Key    string  `json:"key"`
	Label  string  `json:"label"`
	Points []Point `json:"points"`
}

// Trend returns kpi over the periods of q.By (day when unset or not a
// period) for the whole scope ("all") and for each of the maxSeries busiest
// stores in it.
func (r *Reporter) Trend(q Query, kpi string, maxSeries int) []Series {
	by := q.By
	if by != DimWeek && by != DimMonth {
		by = DimDay
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	type cell struct{ g, p string }
	cells := map[cell]*Counts{}
	volume := map[string]int64{}
	periods := map[string]bool{}
	r.each(&q, false, func(k Key, c *Counts) {
		p := period(by, k.Day)
		periods[p] = true
		for _, g := range []string{"", string(k.Store)} {
			acc := cells[cell{g, p}]
			if acc == nil {
				acc = &Counts{}
				cells[cell{g, p}] = acc
			}
			acc.Add(c)
		}
		volume[string(k.Store)] += c.Contacts + c.Responses
	})
	ps := make([]string, 0, len(periods))
	for p := range periods {
		ps = append(ps, p)
	}
	sort.Strings(ps)
	stores := make([]string, 0, len(volume))
	for s := range volume {
		stores = append(stores, s)
	}
	sort.Slice(stores, func(i, j int) bool {
		if volume[stores[i]] != volume[stores[j]] {
			return volume[stores[i]] > volume[stores[j]]
		}
		return stores[i] < stores[j]
	})
	if len(stores) > maxSeries {
		stores = stores[:maxSeries]
	}
	sort.Strings(stores)
	out := []Series{}
	for _, g := range append([]string{""}, stores...) {
		s := Series{Key: g, Label: "All"}
		if g != "" {
			s.Label = r.label(DimStore, g)
		}
		for _, p := range ps {
			pt := Point{Period: p}
			if c := cells[cell{g, p}]; c != nil {
				v := c.Get(kpi)
				pt.Value, pt.N, pt.OK = v.Value, v.N, v.OK
			}
			s.Points = append(s.Points, pt)
		}
		out = append(out, s)
	}
	return out
}

// LiveQueue is what the handoff side knows right now about queues and agents.
type LiveQueue struct {
	QueueLength  int           `json:"queue_length"`
	LongestWait  time.Duration `json:"longest_wait"`
	AgentsOnline int           `json:"agents_online"`
	AgentsBusy   int           `json:"agents_busy"`
}

// LiveSource reports live queue and agent figures for the given stores
// (nil: all stores). The handoff domain implements it; app wires it.
type LiveSource interface {
	Live(ctx context.Context, stores []conv.StoreID) (LiveQueue, error)
}

// Live is the dashboard's live view. Queue is nil when no LiveSource is
// wired or it failed (shown as "—").
type Live struct {
	At           time.Time  `json:"at"`
	Today        string     `json:"today"`
	Queue        *LiveQueue `json:"queue"`
	ServiceLevel Value      `json:"service_level"`
	ASA          Value      `json:"asa"`
	NPS          Value      `json:"nps"`
	Contacts     int64      `json:"contacts"`
	OpenCases    int        `json:"open_cases"`
	OverdueCases int        `json:"overdue_cases"`
	Cursor       string     `json:"cursor"`
}

// Live computes the live view for the stores scope allows. stores is
// passed to src (nil: all).
func (r *Reporter) Live(ctx context.Context, src LiveSource, scope func(conv.StoreID) bool, stores []conv.StoreID) Live {
	now := r.now()
	today := now.In(r.loc).Format(time.DateOnly)
	lv := Live{At: now, Today: today}
	if src != nil {
		if q, err := src.Live(ctx, stores); err == nil {
			lv.Queue = &q
		} else {
			r.log.Warn("live source failed", "err", err)
		}
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	var c Counts
	q := Query{From: today, To: today, Scope: scope}
	// Today's fine buckets are few; rebuilding the roll-up after every
	// refresh would cost more than reading them.
	r.each(&q, true, func(_ Key, b *Counts) { c.Add(b) })
	lv.ServiceLevel, lv.ASA, lv.NPS = c.Get(KPIServiceLevel), c.Get(KPIASA), c.Get(KPINPS)
	lv.Contacts = c.Contacts
	nowMs := now.UnixMilli()
	for id := range r.f.openCases {
		cs := r.f.cases[id]
		if scope != nil && !scope(cs.Key.Store) {
			continue
		}
		lv.OpenCases++
		if cs.Called == 0 && nowMs > cs.Deadline {
			lv.OverdueCases++
		}
	}
	lv.Cursor = r.f.cursor
	return lv
}

// CaseRef is an open detractor case in the live view.
type CaseRef struct {
	ID       string       `json:"id"`
	Conv     conv.ConvID  `json:"conv,omitempty"`
	Store    conv.StoreID `json:"store,omitempty"`
	Opened   time.Time    `json:"opened"`
	Deadline time.Time    `json:"deadline"`
	Called   bool         `json:"called"`
	Overdue  bool         `json:"overdue"`
}

// OpenCases lists open cases in scope, overdue first, then by deadline.
func (r *Reporter) OpenCases(scope func(conv.StoreID) bool) []CaseRef {
	now := r.now().UnixMilli()
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []CaseRef
	for id := range r.f.openCases {
		cs := r.f.cases[id]
		if scope != nil && !scope(cs.Key.Store) {
			continue
		}
		out = append(out, CaseRef{ID: cs.ID, Conv: cs.Conv, Store: cs.Key.Store,
			Opened: time.UnixMilli(cs.Opened).In(r.loc), Deadline: time.UnixMilli(cs.Deadline).In(r.loc),
			Called: cs.Called != 0, Overdue: cs.Called == 0 && now > cs.Deadline})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Overdue != out[j].Overdue {
			return out[i].Overdue
		}
		if !out[i].Deadline.Equal(out[j].Deadline) {
			return out[i].Deadline.Before(out[j].Deadline)
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// Stores returns the stores that have data, sorted (for filters).
func (r *Reporter) Stores() []conv.StoreID {
	r.mu.RLock()
	defer r.mu.RUnlock()
	seen := map[conv.StoreID]bool{}
	for k := range r.f.buckets {
		seen[k.Store] = true
	}
	out := make([]conv.StoreID, 0, len(seen))
	for s := range seen {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Location returns the zone days are cut in.
func (r *Reporter) Location() *time.Location { return r.loc }
