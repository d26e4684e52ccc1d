package surveys

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"kefu/conv"
	"kefu/engine"
)

// Case states (PRODUCT.md §7): open → contacted → resolved → closed.
const (
	CaseOpen      = "open"
	CaseContacted = "contacted"
	CaseResolved  = "resolved"
	CaseClosed    = "closed"
)

// Case is a detractor's closed-loop case, owned by the store's manager.
type Case struct {
	ID           string          `json:"id"`
	SurveyID     string          `json:"survey_id"`
	Customer     conv.CustomerID `json:"customer"`
	Identity     string          `json:"identity,omitempty"`
	ExternalUser string          `json:"external_user,omitempty"`
	Conv         conv.ConvID     `json:"conv,omitempty"`
	Store        conv.StoreID    `json:"store"`
	Channel      string          `json:"channel"`
	Agent        string          `json:"agent,omitempty"`
	HandedOff    bool            `json:"handed_off"`
	Score        int             `json:"score"`
	Comment      string          `json:"comment,omitempty"`
	// PreferredTime is when the customer would like the call-back.
	PreferredTime string    `json:"preferred_time,omitempty"`
	Version       string    `json:"version"`
	State         string    `json:"state"`
	OpenedAt      time.Time `json:"opened_at"`
	Deadline      time.Time `json:"deadline"`
	ContactedAt   time.Time `json:"contacted_at,omitempty"`
	ResolvedAt    time.Time `json:"resolved_at,omitempty"`
	ClosedAt      time.Time `json:"closed_at,omitempty"`
	// Owner is the manager who claimed the case.
	Owner     string    `json:"owner,omitempty"`
	ClaimedAt time.Time `json:"claimed_at,omitempty"`
	RootCause string    `json:"root_cause,omitempty"`
	Outcome   string    `json:"outcome,omitempty"`
	// Escalation is how many levels up the store tree the case went.
	Escalation  int            `json:"escalation"`
	EscalatedTo []conv.StoreID `json:"escalated_to,omitempty"`
	AlertedAt   time.Time      `json:"alerted_at,omitempty"`
	// ReSurveyID, RecoveryScore and Recovered track the re-survey.
	ReSurveyID    string      `json:"re_survey_id,omitempty"`
	RecoveryScore *int        `json:"recovery_score,omitempty"`
	Recovered     bool        `json:"recovered"`
	History       []CaseEvent `json:"history"`
}

// CaseEvent is one line of a case's history.
type CaseEvent struct {
	At     time.Time `json:"at"`
	Actor  string    `json:"actor"`
	Action string    `json:"action"`
	Note   string    `json:"note,omitempty"`
}

// Overdue reports whether the case passed its deadline unresolved.
func (c Case) Overdue(now time.Time) bool {
	return (c.State == CaseOpen || c.State == CaseContacted) && now.After(c.Deadline)
}

func caseIDOf(surveyID string) string { return "c" + strings.TrimPrefix(surveyID, "s") }

// LoadCase returns a case by id.
func (s *Service) LoadCase(ctx context.Context, id string) (Case, error) {
	var c Case
	_, err := getJSON(ctx, s.eng, keyCase+id, &c)
	if errors.Is(err, engine.ErrNotFound) {
		return c, fmt.Errorf("case %s: %w", id, conv.ErrNotFound)
	}
	return c, err
}

func (s *Service) updateCase(ctx context.Context, id string, fn func(c *Case) error) (Case, error) {
	return updateJSON(ctx, s.eng, keyCase+id, recordTTL, func(c *Case, created bool) error {
		if created {
			return fmt.Errorf("case %s: %w", id, conv.ErrNotFound)
		}
		return fn(c)
	})
}

// OnDetractor opens the case of a detractor's answer (idempotent per
// survey), arms its alert, reminders and escalation, and tells
// Options.OnDetractor. It is called from Route within the answer's
// processing, so the case exists seconds after the customer's reply.
func (s *Service) OnDetractor(ctx context.Context, sv Survey) (Case, error) {
	now := s.now()
	id := caseIDOf(sv.ID)
	ce := sv.Contact
	store := sv.Attribution.Store
	if store == "" {
		store = ce.Store
	}
	c := Case{ID: id, SurveyID: sv.ID, Customer: ce.Customer, Identity: sv.Identity, ExternalUser: ce.ExternalUser, Conv: ce.Conv,
		Store: store, Channel: ce.Channel, Agent: ce.Agent, HandedOff: ce.HandedOff, Score: *sv.Score, Comment: sv.Comment,
		Version: sv.Version, State: CaseOpen, OpenedAt: now, Deadline: now.Add(s.cfg.Cases.Deadline),
		History: []CaseEvent{{At: now, Actor: "system", Action: "opened", Note: "score " + strconv.Itoa(*sv.Score)}}}
	b, err := json.Marshal(c)
	if err != nil {
		return c, err
	}
	created, err := s.eng.CompareAndSwap(ctx, keyCase+id, nil, b, recordTTL)
	if err != nil {
		return c, err
	}
	if !created {
		return s.LoadCase(ctx, id)
	}
	// The identity's open case blocks new surveys until resolved.
	if err := s.eng.Set(ctx, keyCaseOpen+sv.Identity, []byte(id), recordTTL); err != nil {
		return c, err
	}
	// One index for HQ, one per store so a manager's page reads only theirs.
	for _, key := range []string{keyCases, keyCases + ":" + string(c.Store)} {
		if err := s.eng.ZAdd(ctx, key, engine.ZItem{Member: id, Score: float64(now.UnixMilli())}); err != nil {
			return c, err
		}
	}
	// A bare score waits briefly for the reason so the alert carries it.
	due := now
	if c.Comment == "" {
		due = now.Add(s.cfg.Alerts.Hold)
	}
	if err := s.enqueue(ctx, "alert:"+id, due, nil); err != nil {
		return c, err
	}
	for i, before := range s.cfg.Cases.Reminders {
		if err := s.enqueue(ctx, fmt.Sprintf("rem:%s:%d", id, i), c.Deadline.Add(-before), nil); err != nil {
			return c, err
		}
	}
	if err := s.enqueue(ctx, "esc:"+id+":1", c.Deadline, nil); err != nil {
		return c, err
	}
	s.emit(conv.Event{Type: conv.EvCaseOpened, Conv: c.Conv, Customer: c.Customer, Store: c.Store, Channel: c.Channel, Agent: c.Agent,
		Data: map[string]string{"case": id, "survey": sv.ID, "score": strconv.Itoa(c.Score), "deadline": c.Deadline.UTC().Format(time.RFC3339)}})
	s.log.Info("detractor case opened", "case", id, "store", c.Store, "score", c.Score)
	if s.opts.OnDetractor != nil {
		s.opts.OnDetractor(ctx, c)
	}
	return c, nil
}

// caseComment adds the customer's reason to the case: an alert still on
// hold goes out now with it, one already sent is followed by an update.
func (s *Service) caseComment(ctx context.Context, sv Survey) {
	id := caseIDOf(sv.ID)
	c, err := s.updateCase(ctx, id, func(c *Case) error {
		c.Comment = sv.Comment
		c.History = append(c.History, CaseEvent{At: s.now(), Actor: "customer", Action: "comment", Note: sv.Comment})
		return nil
	})
	if err != nil {
		s.log.Warn("cannot add comment to case", "case", id, "err", err)
		return
	}
	if c.AlertedAt.IsZero() {
		_ = s.enqueue(ctx, "alert:"+id, s.now(), nil)
		return
	}
	if err := s.alert(ctx, c, "comment", c.Store, false); err != nil {
		s.log.Warn("cannot send comment update", "case", id, "err", err)
	}
}

// casePreferredTime adds the customer's call-back time to the case; when
// the alert already went out, the managers get a short update.
func (s *Service) casePreferredTime(ctx context.Context, sv Survey) {
	if sv.Score == nil || *sv.Score > s.cfg.DetractorMax || sv.Kind != KindNPS {
		return
	}
	id := caseIDOf(sv.ID)
	c, err := s.updateCase(ctx, id, func(c *Case) error {
		c.PreferredTime = sv.PreferredTime
		c.History = append(c.History, CaseEvent{At: s.now(), Actor: "customer", Action: "preferred_time", Note: sv.PreferredTime})
		return nil
	})
	if err != nil {
		s.log.Warn("cannot add call-back time to case", "case", id, "err", err)
		return
	}
	if c.AlertedAt.IsZero() {
		_ = s.enqueue(ctx, "alert:"+id, s.now(), nil)
		return
	}
	if err := s.alert(ctx, c, "when", c.Store, false); err != nil {
		s.log.Warn("cannot send call-back time update", "case", id, "err", err)
	}
}

// noteCase appends a history line (alert failures, webhook give-ups).
func (s *Service) noteCase(ctx context.Context, id, actor, action, note string) {
	_, err := s.updateCase(ctx, id, func(c *Case) error {
		c.History = append(c.History, CaseEvent{At: s.now(), Actor: actor, Action: action, Note: note})
		return nil
	})
	if err != nil {
		s.log.Warn("cannot note case", "case", id, "action", action, "err", err)
	}
}

// CaseUpdate is a manager's change to a case.
type CaseUpdate struct {
	// Action is "claim", "contacted", "resolved" or "close".
	Action string `json:"action"`
	Note   string `json:"note,omitempty"`
	// RootCause and Outcome are required to close.
	RootCause string `json:"root_cause,omitempty"`
	Outcome   string `json:"outcome,omitempty"`
}

// EvCaseResolved reports a case resolved by its manager (conv has opened,
// contacted, escalated and closed, not resolved).
const EvCaseResolved conv.EventType = "case_resolved"

// Case transition errors.
var (
	ErrCaseState     = fmt.Errorf("%w: the case is not in a state that allows this", conv.ErrConflict)
	ErrNeedRootCause = fmt.Errorf("%w: closing a case needs a root cause from the configured list and the callback outcome", conv.ErrBadInput)
)

// UpdateCase applies a manager's action. actor is the manager's login.
func (s *Service) UpdateCase(ctx context.Context, id, actor string, u CaseUpdate) (Case, error) {
	now := s.now()
	if u.Action == "close" && (!slices.Contains(s.cfg.Cases.RootCauses, u.RootCause) || !slices.Contains(s.cfg.Cases.Outcomes, u.Outcome)) {
		return Case{}, ErrNeedRootCause
	}
	var evType conv.EventType
	c, err := s.updateCase(ctx, id, func(c *Case) error {
		evType = ""
		switch u.Action {
		case "claim":
			if c.State == CaseClosed {
				return ErrCaseState
			}
			if c.Owner == actor {
				return errNoChange
			}
			c.Owner, c.ClaimedAt = actor, now
		case "contacted":
			if c.State != CaseOpen {
				return ErrCaseState
			}
			c.State, c.ContactedAt, evType = CaseContacted, now, conv.EvCaseContacted
			if c.Owner == "" {
				c.Owner, c.ClaimedAt = actor, now
			}
		case "resolved":
			if c.State != CaseOpen && c.State != CaseContacted {
				return ErrCaseState
			}
			c.State, c.ResolvedAt, evType = CaseResolved, now, EvCaseResolved
			if c.ContactedAt.IsZero() {
				c.ContactedAt = now
			}
		case "close":
			if c.State == CaseClosed {
				return ErrCaseState
			}
			if c.ResolvedAt.IsZero() {
				c.ResolvedAt = now
			}
			c.State, c.ClosedAt, c.RootCause, c.Outcome, evType = CaseClosed, now, u.RootCause, u.Outcome, conv.EvCaseClosed
		default:
			return fmt.Errorf("%w: unknown case action %q", conv.ErrBadInput, u.Action)
		}
		note := u.Note
		if u.Action == "close" {
			note = strings.TrimSpace(u.RootCause + " / " + u.Outcome + " " + u.Note)
		}
		c.History = append(c.History, CaseEvent{At: now, Actor: actor, Action: u.Action, Note: note})
		return nil
	})
	if errors.Is(err, errNoChange) {
		return s.LoadCase(ctx, id)
	}
	if err != nil {
		return c, err
	}
	if c.State == CaseResolved || c.State == CaseClosed {
		// No longer open: surveys may reach this customer again.
		_, _ = s.eng.CompareAndDelete(ctx, keyCaseOpen+c.Identity, []byte(c.ID))
		if s.cfg.Cases.ReSurvey && c.ReSurveyID == "" {
			s.planReSurvey(ctx, c)
		}
	}
	if evType != "" {
		data := map[string]string{"case": c.ID, "state": c.State}
		if evType == conv.EvCaseClosed || evType == EvCaseResolved {
			data["root_cause"], data["outcome"] = c.RootCause, c.Outcome
			data["within_deadline"] = strconv.FormatBool(!c.ResolvedAt.After(c.Deadline))
		}
		s.emit(conv.Event{Type: evType, Conv: c.Conv, Customer: c.Customer, Store: c.Store, Channel: c.Channel, Agent: c.Agent, Actor: actor, Data: data})
	}
	return c, nil
}

// planReSurvey asks the recovered customer again (outside the throttle,
// never past an opt-out) and links the survey to the case.
func (s *Service) planReSurvey(ctx context.Context, c Case) {
	sv, err := s.loadSurvey(ctx, c.SurveyID)
	if err != nil {
		return
	}
	if err := s.schedule(ctx, sv.Contact, KindReSurvey, c.ID); err != nil {
		s.log.Warn("cannot plan re-survey", "case", c.ID, "err", err)
		return
	}
	_, _ = s.updateCase(ctx, c.ID, func(cc *Case) error { cc.ReSurveyID = "r" + c.ID; return nil })
}

// recordRecovery stores a re-survey's score on its case; above the
// detractor threshold the detractor counts as recovered.
func (s *Service) recordRecovery(ctx context.Context, sv Survey, score int) error {
	_, err := s.updateCase(ctx, sv.CaseID, func(c *Case) error {
		c.RecoveryScore = &score
		c.Recovered = score > s.cfg.DetractorMax
		c.History = append(c.History, CaseEvent{At: s.now(), Actor: "customer", Action: "re_survey", Note: strconv.Itoa(score)})
		return nil
	})
	return err
}

// reminderDue reminds the store's managers of a case nearing its deadline.
func (s *Service) reminderDue(ctx context.Context, j engine.Job) error {
	parts := strings.Split(j.ID, ":") // rem:<case>:<i>
	if len(parts) != 3 {
		return nil
	}
	c, err := s.LoadCase(ctx, parts[1])
	if errors.Is(err, conv.ErrNotFound) {
		return nil
	}
	if err != nil || (c.State != CaseOpen && c.State != CaseContacted) {
		return err
	}
	return s.alert(ctx, c, "rem"+parts[2], c.Store, false)
}

// escalateDue moves an overdue case one level up the store tree (region,
// then HQ) and re-arms itself for the next level one deadline later.
func (s *Service) escalateDue(ctx context.Context, j engine.Job) error {
	parts := strings.Split(j.ID, ":") // esc:<case>:<level>
	if len(parts) != 3 {
		return nil
	}
	level, _ := strconv.Atoi(parts[2])
	c, err := s.LoadCase(ctx, parts[1])
	if errors.Is(err, conv.ErrNotFound) {
		return nil
	}
	if err != nil || (c.State != CaseOpen && c.State != CaseContacted) {
		return err
	}
	ancestors := s.tree.Ancestors(c.Store)
	// Skip levels without managers: someone above must hear of it.
	target := conv.StoreID("")
	for i := level - 1; i < len(ancestors); i++ {
		if n, ok := s.tree.Node(ancestors[i]); ok && len(n.Managers) > 0 {
			target, level = ancestors[i], i+1
			break
		}
	}
	if target == "" {
		return nil // already at the top
	}
	now := s.now()
	c, err = s.updateCase(ctx, c.ID, func(cc *Case) error {
		if cc.Escalation >= level {
			return errNoChange
		}
		cc.Escalation = level
		cc.EscalatedTo = append(cc.EscalatedTo, target)
		cc.History = append(cc.History, CaseEvent{At: now, Actor: "system", Action: "escalated", Note: string(target)})
		return nil
	})
	if errors.Is(err, errNoChange) {
		return nil
	}
	if err != nil {
		return err
	}
	s.emit(conv.Event{Type: conv.EvCaseEscalated, Conv: c.Conv, Customer: c.Customer, Store: c.Store, Channel: c.Channel, Agent: c.Agent,
		Data: map[string]string{"case": c.ID, "to": string(target), "level": strconv.Itoa(level)}})
	if err := s.alert(ctx, c, "esc"+strconv.Itoa(level), target, true); err != nil {
		return err
	}
	if level < len(ancestors) {
		return s.enqueue(ctx, fmt.Sprintf("esc:%s:%d", c.ID, level+1), now.Add(s.cfg.Cases.Deadline), nil)
	}
	return nil
}

// CaseFilter selects cases.
type CaseFilter struct {
	// States keeps cases in these states (empty: all).
	States []string
	// Visible keeps cases whose store passes (nil: all).
	Visible func(conv.StoreID) bool
	// Stores, when set, reads only these stores' case indexes (a manager's
	// page); Visible still applies.
	Stores []conv.StoreID
	// Limit caps the result (0: 500).
	Limit int
}

// Cases lists cases, newest first.
func (s *Service) Cases(ctx context.Context, f CaseFilter) ([]Case, error) {
	keys := []string{keyCases}
	if len(f.Stores) > 0 {
		keys = keys[:0]
		for _, st := range f.Stores {
			if k := keyCases + ":" + string(st); !slices.Contains(keys, k) {
				keys = append(keys, k)
			}
		}
	}
	var items []engine.ZItem
	for _, key := range keys {
		its, err := s.eng.ZRangeByScore(ctx, key, 0, 1e18, 0)
		if err != nil && !errors.Is(err, engine.ErrNotFound) {
			return nil, err
		}
		items = append(items, its...)
	}
	sort.Slice(items, func(i, j int) bool { return items[i].Score < items[j].Score })
	if f.Limit <= 0 {
		f.Limit = 500
	}
	var out []Case
	for i := len(items) - 1; i >= 0 && len(out) < f.Limit; i-- {
		c, err := s.LoadCase(ctx, items[i].Member)
		if errors.Is(err, conv.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if len(f.States) > 0 && !slices.Contains(f.States, c.State) {
			continue
		}
		if f.Visible != nil && !f.Visible(c.Store) {
			continue
		}
		out = append(out, c)
	}
	return out, nil
}
