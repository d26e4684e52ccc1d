package conv

import (
	"slices"
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

// appendString quotes s as encoding/json does with HTML escaping (its
// default): <, > and & as \u003c…, U+2028/U+2029 escaped, invalid UTF-8
// as U+FFFD.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
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
