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
	"kefu/internal/bufpool"
)

// Transcripts keeps each customer's recent turns (customer messages, bot
// answers with the KB entry, agent replies, notes) so an agent sees
// everything the bot saw. One list per customer, a JSON object a line:
// an append adds its lines with engine.StrAppend (the cost of the turns
// added, not of the whole transcript, and concurrent appends from several
// instances never lose a turn); Read returns the newest max turns, and the
// stored list is cut back to them once it grows well past that.
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

// trimTurnBytes sets when a stored transcript is cut back to its newest
// max turns: once it exceeds max × trimTurnBytes bytes (turns average
// about 250), i.e. after roughly as many turns again. Cutting reads and
// rewrites the transcript, so it is done rarely rather than on every
// append.
const trimTurnBytes = 512

// turnBufs holds the buffers appended turns are encoded in.
var turnBufs = bufpool.New(2048, 64<<10)

// Append adds t to customer's transcript.
func (s *Transcripts) Append(ctx context.Context, customer conv.CustomerID, t conv.Turn) error {
	return s.AppendMany(ctx, customer, t)
}

// AppendMany adds turns in order in one engine write.
func (s *Transcripts) AppendMany(ctx context.Context, customer conv.CustomerID, turns ...conv.Turn) error {
	if len(turns) == 0 {
		return nil
	}
	// Encoded in a pooled buffer: the engine copies what it appends.
	bp := turnBufs.Get()
	add := *bp
	for _, t := range turns {
		if t.At.IsZero() {
			t.At = time.Now()
		}
		add = append(t.AppendJSON(add), '\n')
	}
	key := transcriptKey(customer)
	n, err := s.eng.StrAppend(ctx, key, add, s.ttl)
	turnBufs.Put(bp, add)
	if err != nil {
		return err
	}
	if n > int64(s.max)*trimTurnBytes {
		return s.trim(ctx, key)
	}
	return nil
}

// trim cuts the stored transcript back to its newest max turns; an
// append racing with it makes the swap fail and the cut start over.
func (s *Transcripts) trim(ctx context.Context, key string) error {
	for range maxTrimAttempts {
		old, err := s.eng.Get(ctx, key)
		if errors.Is(err, engine.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		lines := turnLines(old)
		if len(lines) > s.max {
			lines = lines[len(lines)-s.max:]
		}
		var out []byte
		for _, l := range lines {
			out = append(append(out, l...), '\n')
		}
		ok, err := s.eng.CompareAndSwap(ctx, key, old, out, s.ttl)
		if err != nil || ok {
			return err
		}
	}
	return fmt.Errorf("handoff: trimming transcript %s: %w", key, engine.ErrTxConflict)
}

// maxTrimAttempts bounds trim's retries against concurrent appends.
const maxTrimAttempts = 20

// turnLines returns the JSON object of every turn in b, oldest first: one
// a line. An older version stored the list as a JSON array, without a
// trailing newline, so the first turn appended since follows the array on
// its line: the array's elements come first, then the rest of the line.
func turnLines(b []byte) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		if len(line) == 0 {
			continue
		}
		if line[0] != '[' {
			out = append(out, line)
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(line))
		var turns []json.RawMessage
		if dec.Decode(&turns) != nil {
			continue // a corrupt list must not hide the turns after it
		}
		for _, t := range turns {
			out = append(out, t)
		}
		if rest := bytes.TrimSpace(line[dec.InputOffset():]); len(rest) > 0 {
			out = append(out, rest)
		}
	}
	return out
}

// Read returns customer's newest turns (at most max), oldest first.
func (s *Transcripts) Read(ctx context.Context, customer conv.CustomerID) ([]conv.Turn, error) {
	b, err := s.eng.Get(ctx, transcriptKey(customer))
	if errors.Is(err, engine.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	lines := turnLines(b)
	if len(lines) > s.max {
		lines = lines[len(lines)-s.max:]
	}
	turns := make([]conv.Turn, 0, len(lines))
	for _, line := range lines {
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
