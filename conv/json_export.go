package conv

import "time"

// AppendJSONString appends s quoted exactly as json.Marshal quotes a string
// (HTML escaping, U+2028/U+2029 escaped, invalid UTF-8 as U+FFFD), for
// other packages' hand-written encoders.
func AppendJSONString(b []byte, s string) []byte { return appendString(b, s) }

// AppendJSONTime appends t exactly as json.Marshal encodes a time.Time.
func AppendJSONTime(b []byte, t time.Time) []byte { return appendTime(b, t) }

// AppendJSONField appends `,"name":"v"` as json.Marshal encodes a string
// field tagged omitempty: nothing when v is empty.
func AppendJSONField(b []byte, name, v string) []byte { return appendField(b, name, v) }
