package bot

import (
	"encoding/json"
	"math"
	"strconv"

	"kefu/conv"
)

// Every decision journals a Record with up to five candidates, where
// encoding/json's reflection was a visible share of the bot's CPU.
// appendJSON writes the bytes json.Marshal writes, by hand; a test pins
// both against json.Marshal and against the field lists, so a field added
// to Record or Candidate without updating the encoder fails it.

// marshalRecord is json.Marshal(r), without reflection.
func marshalRecord(r Record) ([]byte, error) {
	return r.appendJSON(make([]byte, 0, 256+160*len(r.Candidates)))
}

// appendJSON appends r encoded as json.Marshal would encode it; a score
// json cannot encode (NaN, ±Inf) returns json.Marshal's error.
func (r *Record) appendJSON(b []byte) ([]byte, error) {
	if !finite(r.Score) {
		return json.Marshal(r)
	}
	for i := range r.Candidates {
		if !finite(r.Candidates[i].Score) {
			return json.Marshal(r)
		}
	}
	b = append(b, `{"id":`...)
	b = conv.AppendJSONString(b, r.ID)
	b = append(b, `,"kind":`...)
	b = conv.AppendJSONString(b, string(r.Kind))
	b = append(b, `,"at":`...)
	b = conv.AppendJSONTime(b, r.At)
	b = conv.AppendJSONField(b, "q", r.Question)
	b = conv.AppendJSONField(b, "store", r.Store)
	b = conv.AppendJSONField(b, "customer", r.Customer)
	if len(r.Candidates) > 0 {
		b = append(b, `,"cands":[`...)
		for i := range r.Candidates {
			if i > 0 {
				b = append(b, ',')
			}
			b = r.Candidates[i].appendJSON(b)
		}
		b = append(b, ']')
	}
	b = conv.AppendJSONField(b, "entry", r.Entry)
	if r.Score != 0 {
		b = append(b, `,"score":`...)
		b = appendFloat(b, r.Score)
	}
	if r.Helpful != nil {
		b = append(b, `,"helpful":`...)
		b = strconv.AppendBool(b, *r.Helpful)
	}
	b = conv.AppendJSONField(b, "answer", r.Answer)
	b = conv.AppendJSONField(b, "agent", r.Agent)
	b = conv.AppendJSONField(b, "ref", r.Ref)
	b = conv.AppendJSONField(b, "reason", r.Reason)
	return append(b, '}'), nil
}

// appendJSON appends c as json.Marshal would (its score must be finite).
func (c *Candidate) appendJSON(b []byte) []byte {
	b = append(b, `{"id":`...)
	b = conv.AppendJSONString(b, c.EntryID)
	b = conv.AppendJSONField(b, "question", c.Question)
	b = append(b, `,"score":`...)
	b = appendFloat(b, c.Score)
	b = conv.AppendJSONField(b, "answer", c.Answer)
	b = conv.AppendJSONField(b, "category", c.Category)
	if c.AgentOnly {
		b = append(b, `,"agent_only":true`...)
	}
	return append(b, '}')
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// appendFloat formats a finite float64 as encoding/json does: the shortest
// representation, 'f' format except for very small or large magnitudes,
// and an exponent without a leading zero ("1e-07" → "1e-7").
func appendFloat(b []byte, f float64) []byte {
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}
