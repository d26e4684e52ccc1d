package bot

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"kefu/conv"
	"kefu/engine"
	"kefu/internal/bufpool"
)

// Memory is what the bot remembers about one customer between messages.
type Memory struct {
	// Pending are the entry ids offered by the last clarify, in order.
	Pending []string `json:"pending,omitempty"`
	// PendingQuestion is the question that led to the clarify (for curation).
	PendingQuestion string `json:"pending_q,omitempty"`
	// Misses counts fallbacks in a row.
	Misses int `json:"misses,omitempty"`
	// RateEntry is the entry last answered, awaiting a 1/2 rating.
	RateEntry string `json:"rate,omitempty"`
	// RateQuestion is the question RateEntry answered.
	RateQuestion string `json:"rate_q,omitempty"`
}

// State stores per-customer Memory. Implementations must be shared by every
// gateway instance serving the same customers (see EngineState).
type State interface {
	// Load returns the customer's memory, the zero Memory when none.
	Load(ctx context.Context, c conv.CustomerID) (Memory, error)
	// Save stores memory for ttl; a zero Memory may delete the key.
	Save(ctx context.Context, c conv.CustomerID, m Memory, ttl time.Duration) error
}

// KeyedState is implemented by States kept in the shared engine: Keys
// names the engine keys Load reads for a customer (none when Load would
// not read the engine), so the gateway can read them ahead.
type KeyedState interface {
	Keys(c conv.CustomerID) []string
}

// engineState keeps Memory (see encodeMemory; JSON before) under "bot:mem:<customer>" with a TTL.
type engineState struct{ e engine.Engine }

// EngineState backs State with the shared engine (embedded or Redis), so a
// customer's pending choice survives a restart and is visible to every
// gateway instance. It also implements Journal on the engine's append-only
// log "bot:journal".
func EngineState(e engine.Engine) State { return engineState{e} }

func stateKey(c conv.CustomerID) string { return "bot:mem:" + string(c) }

// Keys implements KeyedState.
func (s engineState) Keys(c conv.CustomerID) []string { return []string{stateKey(c)} }

// Load implements State.
func (s engineState) Load(ctx context.Context, c conv.CustomerID) (Memory, error) {
	b, err := s.e.Get(ctx, stateKey(c))
	if errors.Is(err, engine.ErrNotFound) {
		return Memory{}, nil
	}
	if err != nil {
		return Memory{}, err
	}
	m, ok := decodeMemory(b)
	if !ok {
		// A corrupt value must not wedge the customer: start afresh.
		return Memory{}, nil
	}
	return m, nil
}

// Save implements State; a zero Memory deletes the key.
func (s engineState) Save(ctx context.Context, c conv.CustomerID, m Memory, ttl time.Duration) error {
	if m.isZero() {
		return s.e.Del(ctx, stateKey(c))
	}
	return s.e.Set(ctx, stateKey(c), encodeMemory(&m), ttl)
}

// Saved is one customer's memory for SaveMany.
type Saved struct {
	Customer conv.CustomerID
	Memory   Memory
	TTL      time.Duration
}

// SaveMany is Save for several customers in one engine write, for callers
// that batch (the app's write-behind buffer).
func (s engineState) SaveMany(ctx context.Context, items []Saved) error {
	ws := make([]engine.Write, 0, len(items))
	for _, it := range items {
		if it.Memory.isZero() {
			ws = append(ws, engine.Write{Key: stateKey(it.Customer), Del: true})
			continue
		}
		ws = append(ws, engine.Write{Key: stateKey(it.Customer), Val: encodeMemory(&it.Memory), TTL: it.TTL})
	}
	return s.e.SetMany(ctx, ws...)
}

// journalLog is the engine log holding the curation journal.
const journalLog = "bot:journal"

// Append implements Journal on the engine log.
func (s engineState) Append(ctx context.Context, r Record) error {
	b, err := marshalRecord(r)
	if err != nil {
		return err
	}
	_, err = s.e.Append(ctx, journalLog, b)
	return err
}

// AppendRecords appends rs in order in one engine write, for callers that
// batch journal writes (the app's write-behind buffer).
func (s engineState) AppendRecords(ctx context.Context, rs []Record) error {
	// The batch is encoded into one pooled buffer: the engine copies what
	// it appends, so the buffer is free again once AppendMany returns.
	bp := recordBufs.Get()
	buf := *bp
	ends := make([]int, 0, len(rs))
	for i := range rs {
		var err error
		if buf, err = rs[i].appendJSON(buf); err != nil {
			return err
		}
		ends = append(ends, len(buf))
	}
	data := make([][]byte, len(rs))
	start := 0
	for i, end := range ends {
		data[i], start = buf[start:end:end], end
	}
	_, err := s.e.AppendMany(ctx, journalLog, data...)
	recordBufs.Put(bp, buf)
	return err
}

// recordBufs holds the buffers journal batches are encoded in.
var recordBufs = bufpool.New(16<<10, 1<<20)

// Records implements Journal, reading the whole log in pages.
func (s engineState) Records(ctx context.Context) ([]Record, error) {
	var out []Record
	after := ""
	for {
		recs, err := s.e.ReadLog(ctx, journalLog, after, 1000)
		if err != nil {
			return nil, err
		}
		for _, rc := range recs {
			var r Record
			if json.Unmarshal(rc.Data, &r) == nil {
				out = append(out, r)
			}
			after = rc.ID
		}
		if len(recs) < 1000 {
			return out, nil
		}
	}
}

func (m Memory) isZero() bool {
	return len(m.Pending) == 0 && m.Misses == 0 && m.RateEntry == "" && m.PendingQuestion == ""
}

// MemoryState is a process-local State for tests and single-process tools.
type MemoryState struct {
	mu sync.Mutex
	m  map[conv.CustomerID]memItem
}

type memItem struct {
	m   Memory
	exp time.Time
}

// NewMemoryState returns an empty MemoryState.
func NewMemoryState() *MemoryState { return &MemoryState{m: map[conv.CustomerID]memItem{}} }

// Load implements State.
func (s *MemoryState) Load(_ context.Context, c conv.CustomerID) (Memory, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	it, ok := s.m[c]
	if !ok || time.Now().After(it.exp) {
		return Memory{}, nil
	}
	return it.m, nil
}

// Save implements State.
func (s *MemoryState) Save(_ context.Context, c conv.CustomerID, m Memory, ttl time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m.isZero() {
		delete(s.m, c)
		return nil
	}
	s.m[c] = memItem{m, time.Now().Add(ttl)}
	return nil
}
