package report

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"kefu/conv"
	"kefu/engine"
)

// Engine keys the report owns (the engine adds its prefix).
const (
	// EventLog is the engine log the domains append conv.Event JSON to.
	EventLog = "events"
	// StateKey is the hash holding counters, open contacts/cases and the cursor.
	StateKey = "report:state"
	// LockKey is the lease naming the instance that persists the state.
	LockKey = "report:lock"
	// DefsKey is the hash of every KPI definition ever used (hash → JSON).
	DefsKey = "report:defs"
)

// Hash-field prefixes inside StateKey.
const (
	fieldCursor  = "cursor"
	fieldMeta    = "meta"
	fieldPending = "pending"
	pfxBucket    = "b" + keySep
	pfxContact   = "c" + keySep
	pfxCase      = "k" + keySep
)

// Options are the Reporter's optional collaborators.
type Options struct {
	Logger *slog.Logger
	// Now is the wall clock (live view, overdue cases, lag); default time.Now.
	Now func() time.Time
	// Log is the engine log to read; default EventLog.
	Log string
	// ReadOnly never takes the lease and never writes: the state persisted
	// by the serving instances is loaded and newer events are folded in
	// memory only (the CLI).
	ReadOnly bool
}

// Reporter folds the event log into KPI counters, persists them with a
// cursor in the engine, and answers queries (KPIs, funnel, trends,
// drill-down, live view) from memory.
type Reporter struct {
	eng  engine.Engine
	tree *conv.StoreTree
	cfg  Config
	defs []Definition
	log  *slog.Logger
	now  func() time.Time
	name string
	fp   string
	loc  *time.Location

	refreshMu sync.Mutex     // one Refresh at a time
	page      engine.LogPage // refresh reads the log through it (refreshMu)
	mu        sync.RWMutex   // guards f and gen
	f         *fold
	gen       int64 // bumped whenever f changes; invalidates roll

	rollMu sync.Mutex // guards roll
	roll   *rollupCache

	token      string
	readOnly   bool
	leader     bool
	isLeader   atomic.Bool // leader, readable without refreshMu (metrics)
	needLoad   bool        // reload the persisted state before folding again
	needWipe   bool        // parameters changed: the persisted state must be replaced
	lastOK     atomic.Int64
	refreshErr atomic.Int64
	folded     atomic.Int64
}

// New builds a Reporter over e, loading the persisted state (or starting a
// rebuild when the KPI parameters changed) and storing the current KPI
// definitions. tree may be nil (no store hierarchy).
func New(ctx context.Context, e engine.Engine, tree *conv.StoreTree, cfg Config, opts Options) (*Reporter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == "" {
		opts.Log = EventLog
	}
	var tok [12]byte
	_, _ = rand.Read(tok[:])
	r := &Reporter{
		eng: e, tree: tree, cfg: cfg, defs: Definitions(cfg),
		log: opts.Logger.With("component", "report"), now: opts.Now, name: opts.Log,
		fp: paramsFingerprint(cfg), f: newFold(cfg), loc: cfg.location(), readOnly: opts.ReadOnly, token: hex.EncodeToString(tok[:]),
	}
	if err := r.load(ctx); err != nil {
		return nil, err
	}
	if err := r.storeDefinitions(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

// Config returns the report's configuration.
func (r *Reporter) Config() Config { return r.cfg }

// Tree returns the store tree (may be nil).
func (r *Reporter) Tree() *conv.StoreTree { return r.tree }

// Definitions returns the current KPI definitions with the time each was
// first stored.
func (r *Reporter) Definitions() []Definition { return append([]Definition(nil), r.defs...) }

func (r *Reporter) storeDefinitions(ctx context.Context) error {
	for i, d := range r.defs {
		b, err := r.eng.HGet(ctx, DefsKey, d.Hash)
		if err == nil {
			var old Definition
			if json.Unmarshal(b, &old) == nil {
				r.defs[i].Since = old.Since
				continue
			}
		} else if !errors.Is(err, engine.ErrNotFound) {
			return fmt.Errorf("report: reading definitions: %w", err)
		}
		if r.readOnly {
			continue
		}
		d.Since = r.now().UTC().Truncate(time.Second)
		r.defs[i].Since = d.Since
		nb, _ := json.Marshal(d)
		if err := r.eng.HSet(ctx, DefsKey, map[string][]byte{d.Hash: nb}); err != nil {
			return fmt.Errorf("report: storing definitions: %w", err)
		}
	}
	return nil
}

// DefinitionHistory returns every definition ever stored, oldest first.
func (r *Reporter) DefinitionHistory(ctx context.Context) ([]Definition, error) {
	m, err := r.eng.HGetAll(ctx, DefsKey)
	if err != nil && !errors.Is(err, engine.ErrNotFound) {
		return nil, err
	}
	out := make([]Definition, 0, len(m))
	for _, b := range m {
		var d Definition
		if json.Unmarshal(b, &d) == nil {
			out = append(out, d)
		}
	}
	// A read-only reporter does not store its definitions; list them anyway.
	for _, d := range r.defs {
		if _, ok := m[d.Hash]; !ok {
			out = append(out, d)
		}
	}
	sortDefs(out)
	return out, nil
}

type meta struct {
	FP        string `json:"fp"`
	Watermark int64  `json:"wm"`
	Pruned    int64  `json:"pr"`
	Processed int64  `json:"n"`
}

// load replaces the in-memory fold with the persisted state.
func (r *Reporter) load(ctx context.Context) error {
	m, err := r.eng.HGetAll(ctx, StateKey)
	if err != nil && !errors.Is(err, engine.ErrNotFound) {
		return fmt.Errorf("report: loading state: %w", err)
	}
	f := newFold(r.cfg)
	var mt meta
	if b, ok := m[fieldMeta]; ok {
		_ = json.Unmarshal(b, &mt)
	}
	if len(m) > 0 && mt.FP != r.fp {
		r.log.Warn("KPI parameters changed: rebuilding the report from the retained event log", "old", mt.FP, "new", r.fp)
		r.needWipe = true
		r.mu.Lock()
		r.f = f
		r.gen++
		r.mu.Unlock()
		return nil
	}
	f.cursor = string(m[fieldCursor])
	f.watermark, f.pruned, f.processed = mt.Watermark, mt.Pruned, mt.Processed
	for k, v := range m {
		switch {
		case strings.HasPrefix(k, pfxBucket):
			key, ok := parseKey(k[len(pfxBucket):])
			if !ok {
				continue
			}
			c := &Counts{}
			if json.Unmarshal(v, c) == nil {
				f.buckets[key] = c
				f.days[key.Day] = append(f.days[key.Day], key)
			}
		case strings.HasPrefix(k, pfxContact):
			c := &contact{}
			if json.Unmarshal(v, c) == nil {
				f.contacts[c.ID] = c
				if !c.Ended {
					f.open[c.ID] = struct{}{}
				}
			}
		case strings.HasPrefix(k, pfxCase):
			cs := &caseState{}
			if json.Unmarshal(v, cs) == nil {
				f.cases[cs.ID] = cs
				if cs.Closed == 0 {
					f.openCases[cs.ID] = struct{}{}
				}
			}
		}
	}
	if b, ok := m[fieldPending]; ok {
		_ = json.Unmarshal(b, &f.pending)
		if f.pending == nil {
			f.pending = map[conv.CustomerID]int64{}
		}
	}
	// The customer index is derived: each customer's latest contact.
	for _, c := range f.contacts {
		if c.Customer == "" {
			continue
		}
		if p := f.contacts[f.last[c.Customer]]; p == nil || c.Start > p.Start || (c.Start == p.Start && c.ID > p.ID) {
			f.last[c.Customer] = c.ID
		}
	}
	f.clearDirty()
	r.mu.Lock()
	r.f = f
	r.gen++
	r.mu.Unlock()
	return nil
}

// lockTTL outlives a few missed refreshes, so a busy leader keeps the lease.
func (r *Reporter) lockTTL() time.Duration { return 3*r.cfg.RefreshInterval + 10*time.Second }

// acquire takes or renews the lease; a new leader reloads the persisted
// state first, because the previous leader may be ahead of this memory.
func (r *Reporter) acquire(ctx context.Context) (bool, error) {
	tok := []byte(r.token)
	if r.leader {
		ok, err := r.eng.CompareAndSwap(ctx, LockKey, tok, tok, r.lockTTL())
		if err != nil {
			return false, err
		}
		if ok {
			return true, nil
		}
		r.leader = false
		r.log.Info("report lease lost; following")
	}
	ok, err := r.eng.SetNX(ctx, LockKey, tok, r.lockTTL())
	if err != nil || !ok {
		return false, err
	}
	if err := r.load(ctx); err != nil {
		// Give the lease back even when ctx is what failed the load.
		_, _ = r.eng.CompareAndDelete(context.WithoutCancel(ctx), LockKey, tok)
		return false, err
	}
	r.needLoad = false
	r.leader = true
	r.log.Info("report lease taken; persisting aggregates")
	return true, nil
}

// release gives the lease up (on shutdown) so another instance takes over at once.
func (r *Reporter) release(ctx context.Context) {
	if r.leader {
		_, _ = r.eng.CompareAndDelete(ctx, LockKey, []byte(r.token))
		r.leader = false
		r.isLeader.Store(false)
	}
}

// Refresh folds every record after the cursor, page by page, persisting
// each page when this instance holds the lease. It returns the number of
// records folded.
func (r *Reporter) Refresh(ctx context.Context) (int, error) {
	r.refreshMu.Lock()
	defer r.refreshMu.Unlock()
	n, err := r.refresh(ctx)
	if err != nil {
		r.refreshErr.Add(1)
		return n, err
	}
	r.lastOK.Store(r.now().UnixMilli())
	return n, nil
}

func (r *Reporter) refresh(ctx context.Context) (int, error) {
	if r.needLoad {
		if err := r.load(ctx); err != nil {
			return 0, err
		}
		r.needLoad = false
	}
	leader := false
	if !r.readOnly {
		var err error
		leader, err = r.acquire(ctx)
		r.isLeader.Store(leader)
		if err != nil {
			return 0, fmt.Errorf("report: lease: %w", err)
		}
	}
	if leader && r.needWipe {
		if err := r.eng.Del(ctx, StateKey); err != nil {
			return 0, err
		}
		r.needWipe = false
	}
	total, pages, lastFlush := 0, 0, time.Now()
	for {
		r.mu.RLock()
		cursor := r.f.cursor
		r.mu.RUnlock()
		// One page, reused: the log is read back in full every refresh, and
		// copying each record out was half of the memory a refresh added.
		p := &r.page
		if err := engine.ReadLogPage(ctx, r.eng, r.name, cursor, r.cfg.PageSize, p); err != nil {
			return total, fmt.Errorf("report: reading the event log: %w", err)
		}
		n := p.Len()
		if n == 0 {
			if leader && pages > 0 {
				return total, r.flush(ctx)
			}
			return total, nil
		}
		r.mu.Lock()
		var ev conv.Event
		for i := range n {
			// One Event and its Data map are reused across records: the fold
			// keeps only the strings, never the map.
			data := ev.Data
			clear(data)
			ev = conv.Event{Data: data}
			if err := ev.DecodeJSON(p.Data(i)); err != nil {
				continue // a bad record must not stall the report (the cursor passes it)
			}
			r.f.applyAt(p.Millis(i), &ev)
		}
		r.f.cursor = p.ID(n - 1)
		r.f.sweep()
		r.gen++
		if !leader {
			r.f.clearDirty() // followers never write; nothing to remember
		}
		r.mu.Unlock()
		pages++
		total += n
		r.folded.Add(int64(n))
		more := n == r.cfg.PageSize
		// Catching up on a long log, write every catchUpPages pages (or
		// every catchUpFlush) instead of every page: contacts touched on many
		// pages are then encoded once. A crash costs re-reading at most that
		// much, never a double count, because each write carries its cursor.
		if leader && (!more || pages >= catchUpPages || time.Since(lastFlush) > catchUpFlush) {
			if err := r.flush(ctx); err != nil {
				return total, err
			}
			pages, lastFlush = 0, time.Now()
		}
		if !more {
			return total, nil
		}
	}
}

// Persisting cadence while catching up (see refresh).
const (
	catchUpPages = 10
	catchUpFlush = 2 * time.Second
)

// flush writes what changed since the last flush, with the cursor, in one
// HSet so that counters and cursor always move together.
func (r *Reporter) flush(ctx context.Context) error {
	// Renew the lease first: a long catch-up can outlast it, and a second
	// writer would count records twice.
	tok := []byte(r.token)
	ok, err := r.eng.CompareAndSwap(ctx, LockKey, tok, tok, r.lockTTL())
	if err != nil {
		// Unknown (engine down, ctx ended): keep the lease so that Run's
		// release still gives it back; the next refresh retries.
		return fmt.Errorf("report: persisting: %w", err)
	}
	if !ok {
		r.leader = false
		r.isLeader.Store(false)
		r.needLoad = true
		return fmt.Errorf("report: persisting: %w", errors.New("lease taken over"))
	}
	r.mu.Lock()
	fields, gone := r.f.encodeDirty(r.fp)
	r.f.clearDirty()
	r.mu.Unlock()
	if err := r.eng.HSet(ctx, StateKey, fields); err != nil {
		r.needLoad = true // memory is ahead of the store: start again from the store
		return fmt.Errorf("report: persisting: %w", err)
	}
	if len(gone) > 0 {
		_ = r.eng.HDel(ctx, StateKey, gone...)
	}
	return nil
}

// encodeDirty returns the hash fields changed since the last clearDirty,
// including cursor and meta, and the fields to delete.
func (f *fold) encodeDirty(fp string) (map[string][]byte, []string) {
	out := make(map[string][]byte, len(f.dirtyB)+len(f.dirtyC)+len(f.dirtyK)+2)
	var gone []string
	for k := range f.dirtyB {
		b, _ := json.Marshal(f.buckets[k])
		out[pfxBucket+k.field()] = b
	}
	for id := range f.dirtyC {
		if c := f.contacts[id]; c != nil {
			b, _ := json.Marshal(c)
			out[pfxContact+string(id)] = b
		} else {
			gone = append(gone, pfxContact+string(id))
		}
	}
	for id := range f.goneC {
		if f.contacts[id] == nil {
			gone = append(gone, pfxContact+string(id))
		}
	}
	for id := range f.dirtyK {
		if cs := f.cases[id]; cs != nil {
			b, _ := json.Marshal(cs)
			out[pfxCase+id] = b
		}
	}
	for k := range f.goneB {
		gone = append(gone, pfxBucket+k.field())
	}
	for id := range f.goneK {
		if f.cases[id] == nil {
			gone = append(gone, pfxCase+id)
		}
	}
	if f.dirtyP {
		b, _ := json.Marshal(f.pending)
		out[fieldPending] = b
	}
	out[fieldCursor] = []byte(f.cursor)
	mb, _ := json.Marshal(meta{FP: fp, Watermark: f.watermark, Pruned: f.pruned, Processed: f.processed})
	out[fieldMeta] = mb
	return out, gone
}

// Run refreshes every Config.RefreshInterval until ctx ends (a Service).
func (r *Reporter) Run(ctx context.Context) error {
	t := time.NewTicker(r.cfg.RefreshInterval)
	defer t.Stop()
	defer func() {
		rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		r.refreshMu.Lock()
		r.release(rctx)
		r.refreshMu.Unlock()
	}()
	for {
		if _, err := r.Refresh(ctx); err != nil && ctx.Err() == nil {
			r.log.Error("report refresh failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Cursor returns the ID of the last record folded ("" before the first).
func (r *Reporter) Cursor() string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.f.cursor
}

// Lag returns how many records wait after the cursor (counted up to
// limit) and the age of the oldest of them (0 when none).
func (r *Reporter) Lag(ctx context.Context, limit int) (int, time.Duration, error) {
	recs, err := r.eng.ReadLog(ctx, r.name, r.Cursor(), limit)
	if err != nil || len(recs) == 0 {
		return 0, 0, err
	}
	age := r.now().Sub(time.UnixMilli(idMillis(recs[0].ID)))
	return len(recs), max(age, 0), nil
}

func sortDefs(d []Definition) {
	for i := 1; i < len(d); i++ {
		for j := i; j > 0 && (d[j].Since.Before(d[j-1].Since) || d[j].Since.Equal(d[j-1].Since) && d[j].Name+strconv.Itoa(d[j].Version) < d[j-1].Name+strconv.Itoa(d[j-1].Version)); j-- {
			d[j], d[j-1] = d[j-1], d[j]
		}
	}
}
