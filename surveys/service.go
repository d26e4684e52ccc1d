package surveys

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"kefu/conv"
	"kefu/engine"
)

// Sender delivers outbound messages durably and idempotently by ID; the
// gateway's *gateway.Sender implements it.
type Sender interface {
	Send(ctx context.Context, out conv.Outbound) error
}

// QuotaChecker is optionally implemented by a Sender that keeps the
// per-customer window/quota book (*gateway.Sender does). With it a survey
// that would exceed the 5-per-48 h quota is not sent and says why.
type QuotaChecker interface {
	Quota(ctx context.Context, channel, user string, lastMsg time.Time) (remaining int, until time.Time, err error)
}

// Options are the collaborators of a Service. Only Sender is required.
type Options struct {
	// Emit receives domain events (the app appends them to the event log).
	Emit func(conv.Event)
	// Now is the clock (default time.Now).
	Now    func() time.Time
	Logger *slog.Logger
	// Identity maps a channel-scoped customer to the brand-wide identity
	// the throttle, opt-out and open-case rules are keyed by (e.g. a
	// unionid lookup). Default: the customer id itself.
	Identity func(conv.CustomerID) string
	// HasOpenCase reports complaint cases kept elsewhere (handoff work
	// orders); surveys' own detractor cases are always checked.
	HasOpenCase func(ctx context.Context, c conv.CustomerID) (bool, error)
	// KFServiceState reads a KF session's state (wire
	// gateway.Gateway.KFServiceState). With it, a KF survey whose
	// end-of-session code cannot be used (expired, quiet hours) falls back
	// to send_msg when the session allows API sending (state 0 or 1).
	KFServiceState func(ctx context.Context, channel, openKfID, externalUser string) (state int, servicer string, err error)
	// OnDetractor is told about every case opened for a detractor, after
	// it is stored (the app may wire handoff or console notifications).
	OnDetractor func(ctx context.Context, c Case)
	// HTTPClient posts generic webhooks (default: 5 s timeout).
	HTTPClient *http.Client
	// Registry, when set, gets kefu_survey_events_total{type,reason} and
	// kefu_survey_timers (pending durable timers).
	Registry prometheus.Registerer
}

// Service runs NPS surveys and the detractor loop. All methods are safe
// for concurrent use and across instances sharing one engine.
type Service struct {
	cfg    Config
	eng    engine.Engine
	sender Sender
	opts   Options
	tree   *conv.StoreTree
	loc    *time.Location
	log    *slog.Logger
	wake   chan struct{}
	http   *http.Client

	digestMu   sync.Mutex
	digestDone map[string]bool // job ids this instance already enqueued

	events *prometheus.CounterVec

	respMu sync.Mutex
	resp   []Response // folded survey log, refreshed after responsesTTL
	respAt time.Time
}

// New builds a Service. cfg is validated.
func New(cfg Config, eng engine.Engine, sender Sender, opts Options) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if eng == nil || sender == nil {
		return nil, fmt.Errorf("%w: surveys need an engine and a sender", conv.ErrBadInput)
	}
	tree, err := conv.NewStoreTree(cfg.Stores)
	if err != nil {
		return nil, err
	}
	loc, _ := time.LoadLocation(cfg.Timezone)
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Identity == nil {
		opts.Identity = func(c conv.CustomerID) string { return string(c) }
	}
	if opts.Emit == nil {
		opts.Emit = func(conv.Event) {}
	}
	hc := opts.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 5 * time.Second}
	}
	s := &Service{cfg: cfg, eng: eng, sender: sender, opts: opts, tree: tree, loc: loc, http: hc,
		log: opts.Logger.With("component", "surveys"), wake: make(chan struct{}, 1), digestDone: map[string]bool{},
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kefu_survey_events_total",
			Help: "Survey and case events by type and reason code (survey_not_sent, survey_unanswered)."}, []string{"type", "reason"})}
	if opts.Registry != nil {
		timers := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "kefu_survey_timers", Help: "Pending durable survey timers (sends, expiries, alerts, escalations)."},
			func() float64 {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				n, _ := eng.QueueLen(ctx, queueTimers)
				return float64(n)
			})
		for _, c := range []prometheus.Collector{s.events, timers} {
			if err := opts.Registry.Register(c); err != nil {
				return nil, fmt.Errorf("surveys metrics: %w", err)
			}
		}
	}
	return s, nil
}

// Tree returns the store tree the service was configured with.
func (s *Service) Tree() *conv.StoreTree { return s.tree }

func (s *Service) now() time.Time { return s.opts.Now() }

func (s *Service) emit(ev conv.Event) {
	if ev.At.IsZero() {
		ev.At = s.now()
	}
	reason := ev.Reason
	if code, ok := strings.CutPrefix(reason, "send_failed:"); ok && len(code) > 12 {
		reason = "send_failed:other" // keep label values bounded
	}
	s.events.WithLabelValues(string(ev.Type), reason).Inc()
	s.opts.Emit(ev)
}

func (s *Service) nudge() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// enqueue arms a durable timer.
func (s *Service) enqueue(ctx context.Context, id string, due time.Time, data any) error {
	var b []byte
	if data != nil {
		var err error
		if b, err = json.Marshal(data); err != nil {
			return err
		}
	}
	if err := s.eng.Enqueue(ctx, queueTimers, engine.Job{ID: id, Data: b, Due: due}); err != nil {
		return err
	}
	if !due.After(s.now()) {
		s.nudge()
	}
	return nil
}

// Schedule plans the survey of a finished contact (wire it to handoff's
// close/abandon hook). It is idempotent per contact: calling it twice, or
// from two instances, schedules one survey. Governance is applied when the
// survey is due, so a rule that changes meanwhile (an opt-out, a case) wins.
func (s *Service) Schedule(ctx context.Context, ce conv.ContactEnded) error {
	return s.schedule(ctx, ce, KindNPS, "")
}

func (s *Service) schedule(ctx context.Context, ce conv.ContactEnded, kind, caseID string) error {
	if ce.Customer == "" || ce.Channel == "" || ce.ExternalUser == "" || !ce.ChannelType.Valid() {
		return fmt.Errorf("%w: a contact needs customer, channel, channel_type and external_user to be surveyed", conv.ErrBadInput)
	}
	now := s.now()
	sv := Survey{ID: surveyID(ce), Kind: kind, CaseID: caseID, State: StateScheduled, Version: s.cfg.Question.Version,
		Identity: s.opts.Identity(ce.Customer), Contact: ce, ScheduledAt: now}
	if kind == KindReSurvey {
		sv.ID = "r" + caseID
	}
	ev := conv.Event{Conv: ce.Conv, Customer: ce.Customer, Store: ce.Store, Channel: ce.Channel, Agent: ce.Agent,
		Data: map[string]string{"survey": sv.ID, "kind": kind, "outcome": ce.Outcome}}
	if !s.cfg.Enabled {
		ev.Type, ev.Reason = conv.EvSurveyNotSent, "disabled"
		s.emit(ev)
		return nil
	}
	b, _ := json.Marshal(sv)
	created, err := s.eng.CompareAndSwap(ctx, keySurvey+sv.ID, nil, b, recordTTL)
	if err != nil || !created {
		return err // !created: already scheduled by an earlier call
	}
	due := ce.EndedAt.Add(s.cfg.Delay)
	switch {
	case kind == KindReSurvey:
		due = now.Add(s.cfg.Cases.ReSurveyDelay)
	case s.kfCodeUsable(sv):
		// The end-of-session code lives 20 s: no delay can apply.
		due = now
	case ce.EndedAt.IsZero():
		due = now.Add(s.cfg.Delay)
	}
	if err := s.enqueue(ctx, "send:"+sv.ID, due, nil); err != nil {
		return err
	}
	ev.Type = conv.EvSurveyScheduled
	ev.Data["due"] = due.UTC().Format(time.RFC3339)
	s.emit(ev)
	return nil
}

// kfCodeUsable reports whether the survey should use the KF end-of-session code.
func (s *Service) kfCodeUsable(sv Survey) bool {
	return sv.Kind == KindNPS && sv.Contact.ChannelType == conv.ChannelWeComKF && sv.Contact.KFCode != "" && !sv.NoCode
}

// kfFallback reports whether a KF survey that cannot use its code may go
// through send_msg instead: only while the session is in state 0 or 1.
func (s *Service) kfFallback(ctx context.Context, sv Survey) (bool, error) {
	if !s.kfCodeUsable(sv) || s.opts.KFServiceState == nil {
		return false, nil
	}
	st, _, err := s.opts.KFServiceState(ctx, sv.Contact.Channel, sv.Contact.Account, sv.Contact.ExternalUser)
	if err != nil {
		return false, err
	}
	return st == 0 || st == 1, nil
}

// windowDeadline is the last moment the survey may be sent on its channel.
func (s *Service) windowDeadline(sv Survey) time.Time {
	ce := sv.Contact
	switch {
	case s.kfCodeUsable(sv):
		end := ce.EndedAt
		if end.IsZero() {
			end = sv.ScheduledAt
		}
		return end.Add(kfCodeLife - kfCodeMargin)
	case ce.ChannelType == conv.ChannelWeChatOA || ce.ChannelType == conv.ChannelWeComKF:
		if ce.LastCustomerMsgAt.IsZero() {
			return time.Time{} // no customer message: no window to send in
		}
		return ce.LastCustomerMsgAt.Add(oaWindow - windowMargin)
	}
	base := ce.EndedAt
	if base.IsZero() || sv.Kind == KindReSurvey {
		base = sv.ScheduledAt
	}
	return base.Add(s.cfg.Delay + s.cfg.MaxDefer)
}

// notSent finishes a survey that will not go out, with its reason code.
func (s *Service) notSent(ctx context.Context, id, reason string) error {
	sv, err := s.updateSurvey(ctx, id, func(sv *Survey) error {
		if sv.State != StateScheduled && sv.State != StateSending && sv.State != StateAsked {
			return errNoChange
		}
		sv.State, sv.Reason = StateNotSent, reason
		return nil
	})
	if errors.Is(err, errNoChange) {
		return nil
	}
	if err != nil {
		return err
	}
	s.releaseThrottle(ctx, sv.Identity, sv.ID)
	_, _ = s.eng.CompareAndDelete(ctx, keyPending+string(sv.Contact.Customer), []byte(sv.ID))
	_ = s.eng.Ack(ctx, queueTimers, "exp:"+sv.ID)
	rec := s.record("not_sent", sv)
	rec.Reason = reason
	if err := s.appendRecord(ctx, rec); err != nil {
		return err
	}
	ce := sv.Contact
	s.emit(conv.Event{Type: conv.EvSurveyNotSent, Conv: ce.Conv, Customer: ce.Customer, Store: ce.Store, Channel: ce.Channel, Agent: ce.Agent,
		Reason: reason, Data: map[string]string{"survey": sv.ID, "kind": sv.Kind}})
	s.log.Info("survey not sent", "survey", sv.ID, "store", ce.Store, "channel", ce.Channel, "reason", reason)
	return nil
}

// record builds a report record of sv.
func (s *Service) record(typ string, sv Survey) Record {
	att := sv.Attribution
	if att.Store == "" && att.Channel == "" {
		att = attribution(sv.Contact)
	}
	return Record{Type: typ, SurveyID: sv.ID, Kind: sv.Kind, At: s.now(), SentAt: sv.SentAt, Version: sv.Version,
		Customer: pseudonym(sv.Contact.Customer), Conv: string(sv.Contact.Conv), Attribution: att, Score: sv.Score, Comment: sv.Comment, Reason: sv.Reason}
}

func attribution(ce conv.ContactEnded) Attribution {
	a := Attribution{Store: ce.Store, Channel: ce.Channel, ChannelType: ce.ChannelType, Agent: ce.Agent, HandedOff: ce.HandedOff,
		Entries: append([]string(nil), ce.Entries...), Disposition: ce.Disposition, Resolved: ce.Resolved, Outcome: ce.Outcome}
	if !ce.StartedAt.IsZero() && ce.EndedAt.After(ce.StartedAt) {
		a.DurationSec = int64(ce.EndedAt.Sub(ce.StartedAt) / time.Second)
	}
	return a
}

// govern applies the rules of PRODUCT.md §6 to a due survey: it returns a
// reason code when the survey must not be sent, or a later time when it
// must wait (quiet hours), or neither when it may go now.
func (s *Service) govern(ctx context.Context, sv Survey, now time.Time) (reason string, deferTo time.Time, err error) {
	if ok, err := s.exists(ctx, keyOptOut+sv.Identity); err != nil || ok {
		return "opted_out", time.Time{}, err
	}
	if sv.Kind == KindNPS {
		if ok, err := s.exists(ctx, keyCaseOpen+sv.Identity); err != nil || ok {
			return "case_open", time.Time{}, err
		}
		if s.opts.HasOpenCase != nil {
			if ok, err := s.opts.HasOpenCase(ctx, sv.Contact.Customer); err != nil || ok {
				return "case_open", time.Time{}, err
			}
		}
	}
	deadline := s.windowDeadline(sv)
	quotaLeft := -1
	if qc, ok := s.sender.(QuotaChecker); ok && !s.kfCodeUsable(sv) &&
		(sv.Contact.ChannelType == conv.ChannelWeChatOA || sv.Contact.ChannelType == conv.ChannelWeComKF) {
		// The sender's book knows the customer's latest message, which may
		// be newer than the contact's (they wrote again since): its window
		// is the one that counts.
		left, until, err := qc.Quota(ctx, sv.Contact.Channel, sv.Contact.ExternalUser, sv.Contact.LastCustomerMsgAt)
		if err != nil {
			return "", time.Time{}, err
		}
		if !until.IsZero() {
			deadline = until.Add(-windowMargin)
		}
		quotaLeft = left
	}
	if !now.Before(deadline) {
		return "window_expired", time.Time{}, nil
	}
	if quotaLeft == 0 {
		return "quota_exhausted", time.Time{}, nil
	}
	if s.inQuiet(now) {
		end := s.quietEnd(now)
		if end.Before(deadline) {
			return "", end, nil
		}
		return "quiet_hours", time.Time{}, nil
	}
	if sv.Kind == KindNPS {
		ok, err := s.throttle(ctx, sv.Identity, sv.ID, now)
		if err != nil {
			return "", time.Time{}, err
		}
		if !ok {
			return "throttled", time.Time{}, nil
		}
	}
	return "", time.Time{}, nil
}

// parseHHMM returns minutes after midnight.
func parseHHMM(v string) int {
	var h, m int
	_, _ = fmt.Sscanf(v, "%d:%d", &h, &m)
	return h*60 + m
}

// inQuiet reports whether t falls in the quiet hours (which may wrap midnight).
func (s *Service) inQuiet(t time.Time) bool {
	if s.cfg.QuietStart == "" || s.cfg.QuietStart == s.cfg.QuietEnd {
		return false
	}
	lt := t.In(s.loc)
	m := lt.Hour()*60 + lt.Minute()
	start, end := parseHHMM(s.cfg.QuietStart), parseHHMM(s.cfg.QuietEnd)
	if start < end {
		return m >= start && m < end
	}
	return m >= start || m < end
}

// quietEnd is the first moment after t when quiet hours are over.
func (s *Service) quietEnd(t time.Time) time.Time {
	lt := t.In(s.loc)
	end := parseHHMM(s.cfg.QuietEnd)
	c := time.Date(lt.Year(), lt.Month(), lt.Day(), end/60, end%60, 0, 0, s.loc)
	if !c.After(lt) {
		c = c.AddDate(0, 0, 1)
	}
	return c
}

// sendDue handles a due "send:" timer. It returns false when it re-armed
// the timer itself (deferral), so the caller must not ack it.
func (s *Service) sendDue(ctx context.Context, id string) (ack bool, err error) {
	sv, err := s.loadSurvey(ctx, id)
	if errors.Is(err, engine.ErrNotFound) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	now := s.now()
	switch sv.State {
	case StateScheduled:
		reason, deferTo, err := s.govern(ctx, sv, now)
		if err != nil {
			return false, err
		}
		if reason == "window_expired" || reason == "quiet_hours" {
			if ok, err := s.kfFallback(ctx, sv); err != nil {
				return false, err
			} else if ok {
				if _, err := s.updateSurvey(ctx, id, func(v *Survey) error { v.NoCode = true; return nil }); err != nil {
					return false, err
				}
				return s.sendDue(ctx, id) // governed again as a send_msg survey
			}
		}
		if reason != "" {
			return true, s.notSent(ctx, id, reason)
		}
		if !deferTo.IsZero() {
			if _, err := s.updateSurvey(ctx, id, func(sv *Survey) error { sv.DeferredUntil = deferTo; return nil }); err != nil {
				return false, err
			}
			s.log.Info("survey deferred by quiet hours", "survey", id, "until", deferTo)
			return false, s.enqueue(ctx, "send:"+id, deferTo, nil)
		}
		// Claim the send: of two workers holding this timer only one
		// moves scheduled → sending.
		sv, err = s.updateSurvey(ctx, id, func(v *Survey) error {
			if v.State != StateScheduled {
				return errNoChange
			}
			v.State, v.SentAt, v.Attribution = StateSending, now, attribution(v.Contact)
			return nil
		})
		if errors.Is(err, errNoChange) {
			return true, nil
		}
		if err != nil {
			return false, err
		}
	case StateSending:
		// A worker died between claiming and finishing: finish its send;
		// the outbound ID makes the message go out once.
	default:
		return true, nil
	}
	// Point the customer's next message at this survey before the question
	// can arrive, so a fast answer is never routed to the bot.
	pttl := s.cfg.Expiry + time.Hour
	if err := s.eng.Set(ctx, keyPending+string(sv.Contact.Customer), []byte(sv.ID), pttl); err != nil {
		return false, err
	}
	if err := s.sender.Send(ctx, s.questionOutbound(sv)); err != nil {
		if errors.Is(err, conv.ErrBadInput) {
			return true, s.notSent(ctx, id, "send_failed:bad_input")
		}
		return false, err
	}
	sv, err = s.updateSurvey(ctx, id, func(v *Survey) error {
		if v.State != StateSending {
			return errNoChange
		}
		v.State = StateAsked
		return nil
	})
	if errors.Is(err, errNoChange) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	if err := s.enqueue(ctx, "exp:"+id, sv.SentAt.Add(s.cfg.Expiry), nil); err != nil {
		return false, err
	}
	if err := s.appendRecord(ctx, s.record("sent", sv)); err != nil {
		s.log.Error("survey log append failed", "survey", id, "err", err)
	}
	// EvSurveySent waits for the sender's word (OutboundResult): a survey
	// the platform refuses is "not sent", never both sent and not sent.
	return true, nil
}

// delivered emits EvSurveySent once the sender delivered the question.
func (s *Service) delivered(ctx context.Context, id string) {
	sv, err := s.loadSurvey(ctx, id)
	if err != nil {
		s.log.Warn("delivered survey not found", "survey", id, "err", err)
		return
	}
	ce := sv.Contact
	s.emit(conv.Event{Type: conv.EvSurveySent, Conv: ce.Conv, Customer: ce.Customer, Store: ce.Store, Channel: ce.Channel, Agent: ce.Agent,
		Data: map[string]string{"survey": sv.ID, "kind": sv.Kind, "version": sv.Version, "via": s.via(sv)}})
}

// via names the API a survey uses, for events and logs.
func (s *Service) via(sv Survey) string {
	if s.kfCodeUsable(sv) {
		return "kf_end_code"
	}
	return string(sv.Contact.ChannelType)
}

// questionOutbound builds the survey question for sv's channel.
func (s *Service) questionOutbound(sv Survey) conv.Outbound {
	ce := sv.Contact
	out := conv.Outbound{ID: "survey:" + sv.ID, Kind: conv.OutCustomer, Channel: ce.Channel, To: ce.ExternalUser, Account: ce.Account,
		TriggerAt: ce.LastCustomerMsgAt, Source: "survey", Reply: conv.Text(s.cfg.Question.Text)}
	if s.kfCodeUsable(sv) {
		out.Kind, out.Code = conv.OutKFEvent, ce.KFCode
	}
	// An 11-point scale fits an OA msgmenu but not a KF one (≤10 items).
	if s.cfg.Question.Style == "menu" && ce.ChannelType == conv.ChannelWeChatOA {
		items := make([]conv.MenuItem, 0, 11)
		for i := 10; i >= 0; i-- {
			items = append(items, conv.MenuItem{ID: strconv.Itoa(menuBase + i), Content: fmt.Sprintf("%d分", i)})
		}
		out.Reply = conv.Reply{Kind: conv.ReplyMenu, Head: s.cfg.Question.Text, Menu: items, Tail: "也可直接回复数字"}
	}
	return out
}

// OutboundResult is told the final outcome of every outbound message
// (chain it into gateway.Sender.OnResult). A delivered survey emits
// EvSurveySent; one the sender gave up on becomes "not sent" with the
// sender's reason; a failed alert is noted on its case.
func (s *Service) OutboundResult(job conv.Outbound, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err == nil {
		if id, ok := strings.CutPrefix(job.ID, "survey:"); ok {
			s.delivered(ctx, id)
		}
		return
	}
	switch {
	case strings.HasPrefix(job.ID, "survey:"):
		if e := s.notSent(ctx, strings.TrimPrefix(job.ID, "survey:"), sendReason(err)); e != nil {
			s.log.Error("cannot record survey send failure", "id", job.ID, "err", e)
		}
	case strings.HasPrefix(job.ID, "alert:"):
		parts := strings.SplitN(job.ID, ":", 4)
		if len(parts) >= 2 {
			s.noteCase(ctx, parts[1], "system", "alert_failed", job.Channel+" "+job.To+": "+err.Error())
		}
	}
}

// sendReason maps the sender's dead-letter reason to a survey reason code.
func sendReason(err error) string {
	msg := err.Error()
	for _, r := range []string{"window_expired", "quota_exhausted"} {
		if strings.HasPrefix(msg, r) {
			return r
		}
	}
	if rest, ok := strings.CutPrefix(msg, "send_failed:"); ok {
		code, _, _ := strings.Cut(rest, " ")
		return "send_failed:" + code
	}
	// "no_permission (48001: …)", "max_attempts: …": keep the errcode.
	for _, f := range strings.FieldsFunc(msg, func(r rune) bool { return r < '0' || r > '9' }) {
		if len(f) >= 4 {
			return "send_failed:" + f
		}
	}
	return "send_failed:unknown"
}

// expireDue handles an "exp:" timer: an unanswered survey gets its reason.
func (s *Service) expireDue(ctx context.Context, id string) error {
	sv, err := s.updateSurvey(ctx, id, func(sv *Survey) error {
		switch sv.State {
		case StateAsked:
			sv.State, sv.Reason = StateUnanswered, "expired"
		case StateWhy, StateWhen:
			sv.State = StateDone // scored; the reason and call-back time were optional
		default:
			return errNoChange
		}
		return nil
	})
	if errors.Is(err, errNoChange) || errors.Is(err, conv.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	_, _ = s.eng.CompareAndDelete(ctx, keyPending+string(sv.Contact.Customer), []byte(sv.ID))
	if sv.State == StateUnanswered {
		return s.unanswered(ctx, sv)
	}
	return nil
}

// unanswered logs and emits a survey that got no score.
func (s *Service) unanswered(ctx context.Context, sv Survey) error {
	if err := s.appendRecord(ctx, s.record("unanswered", sv)); err != nil {
		return err
	}
	ce := sv.Contact
	s.emit(conv.Event{Type: EvSurveyUnanswered, Conv: ce.Conv, Customer: ce.Customer, Store: ce.Store, Channel: ce.Channel, Agent: ce.Agent,
		Reason: sv.Reason, Data: map[string]string{"survey": sv.ID, "kind": sv.Kind}})
	return nil
}

// Run fires durable timers (survey sends and expiry, bot idle, alerts,
// reminders, escalation, digests) until ctx ends. Run it on every
// instance: the engine's leased queue gives each timer to one of them.
func (s *Service) Run(ctx context.Context) error {
	tick := time.NewTicker(s.cfg.PollInterval)
	defer tick.Stop()
	lastDigest, lastTrim := time.Time{}, time.Time{}
	for {
		if s.cfg.Digest.Enabled && time.Since(lastDigest) > time.Minute {
			lastDigest = time.Now()
			if err := s.planDigests(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("digest planning failed", "err", err)
			}
		}
		if time.Since(lastTrim) > time.Hour {
			// Keep the report log as long as the records it describes.
			lastTrim = time.Now()
			if err := s.eng.TrimLog(ctx, logRecords, s.now().Add(-recordTTL)); err != nil && ctx.Err() == nil {
				s.log.Warn("survey log retention failed", "err", err)
			}
		}
		for s.RunDue(ctx) > 0 && ctx.Err() == nil {
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-s.wake:
		}
	}
}

// maxTimerAttempts bounds retries of a failing timer (≈ 25 min at the
// 30 s backoff cap).
const maxTimerAttempts = 50

// timerLease is how long a claimed timer stays invisible to other instances.
const timerLease = 30 * time.Second

// RunDue fires one batch of due timers and returns how many it claimed.
func (s *Service) RunDue(ctx context.Context) int {
	jobs, err := s.eng.Claim(ctx, queueTimers, s.now(), timerLease, 32)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("timer claim failed", "err", err)
		}
		return 0
	}
	for _, j := range jobs {
		ack, err := s.fire(ctx, j)
		if err != nil && j.Attempts >= maxTimerAttempts {
			// A timer failing this often is broken, not unlucky: drop it
			// loudly rather than spin on it forever.
			s.log.Error("timer dropped after repeated failures", "timer", j.ID, "attempts", j.Attempts, "err", err)
			ack, err = true, nil
		}
		if err != nil {
			// Retry soon with backoff rather than waiting out the whole
			// lease (a transient conflict between instances would delay an
			// alert by half a minute); if even this fails, the lease still
			// brings the timer back, so nothing is lost.
			retry := min(time.Second<<min(j.Attempts, 5), timerLease)
			s.log.Warn("timer failed; will retry", "timer", j.ID, "attempt", j.Attempts, "in", retry, "err", err)
			_ = s.eng.Enqueue(ctx, queueTimers, engine.Job{ID: j.ID, Data: j.Data, Due: s.now().Add(retry)})
			continue
		}
		if ack {
			// Only as claimed: a timer re-armed meanwhile (same ID, new
			// due) by fire or by another request must survive.
			if _, err := s.eng.AckClaimed(ctx, queueTimers, j); err != nil {
				s.log.Warn("timer ack failed", "timer", j.ID, "err", err)
			}
		}
	}
	return len(jobs)
}

// fire dispatches a timer by its id prefix.
func (s *Service) fire(ctx context.Context, j engine.Job) (ack bool, err error) {
	kind, arg, _ := strings.Cut(j.ID, ":")
	switch kind {
	case "send":
		return s.sendDue(ctx, arg)
	case "exp":
		return true, s.expireDue(ctx, arg)
	case "idle": // older versions: one timer per customer
		return s.idleDue(ctx, j.ID, arg, "")
	case "botidle":
		customer, ok := botConvCustomer(arg)
		if !ok {
			s.log.Error("malformed bot idle timer dropped", "timer", j.ID)
			return true, nil
		}
		return s.idleDue(ctx, j.ID, customer, conv.ConvID(arg))
	case "alert":
		return true, s.alertDue(ctx, arg, j)
	case "rem":
		return true, s.reminderDue(ctx, j)
	case "esc":
		return true, s.escalateDue(ctx, j)
	case "batch":
		return s.batchDue(ctx, arg, j)
	case "hook":
		return s.hookDue(ctx, j)
	case "digest":
		return true, s.digestDue(ctx, j)
	}
	s.log.Error("unknown timer dropped", "timer", j.ID)
	return true, nil
}
