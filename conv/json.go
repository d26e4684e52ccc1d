package conv

import (
	"encoding/json"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Turns and events are encoded on every message (a transcript line, two
// log records), where encoding/json's reflection was a visible share of
// the CPU. AppendJSON writes the same bytes json.Marshal does, by hand;
// a test pins both against json.Marshal and against the field lists, so a
// field added to Turn or Event without updating its encoder fails it.

// AppendJSON appends t encoded as json.Marshal would encode it.
func (t Turn) AppendJSON(b []byte) []byte {
	b = append(b, `{"at":`...)
	b = appendTime(b, t.At)
	b = append(b, `,"role":`...)
	b = appendString(b, string(t.Role))
	b = append(b, `,"text":`...)
	b = appendString(b, t.Text)
	b = appendField(b, "kind", string(t.Kind))
	b = appendField(b, "entry", t.EntryID)
	b = appendField(b, "intent", t.Intent)
	b = appendField(b, "agent", t.Agent)
	b = appendField(b, "conv", string(t.Conv))
	b = appendField(b, "msg_id", t.MsgID)
	b = appendField(b, "state", string(t.State))
	return append(b, '}')
}

// AppendJSON appends ev encoded as json.Marshal would encode it (Data
// keys sorted).
func (ev Event) AppendJSON(b []byte) []byte {
	b = append(b, '{')
	if ev.ID != "" {
		b = append(b, `"id":`...)
		b = appendString(b, ev.ID)
		b = append(b, ',')
	}
	b = append(b, `"type":`...)
	b = appendString(b, string(ev.Type))
	b = append(b, `,"at":`...)
	b = appendTime(b, ev.At)
	b = appendField(b, "conv", string(ev.Conv))
	b = appendField(b, "customer", string(ev.Customer))
	b = appendField(b, "store", string(ev.Store))
	b = appendField(b, "channel", ev.Channel)
	b = appendField(b, "agent", ev.Agent)
	b = appendField(b, "actor", ev.Actor)
	b = appendField(b, "reason", ev.Reason)
	if len(ev.Data) > 0 {
		var arr [8]string
		keys := arr[:0]
		for k := range ev.Data {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = append(b, `,"data":{`...)
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, k)
			b = append(b, ':')
			b = appendString(b, ev.Data[k])
		}
		b = append(b, '}')
	}
	return append(b, '}')
}

// appendField appends `,"name":"v"` unless v is empty (omitempty).
func appendField(b []byte, name, v string) []byte {
	if v == "" {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return appendString(b, v)
}

// appendTime encodes t as time.Time.MarshalJSON does (RFC 3339 with
// nanoseconds). A year outside 0–9999, which json.Marshal refuses,
// cannot come from a clock.
func appendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"

// plainJSON reports whether s needs no escaping: the common case (Chinese
// text, ids) checked with a byte loop and utf8.ValidString instead of
// decoding every rune.
func plainJSON(s string) bool {
	ascii := true
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= utf8.RuneSelf:
			ascii = false
		case c < 0x20, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		}
	}
	return ascii || (utf8.ValidString(s) && !strings.Contains(s, "\u2028") && !strings.Contains(s, "\u2029"))
}

// appendString quotes s as encoding/json does with HTML escaping (its
// default): <, > and & as \u003c…, U+2028/U+2029 escaped, invalid UTF-8
// as U+FFFD.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	if plainJSON(s) {
		b = append(b, s...)
		return append(b, '"')
	}
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// DecodeJSON decodes b into ev exactly as json.Unmarshal(b, ev) would
// (fields absent from b are left alone; a non-nil ev.Data is reused).
// Records as AppendJSON and json.Marshal write them take a fast path
// without reflection; anything else — whitespace, escapes, nulls, keys
// that are unknown or differently cased — goes to json.Unmarshal.
func (ev *Event) DecodeJSON(b []byte) error {
	if ev.decodeFast(b) {
		return nil
	}
	return json.Unmarshal(b, ev)
}

type jsonPair struct{ k, v string }

// decodeFast reports whether it could decode b; it changes ev only then.
func (ev *Event) decodeFast(b []byte) bool {
	out := *ev
	var arr [8]jsonPair
	data, hasData := arr[:0], false
	if len(b) < 2 || b[0] != '{' {
		return false
	}
	p := b[1:]
	if p[0] == '}' {
		return len(p) == 1
	}
	// Keys and most values are compared or parsed as bytes; only the
	// strings an Event keeps are allocated, and the event type and the
	// usual data keys come from constants (the report folds ~24 000
	// events a second at full load; the keys were a third of what decoding
	// allocated).
	for {
		key, rest, ok := scanRaw(p)
		if !ok || len(rest) == 0 || rest[0] != ':' {
			return false
		}
		p = rest[1:]
		if string(key) == "data" {
			if len(p) < 2 || p[0] != '{' {
				return false
			}
			hasData = true // a repeated key adds to the map, as json does
			p = p[1:]
			if p[0] == '}' {
				p = p[1:]
			} else {
				for {
					k, rest, ok := scanRaw(p)
					if !ok || len(rest) == 0 || rest[0] != ':' {
						return false
					}
					v, rest, ok := scanRaw(rest[1:])
					if !ok || len(rest) == 0 {
						return false
					}
					data = append(data, jsonPair{dataKey(k), string(v)})
					p = rest[1:]
					if rest[0] == '}' {
						break
					}
					if rest[0] != ',' {
						return false
					}
				}
			}
		} else {
			raw := p
			val, rest, ok := scanRaw(p)
			if !ok {
				return false
			}
			p = rest
			switch string(key) {
			case "id":
				out.ID = string(val)
			case "type":
				out.Type = eventType(val)
			case "at":
				if out.At.UnmarshalJSON(raw[:len(raw)-len(rest)]) != nil {
					return false
				}
			case "conv":
				out.Conv = ConvID(val)
			case "customer":
				out.Customer = CustomerID(val)
			case "store":
				out.Store = StoreID(val)
			case "channel":
				out.Channel = string(val)
			case "agent":
				out.Agent = string(val)
			case "actor":
				out.Actor = string(val)
			case "reason":
				out.Reason = string(val)
			default:
				return false
			}
		}
		if len(p) == 0 {
			return false
		}
		if p[0] == '}' {
			if len(p) != 1 {
				return false
			}
			break
		}
		if p[0] != ',' {
			return false
		}
		p = p[1:]
	}
	if hasData {
		if out.Data == nil {
			out.Data = make(map[string]string, len(data))
		}
		for _, kv := range data {
			out.Data[kv.k] = kv.v
		}
	}
	*ev = out
	return true
}

// scanRaw reads a JSON string at the start of p that needs no
// unescaping (no backslash, no control character, valid UTF-8) and
// returns it and what follows; ok is false for anything else.
// The bytes returned alias p.
func scanRaw(p []byte) (s, rest []byte, ok bool) {
	if len(p) == 0 || p[0] != '"' {
		return nil, nil, false
	}
	ascii := true
	for i := 1; i < len(p); i++ {
		switch c := p[i]; {
		case c == '"':
			if !ascii && !utf8.Valid(p[1:i]) {
				return nil, nil, false
			}
			return p[1:i], p[i+1:], true
		case c == '\\' || c < 0x20:
			return nil, nil, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return nil, nil, false
}

// knownEventTypes maps every EventType the product emits to itself, so
// decoding one allocates nothing.
var knownEventTypes = func() map[string]EventType {
	m := map[string]EventType{}
	for _, t := range []EventType{EvMessageReceived, EvBotAnswered, EvBotClarify, EvBotFallback, EvHandoffRequested,
		EvQueued, EvAssigned, EvAccepted, EvTransferred, EvAgentReply, EvClosed, EvAbandoned, EvSurveyScheduled,
		EvSurveySent, EvSurveyNotSent, EvSurveyAnswered, EvCaseOpened, EvCaseContacted, EvCaseEscalated, EvCaseClosed,
		EvOutboundSent, EvOutboundFailed, EvTicketCreated, EvAgentStatus, EvOfferTimeout, EvNoReplyWarning, EvNote} {
		m[string(t)] = t
	}
	return m
}()

func eventType(b []byte) EventType {
	if t, ok := knownEventTypes[string(b)]; ok {
		return t
	}
	return EventType(b)
}

// dataKey returns the usual Event.Data keys as constants (no allocation),
// anything else as a new string.
func dataKey(b []byte) string {
	switch string(b) {
	case "kind":
		return "kind"
	case "msg_id":
		return "msg_id"
	case "origin":
		return "origin"
	case "entry":
		return "entry"
	case "score":
		return "score"
	case "reason":
		return "reason"
	case "survey":
		return "survey"
	case "id":
		return "id"
	case "source":
		return "source"
	case "case":
		return "case"
	case "outcome":
		return "outcome"
	}
	return string(b)
}
