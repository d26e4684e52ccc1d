package handoff

import (
	"context"
	"crypto/rand"
	"errors"
	"maps"
	"math"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"kefu/conv"
	"kefu/engine"
)

// serves reports whether agent a may take conversation c: store scope
// (a region covers its stores; no stores = all) and skill.
func (s *Service) serves(a conv.AgentProfile, c *conv.Conversation) bool {
	if c.Skill != "" && !slices.Contains(a.Skills, c.Skill) {
		return false
	}
	if len(a.Stores) == 0 {
		return true
	}
	for _, st := range a.Stores {
		if st == c.Store || (s.tree != nil && s.tree.Within(c.Store, st)) {
			return true
		}
	}
	return false
}

// candidates orders the agents who can take c now: online, in scope, below
// their cap; least busy first, then the one assigned longest ago (round
// robin among equals). Agents who let c's offer time out come last.
func (s *Service) candidates(c *conv.Conversation, agents map[string]agentState) []string {
	var out []string
	for _, name := range s.names {
		a := agents[name]
		p := s.roster[name]
		if a.Status != conv.AgentOnline || len(a.Chats) >= p.MaxChats || !s.serves(p, c) {
			continue
		}
		out = append(out, name)
	}
	sort.SliceStable(out, func(i, j int) bool {
		di, dj := slices.Contains(c.Declined, out[i]), slices.Contains(c.Declined, out[j])
		if di != dj {
			return !di
		}
		ai, aj := agents[out[i]], agents[out[j]]
		if len(ai.Chats) != len(aj.Chats) {
			return len(ai.Chats) < len(aj.Chats)
		}
		return ai.LastAssigned < aj.LastAssigned
	})
	return out
}

// Dispatch assigns queued conversations to agents and returns how many it
// assigned. One instance at a time dispatches (a lease lock in the engine)
// to avoid wasted optimistic retries; correctness does not depend on the
// lock: every assignment is one engine.Update over the conversation and
// the agent that re-checks state and cap, so a chat is never assigned twice
// and a cap never exceeded even if two dispatchers overlap.
func (s *Service) Dispatch(ctx context.Context) (int, error) {
	tok := make([]byte, 8)
	_, _ = rand.Read(tok)
	ok, err := s.eng.SetNX(ctx, lockKey, tok, lockTTL)
	if err != nil {
		return 0, err
	}
	if !ok {
		// Someone is dispatching: tell them to make another pass.
		_, err := s.eng.IncrBy(ctx, genKey, 1, 0)
		return 0, err
	}
	defer func() { _, _ = s.eng.CompareAndDelete(context.WithoutCancel(ctx), lockKey, tok) }()
	total := 0
	for pass := 0; pass < 20; pass++ {
		before, _ := s.eng.Get(ctx, genKey)
		n, retry, err := s.dispatchOnce(ctx)
		total += n
		if err != nil {
			return total, err
		}
		after, _ := s.eng.Get(ctx, genKey)
		if string(before) == string(after) && (!retry || n == 0) {
			break
		}
	}
	return total, nil
}

// dispatchParallel bounds concurrent assignment Updates of one pass.
// Assignments of one pass touch distinct conversations and mostly
// distinct agents, so they rarely conflict; running them concurrently
// hides the engine's round trips.
const dispatchParallel = 8

// dispatchOnce plans one pass on a snapshot (oldest first across queues,
// FIFO within each, least busy / round robin per conversation, simulated
// loads so the plan itself never exceeds a cap), then executes the plan
// concurrently. Every execution re-checks state and cap in its Update;
// retry reports plans that lost a race, so Dispatch makes another pass.
func (s *Service) dispatchOnce(ctx context.Context) (n int, retry bool, err error) {
	queues, err := s.eng.ZRangeByScore(ctx, queuesKey, math.Inf(-1), math.Inf(1), 0)
	if err != nil {
		return 0, false, err
	}
	loaded, err := s.loadAgents(ctx)
	if err != nil {
		return 0, false, err
	}
	agents := maps.Clone(loaded) // the plan simulates loads; the snapshot stays as read
	// Oldest first across all queues, FIFO within each: an agent serving
	// several stores takes the customer who has waited longest.
	type entry struct {
		queue string
		item  engine.ZItem
	}
	var all []entry
	for _, q := range queues {
		items, err := s.eng.ZRangeByScore(ctx, q.Member, math.Inf(-1), math.Inf(1), 200)
		if err != nil {
			return 0, false, err
		}
		for _, it := range items {
			all = append(all, entry{q.Member, it})
		}
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].item.Score < all[j].item.Score })
	type step struct {
		c     conv.Conversation
		agent string
	}
	ids := make([]conv.ConvID, len(all))
	for i, e := range all {
		ids[i] = conv.ConvID(e.item.Member)
	}
	convs := s.loadConvs(ctx, ids)
	var plan []step
	blocked := map[string]bool{}
	tick := s.now().UnixNano()
	for i, e := range all {
		if blocked[e.queue] {
			continue
		}
		c, err := convs[i].c, convs[i].err
		if errors.Is(err, conv.ErrNotFound) {
			_, _ = s.eng.ZRem(ctx, e.queue, e.item.Member)
			continue
		}
		if err != nil {
			return 0, false, err
		}
		if c.State != conv.StateQueued {
			// An index entry left behind by a crash between steps.
			if c.State != conv.StateBot || s.now().Sub(c.QueuedAt) > staleGrace {
				_, _ = s.eng.ZRem(ctx, e.queue, e.item.Member)
			}
			continue
		}
		cands := s.candidates(&c, agents)
		if len(cands) == 0 {
			blocked[e.queue] = true // FIFO: nobody can take this queue's head now
			continue
		}
		a := agents[cands[0]]
		a.Chats = append(slices.Clone(a.Chats), c.ID)
		tick++
		a.LastAssigned = tick
		agents[cands[0]] = a
		plan = append(plan, step{c, cands[0]})
	}
	var mu sync.Mutex
	var firstErr error
	sem := make(chan struct{}, dispatchParallel)
	var wg sync.WaitGroup
	for _, st := range plan {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			_, err := s.assign(ctx, st.c.ID, st.c.Version, st.agent, "dispatch", modeDispatch)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				n++
			case errors.Is(err, errBusy), errors.Is(err, errStale):
				retry = true
			case firstErr == nil:
				firstErr = err
			}
		}()
	}
	wg.Wait()
	return n, retry, firstErr
}

// agentsSnapshot is a recent read of every agent, for estimates only.
type agentsSnapshot struct {
	at     time.Time
	agents map[string]agentState
}

// snapshotMaxAge bounds how stale the agents used for a wait estimate may be.
const snapshotMaxAge = time.Second

// recentAgents returns agent records at most snapshotMaxAge old: the
// expected wait told to a customer does not need a fresh read of every
// agent on every handoff.
func (s *Service) recentAgents(ctx context.Context) map[string]agentState {
	if snap := s.snapshot.Load(); snap != nil && time.Since(snap.at) < snapshotMaxAge {
		return snap.agents
	}
	all, _ := s.loadAgents(ctx)
	return all
}

// loadAgents reads every roster agent's record, concurrently (one round
// trip of latency instead of one per agent), and refreshes the snapshot.
func (s *Service) loadAgents(ctx context.Context) (map[string]agentState, error) {
	out := make(map[string]agentState, len(s.names))
	var mu sync.Mutex
	var firstErr error
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for _, name := range s.names {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			a, err := s.agent(ctx, name)
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstErr == nil {
				firstErr = err
			}
			out[name] = a
		}()
	}
	wg.Wait()
	if firstErr == nil {
		s.snapshot.Store(&agentsSnapshot{at: time.Now(), agents: out})
	}
	return out, firstErr
}

// assignMode says who assigns: the dispatcher needs an online agent, a
// supervisor any agent not offline, a take-over nothing but the cap.
type assignMode int

const (
	modeDispatch assignMode = iota
	modeSupervisor
	modeTakeOver
)

// assign gives conversation id (at version; 0 = any) to agent name in one
// Update over both records, re-checking state, status and cap inside it.
func (s *Service) assign(ctx context.Context, id conv.ConvID, version int64, name, actor string, mode assignMode) (agentState, error) {
	accepted := mode == modeTakeOver
	p, ok := s.roster[name]
	if !ok {
		return agentState{}, errBusy
	}
	now := s.now()
	var c conv.Conversation
	var a agentState
	if !accepted && version != 0 {
		// Scheduled before the assignment with the version it will have, so
		// a crash right after assigning cannot leave an offer nobody
		// accepts; if the assignment fails the timer finds another version
		// and does nothing.
		s.schedule(ctx, tAcceptTimeout, &conv.Conversation{ID: id, Version: version + 1}, now.Add(s.cfg.AcceptTimeout))
	}
	err := s.eng.Update(ctx, []string{convKey(id), agentKey(name)}, func(tx engine.Tx) error {
		cur, ok, err := getJSON[conv.Conversation](tx, convKey(id))
		if err != nil {
			return err
		}
		if !ok || cur.State != conv.StateQueued || (version != 0 && cur.Version != version) {
			return errStale
		}
		a, err = readAgent(tx, name)
		if err != nil {
			return err
		}
		if len(a.Chats) >= p.MaxChats || (mode == modeDispatch && a.Status != conv.AgentOnline) ||
			(mode == modeSupervisor && a.Status == conv.AgentOffline) {
			return errBusy
		}
		c = cur
		c.State, c.Agent, c.Accepted, c.AssignedAt = conv.StateAssigned, name, accepted, now
		if accepted {
			c.AcceptedAt = now
		}
		c.Version++
		a.Chats = append(a.Chats, id)
		a.LastAssigned = now.UnixNano()
		setJSON(tx, convKey(id), c, 0)
		setJSON(tx, agentKey(name), a, 0)
		return nil
	})
	if err != nil {
		return a, err
	}
	_, _ = s.eng.ZRem(ctx, queueKey(c.Store, c.Skill), string(id))
	_ = s.eng.ZAdd(ctx, liveKey, engine.ZItem{Member: string(id), Score: float64(now.UnixMilli())})
	s.cancel(ctx, []string{tQueueTimeout}, id)
	if !accepted && version == 0 {
		s.schedule(ctx, tAcceptTimeout, &c, now.Add(s.cfg.AcceptTimeout))
	}
	s.convEvent(conv.EvAssigned, &c, actor, "", "wait_ms", strconv.FormatInt(now.Sub(c.QueuedAt).Milliseconds(), 10))
	s.publishConv(ctx, &c)
	return a, nil
}
