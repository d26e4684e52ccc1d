package surveys

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"kefu/conv"
	"kefu/engine"
)

// Engine keys. Every key is used alone (single-key CAS), so none needs a
// shared hash tag; the timer queue's internals are tagged by the engine.
const (
	keySurvey      = "sv:s:"  // + survey id → Survey JSON
	keyPending     = "sv:p:"  // + customer → survey id awaiting an answer
	keyThrottle    = "sv:t:"  // + identity → "<survey id>|<until unix ms>"
	keyOptOut      = "sv:o:"  // + identity → opt-out time
	keyCaseOpen    = "sv:co:" // + identity → open case id
	keyBot         = "sv:b:"  // + customer → bot contact state
	keyCase        = "sv:c:"  // + case id → Case JSON
	keyCases       = "sv:cases"
	keyBatchQ      = "sv:bq:" // + target hash → pending alert ids (zset)
	keyBatchText   = "sv:bt:" // + target hash → alert id → text (hash)
	keyBatchLock   = "sv:bl:" // + target hash → one post per batch interval
	keyAlertQueued = "sv:aq:" // + alert id → queued once
	keyHookDone    = "sv:hk:" // + delivery id → webhook delivered
	keyDigest      = "sv:dg:" // + store:date → digest sent
	queueTimers    = "sv:q"
	logRecords     = "sv:log"
	recordTTL      = 400 * 24 * time.Hour
)

// Survey states.
const (
	StateScheduled  = "scheduled"
	StateSending    = "sending"
	StateAsked      = "asked" // sent, waiting for the score
	StateWhy        = "why"   // score recorded, waiting for the reason
	StateWhen       = "when"  // detractor asked for a call-back time
	StateDone       = "done"
	StateNotSent    = "not_sent"
	StateUnanswered = "unanswered"
)

// Survey kinds.
const (
	KindNPS      = "nps"
	KindReSurvey = "re_survey" // after a detractor case is resolved
)

// EvSurveyUnanswered reports a sent survey that got no score, with Reason
// (expired, opted_out, reopened, unparseable). conv has no event type for
// it; report reads it from the same log.
const EvSurveyUnanswered conv.EventType = "survey_unanswered"

// EvSurveyOptOut records a customer's "退订": surveys that would have
// reached them later are reported as not sent with reason opted_out.
const EvSurveyOptOut conv.EventType = "survey_opt_out"

// Attribution is stamped on a survey when it is sent and copied to its
// response, so later changes (an agent leaving, a store moving region)
// never rewrite history.
type Attribution struct {
	Store       conv.StoreID     `json:"store"`
	Channel     string           `json:"channel"`
	ChannelType conv.ChannelType `json:"channel_type"`
	Agent       string           `json:"agent,omitempty"`
	HandedOff   bool             `json:"handed_off"`
	Entries     []string         `json:"entries,omitempty"`
	Disposition string           `json:"disposition,omitempty"`
	Resolved    bool             `json:"resolved"`
	Outcome     string           `json:"outcome"`
	// DurationSec is the contact's length, start to end.
	DurationSec int64 `json:"duration_sec"`
}

// Survey is one survey's durable record.
type Survey struct {
	ID       string            `json:"id"`
	Kind     string            `json:"kind"`
	CaseID   string            `json:"case_id,omitempty"` // re-surveys
	State    string            `json:"state"`
	Reason   string            `json:"reason,omitempty"`
	Version  string            `json:"version"`
	Identity string            `json:"identity"`
	Contact  conv.ContactEnded `json:"contact"`
	// Attribution is set when the survey is sent.
	Attribution   Attribution `json:"attribution"`
	ScheduledAt   time.Time   `json:"scheduled_at"`
	DeferredUntil time.Time   `json:"deferred_until,omitempty"`
	SentAt        time.Time   `json:"sent_at,omitempty"`
	AnsweredAt    time.Time   `json:"answered_at,omitempty"`
	Score         *int        `json:"score,omitempty"`
	Comment       string      `json:"comment,omitempty"`
	// PreferredTime is a detractor's answer to "when may we call back?".
	PreferredTime string `json:"preferred_time,omitempty"`
	Reprompted    bool   `json:"reprompted,omitempty"`
	// NoCode switches a KF survey from its end-of-session code to send_msg.
	NoCode bool `json:"no_code,omitempty"`
	// LastMsgID and LastReply make a redelivered answer idempotent.
	LastMsgID string `json:"last_msg_id,omitempty"`
	LastReply string `json:"last_reply,omitempty"`
}

// Record is one entry of the survey log that reports read: a survey sent,
// not sent, answered, commented or left unanswered.
type Record struct {
	Type     string    `json:"type"` // sent | not_sent | answered | comment | unanswered
	SurveyID string    `json:"survey"`
	Kind     string    `json:"kind"`
	At       time.Time `json:"at"`
	SentAt   time.Time `json:"sent_at,omitempty"`
	Version  string    `json:"version,omitempty"`
	// Customer is a pseudonym of the customer id, never the platform id.
	Customer string `json:"customer,omitempty"`
	Conv     string `json:"conv,omitempty"`
	Attribution
	Score   *int   `json:"score,omitempty"`
	Comment string `json:"comment,omitempty"`
	Reason  string `json:"reason,omitempty"`
}

// surveyID derives a survey's id from its contact so that the hook firing
// twice (a retry, two instances) schedules one survey.
func surveyID(ce conv.ContactEnded) string {
	basis := string(ce.Conv)
	if basis == "" {
		basis = string(ce.Customer) + "|" + strconv.FormatInt(ce.EndedAt.UnixMilli(), 10)
	}
	return "s" + shortHash(basis)
}

// pseudonym keys report records by an internal id rather than the
// platform's user id (WECHAT.md §7.6): the log is append-only and outlives
// an unsubscribe.
func pseudonym(c conv.CustomerID) string { return "p:" + shortHash("customer|"+string(c)) }

func shortHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:10])
}

// getJSON loads key into v and returns the raw bytes for a later CAS.
func getJSON(ctx context.Context, eng engine.Engine, key string, v any) ([]byte, error) {
	b, err := eng.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return nil, fmt.Errorf("surveys: corrupt record %s: %w", key, err)
	}
	return b, nil
}

// errNoChange lets an update function say "nothing to write".
var errNoChange = errors.New("no change")

// updateJSON applies fn to the value at key with compare-and-swap, retrying
// on concurrent writers, so two instances never both win a transition.
// fn sees a zero value when the key is absent (created reports it).
func updateJSON[T any](ctx context.Context, eng engine.Engine, key string, ttl time.Duration, fn func(v *T, created bool) error) (T, error) {
	for attempt := 0; ; attempt++ {
		var v T
		old, err := getJSON(ctx, eng, key, &v)
		created := errors.Is(err, engine.ErrNotFound)
		if err != nil && !created {
			return v, err
		}
		if err := fn(&v, created); err != nil {
			return v, err
		}
		nb, err := json.Marshal(v)
		if err != nil {
			return v, err
		}
		ok, err := eng.CompareAndSwap(ctx, key, old, nb, ttl)
		if err != nil {
			return v, err
		}
		if ok {
			return v, nil
		}
		if attempt > 50 {
			return v, fmt.Errorf("surveys: %s: %w", key, engine.ErrTxConflict)
		}
	}
}

// loadSurvey reads a survey record.
func (s *Service) loadSurvey(ctx context.Context, id string) (Survey, error) {
	var sv Survey
	_, err := getJSON(ctx, s.eng, keySurvey+id, &sv)
	return sv, err
}

// updateSurvey changes a survey with CAS; fn returning errNoChange leaves it.
func (s *Service) updateSurvey(ctx context.Context, id string, fn func(sv *Survey) error) (Survey, error) {
	return updateJSON(ctx, s.eng, keySurvey+id, recordTTL, func(sv *Survey, created bool) error {
		if created {
			return fmt.Errorf("survey %s: %w", id, conv.ErrNotFound)
		}
		return fn(sv)
	})
}

// appendRecord writes a report record; losing one would skew NPS, so it is
// retried by the caller's job when it fails.
func (s *Service) appendRecord(ctx context.Context, r Record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = s.eng.Append(ctx, logRecords, b)
	return err
}

// throttle claims the brand-wide "one survey per N days" slot for identity
// on behalf of survey id. The expiry is kept in the value, not only in the
// key's TTL, so the rule follows the service clock.
func (s *Service) throttle(ctx context.Context, identity, id string, now time.Time) (bool, error) {
	if s.cfg.ThrottleDays == 0 {
		return true, nil
	}
	window := time.Duration(s.cfg.ThrottleDays) * 24 * time.Hour
	key := keyThrottle + identity
	val := []byte(id + "|" + strconv.FormatInt(now.Add(window).UnixMilli(), 10))
	for range 10 {
		cur, err := s.eng.Get(ctx, key)
		switch {
		case errors.Is(err, engine.ErrNotFound):
			ok, err := s.eng.CompareAndSwap(ctx, key, nil, val, window)
			if err != nil || ok {
				return ok, err
			}
			continue
		case err != nil:
			return false, err
		}
		holder, until, _ := strings.Cut(string(cur), "|")
		if holder == id {
			return true, nil
		}
		ms, _ := strconv.ParseInt(until, 10, 64)
		if now.UnixMilli() < ms {
			return false, nil
		}
		ok, err := s.eng.CompareAndSwap(ctx, key, cur, val, window)
		if err != nil || ok {
			return ok, err
		}
	}
	return false, engine.ErrTxConflict
}

// releaseThrottle frees the slot when the survey never reached the customer.
func (s *Service) releaseThrottle(ctx context.Context, identity, id string) {
	key := keyThrottle + identity
	cur, err := s.eng.Get(ctx, key)
	if err != nil {
		return
	}
	if holder, _, _ := strings.Cut(string(cur), "|"); holder == id {
		_, _ = s.eng.CompareAndDelete(ctx, key, cur)
	}
}

// exists reports whether key is present.
func (s *Service) exists(ctx context.Context, key string) (bool, error) {
	_, err := s.eng.Get(ctx, key)
	if errors.Is(err, engine.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// tryLock takes key for d on the service clock (the expiry lives in the
// value, the key's TTL only cleans up), so one instance wins per interval.
func (s *Service) tryLock(ctx context.Context, key string, d time.Duration) (bool, error) {
	now := s.now()
	val := []byte(strconv.FormatInt(now.Add(d).UnixMilli(), 10))
	cur, err := s.eng.Get(ctx, key)
	switch {
	case errors.Is(err, engine.ErrNotFound):
		return s.eng.CompareAndSwap(ctx, key, nil, val, d+time.Minute)
	case err != nil:
		return false, err
	}
	until, _ := strconv.ParseInt(string(cur), 10, 64)
	if now.UnixMilli() < until {
		return false, nil
	}
	return s.eng.CompareAndSwap(ctx, key, cur, val, d+time.Minute)
}
