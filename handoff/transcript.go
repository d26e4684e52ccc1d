package handoff

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"kefu/conv"
	"kefu/engine"
)

// Transcripts keeps each customer's recent turns (customer messages, bot
// answers with the KB entry, agent replies, notes) so an agent sees
// everything the bot saw. One bounded JSON list per customer, updated with
// engine.Update so concurrent appends from several instances never lose a
// turn.
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
	if t.At.IsZero() {
		t.At = time.Now()
	}
	key := transcriptKey(customer)
	return s.eng.Update(ctx, []string{key}, func(tx engine.Tx) error {
		var turns []conv.Turn
		if b, err := tx.Get(key); err == nil {
			if err := json.Unmarshal(b, &turns); err != nil {
				turns = nil // a corrupt transcript must not block new turns
			}
		} else if !errors.Is(err, engine.ErrNotFound) {
			return err
		}
		turns = append(turns, t)
		if len(turns) > s.max {
			turns = turns[len(turns)-s.max:]
		}
		b, _ := json.Marshal(turns)
		tx.Set(key, b, s.ttl)
		return nil
	})
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
	var turns []conv.Turn
	if err := json.Unmarshal(b, &turns); err != nil {
		return nil, err
	}
	return turns, nil
}

// Delete removes customer's transcript (unsubscribe: WeChat requires the
// user's data to be deleted).
func (s *Transcripts) Delete(ctx context.Context, customer conv.CustomerID) error {
	return s.eng.Del(ctx, transcriptKey(customer))
}
