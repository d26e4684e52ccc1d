package report

import (
	"context"
	"errors"
	"time"

	"kefu/engine"
)

// retentionEvery is how often Retention trims; the log grows by at most
// this much beyond the retention window.
const retentionEvery = time.Hour

// Retention is the service that trims the event log to
// Config.RetentionDays. It never trims records the report has not folded
// yet, so a stalled report loses nothing.
type Retention struct {
	r     *Reporter
	every time.Duration
}

// NewRetention returns the retention service of r's log.
func NewRetention(r *Reporter) *Retention { return &Retention{r: r, every: retentionEvery} }

// TrimOnce trims once and returns the cut-off used (zero when nothing may
// be trimmed yet).
func (t *Retention) TrimOnce(ctx context.Context) (time.Time, error) {
	before := t.r.now().Add(-time.Duration(t.r.cfg.RetentionDays) * 24 * time.Hour)
	// The persisted cursor, not this instance's: a follower may be ahead of
	// what the lease holder has stored, and a new leader resumes from the store.
	b, err := t.r.eng.HGet(ctx, StateKey, fieldCursor)
	if errors.Is(err, engine.ErrNotFound) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, err
	}
	cur := string(b)
	if cur == "" {
		return time.Time{}, nil
	}
	// Records at or before the cursor are folded; keep everything after it.
	if folded := time.UnixMilli(idMillis(cur)); folded.Before(before) {
		before = folded
	}
	if err := t.r.eng.TrimLog(ctx, t.r.name, before); err != nil {
		return time.Time{}, err
	}
	return before, nil
}

// Run trims every hour until ctx ends (a Service).
func (t *Retention) Run(ctx context.Context) error {
	tick := time.NewTicker(t.every)
	defer tick.Stop()
	for {
		if _, err := t.TrimOnce(ctx); err != nil && ctx.Err() == nil {
			t.r.log.Error("event log trim failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}
