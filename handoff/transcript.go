package handoff

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"kefu/conv"
	"kefu/engine"
)

// Transcripts keeps each customer's recent turns (customer messages, bot
// answers with the KB entry, agent replies, notes) so an agent sees
// everything the bot saw. One bounded list per customer (a JSON object a
// line), updated with compare-and-swap so concurrent appends from several
// instances never lose a turn.
type Transcripts struct {
	eng engine.Engine
	max int
	ttl time.Duration
}

// NewTranscripts returns a store keeping at most max turns per customer
// for ttl after the last turn.
func NewTranscripts(eng engine.Engine, max int, ttl time.Duration) *Transcripts {
	if max <= 0 {
		max = DefaultTranscriptTurns
	}
	return &Transcripts{eng: eng, max: max, ttl: ttl}
}

func transcriptKey(c conv.CustomerID) string { return "ho:t:{" + string(c) + "}" }

// Append adds t to customer's transcript, dropping the oldest turns
// beyond the bound.
func (s *Transcripts) Append(ctx context.Context, customer conv.CustomerID, t conv.Turn) error {
	return s.AppendMany(ctx, customer, t)
}

// AppendMany adds turns in order in one compare-and-swap. The transcript
// is stored as one JSON object per line, so an append copies bytes instead
// of decoding and re-encoding every turn (this runs for every message); a
// concurrent append from another instance makes the swap fail and retry.
func (s *Transcripts) AppendMany(ctx context.Context, customer conv.CustomerID, turns ...conv.Turn) error {
	if len(turns) == 0 {
		return nil
	}
	var add []byte
	for _, t := range turns {
		if t.At.IsZero() {
			t.At = time.Now()
		}
		add = append(t.AppendJSON(add), '\n')
	}
	key := transcriptKey(customer)
	for range maxAppendAttempts {
		old, err := s.eng.Get(ctx, key)
		if errors.Is(err, engine.ErrNotFound) {
			old = nil
		} else if err != nil {
			return err
		}
		cur := old
		if len(cur) > 0 && cur[0] == '[' {
			cur = toLines(cur) // written by an older version as a JSON array
		}
		// Drop the oldest turns beyond the bound.
		n := bytes.Count(cur, []byte{'\n'}) + bytes.Count(add, []byte{'\n'})
		for ; n > s.max && len(cur) > 0; n-- {
			cur = cur[bytes.IndexByte(cur, '\n')+1:]
		}
		next := add
		for ; n > s.max; n-- {
			next = next[bytes.IndexByte(next, '\n')+1:]
		}
		out := append(append(make([]byte, 0, len(cur)+len(next)), cur...), next...)
		ok, err := s.eng.CompareAndSwap(ctx, key, old, out, s.ttl) // old nil: must still be absent
		if err != nil || ok {
			return err
		}
	}
	return fmt.Errorf("handoff: transcript of %s: %w", customer, engine.ErrTxConflict)
}

// maxAppendAttempts bounds AppendMany's retries when other writers keep
// changing the same transcript.
const maxAppendAttempts = 100

// toLines converts a JSON array transcript into the line format.
func toLines(b []byte) []byte {
	var turns []json.RawMessage
	if json.Unmarshal(b, &turns) != nil {
		return nil // a corrupt transcript must not block new turns
	}
	var out []byte
	for _, t := range turns {
		out = append(append(out, t...), '\n')
	}
	return out
}

// Read returns customer's turns, oldest first.
func (s *Transcripts) Read(ctx context.Context, customer conv.CustomerID) ([]conv.Turn, error) {
	b, err := s.eng.Get(ctx, transcriptKey(customer))
	if errors.Is(err, engine.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if len(b) > 0 && b[0] == '[' {
		b = toLines(b)
	}
	var turns []conv.Turn
	for _, line := range bytes.Split(b, []byte{'\n'}) {
		if len(line) == 0 {
			continue
		}
		var t conv.Turn
		if err := json.Unmarshal(line, &t); err != nil {
			continue // skip a damaged line rather than hide the whole transcript
		}
		turns = append(turns, t)
	}
	return turns, nil
}

// Delete removes customer's transcript (unsubscribe: WeChat requires the
// user's data to be deleted).
func (s *Transcripts) Delete(ctx context.Context, customer conv.CustomerID) error {
	return s.eng.Del(ctx, transcriptKey(customer))
}
