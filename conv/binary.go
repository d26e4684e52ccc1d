package conv

import "encoding/binary"

// Small binary records (bot memory, bot contacts) are rewritten on every
// message, so the domains store them in a compact form instead of JSON:
// strings as a uvarint length and their bytes, counts as uvarints,
// integers as zigzag varints (encoding/binary). AppendString and
// BinDecoder are the one implementation of that form, so every record
// built from it encodes the same way byte for byte.

// AppendString appends s to b as a uvarint length followed by its bytes.
func AppendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// BinDecoder reads what AppendString, binary.AppendUvarint and
// binary.AppendVarint wrote. The first malformed or truncated value makes
// it fail for good: that read and every later one return the zero value
// and OK reports false, so a decoder reads a whole record and checks OK
// once at the end.
type BinDecoder struct {
	b   []byte
	bad bool
}

// NewBinDecoder returns a decoder reading b from its start. It returns a
// value, not a pointer, so a decoder on the hot path stays on the stack.
func NewBinDecoder(b []byte) BinDecoder { return BinDecoder{b: b} }

// OK reports whether every read so far succeeded.
func (d *BinDecoder) OK() bool { return !d.bad }

// Len is the number of bytes not yet read (0 after a failure).
func (d *BinDecoder) Len() int { return len(d.b) }

func (d *BinDecoder) fail() {
	d.bad, d.b = true, nil
}

// Uvarint reads an unsigned varint.
func (d *BinDecoder) Uvarint() uint64 {
	v, k := binary.Uvarint(d.b)
	if k <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[k:]
	return v
}

// Varint reads a zigzag-encoded signed varint.
func (d *BinDecoder) Varint() int64 {
	v, k := binary.Varint(d.b)
	if k <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[k:]
	return v
}

// Count reads a uvarint element count. Every element takes at least one
// byte, so a count larger than the bytes left is corrupt: it fails rather
// than let a caller allocate for it.
func (d *BinDecoder) Count() int {
	n := d.Uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return 0
	}
	return int(n)
}

// Str reads a string written by AppendString. (Not String: fmt would take
// a consuming read for a Stringer.)
func (d *BinDecoder) Str() string {
	n := d.Uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}
