package handoff

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"time"

	"kefu/conv"
	"kefu/engine"
)

// Transcripts keeps each customer's recent turns (customer messages, bot
// answers with the KB entry, agent replies, notes) so an agent sees
// everything the bot saw. One bounded list per customer (a JSON object a
// line), updated with engine.Update so concurrent appends from several
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

// AppendMany adds turns in order in one engine update. The transcript is
// stored as one JSON object per line, so an append copies bytes instead of
// decoding and re-encoding every turn (this runs for every message).
func (s *Transcripts) AppendMany(ctx context.Context, customer conv.CustomerID, turns ...conv.Turn) error {
	if len(turns) == 0 {
		return nil
	}
	var add []byte
	for _, t := range turns {
		if t.At.IsZero() {
			t.At = time.Now()
		}
		b, err := json.Marshal(t)
		if err != nil {
			return err
		}
		add = append(append(add, b...), '\n')
	}
	key := transcriptKey(customer)
	return s.eng.Update(ctx, []string{key}, func(tx engine.Tx) error {
		cur, err := tx.Get(key)
		if err != nil && !errors.Is(err, engine.ErrNotFound) {
			return err
		}
		if len(cur) > 0 && cur[0] == '[' {
			cur = toLines(cur) // written by an older version as a JSON array
		}
		out := append(append(make([]byte, 0, len(cur)+len(add)), cur...), add...)
		// Drop the oldest turns beyond the bound.
		for n := bytes.Count(out, []byte{'\n'}); n > s.max; n-- {
			out = out[bytes.IndexByte(out, '\n')+1:]
		}
		tx.Set(key, out, s.ttl)
		return nil
	})
}

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
