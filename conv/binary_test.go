package conv

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// binRecord is a record of every kind the helpers read: a string, a count
// of strings, a signed and an unsigned integer.
type binRecord struct {
	s    string
	list []string
	i    int64
	u    uint64
}

func (r binRecord) append(b []byte) []byte {
	b = AppendString(b, r.s)
	b = binary.AppendUvarint(b, uint64(len(r.list)))
	for _, e := range r.list {
		b = AppendString(b, e)
	}
	b = binary.AppendVarint(b, r.i)
	return binary.AppendUvarint(b, r.u)
}

func decodeBinRecord(b []byte) (binRecord, bool) {
	var r binRecord
	d := NewBinDecoder(b)
	r.s = d.Str()
	if n := d.Count(); n > 0 {
		r.list = make([]string, n)
		for i := range r.list {
			r.list[i] = d.Str()
		}
	}
	r.i = d.Varint()
	r.u = d.Uvarint()
	return r, d.OK() && d.Len() == 0
}

func (r binRecord) equal(o binRecord) bool {
	if r.s != o.s || r.i != o.i || r.u != o.u || len(r.list) != len(o.list) {
		return false
	}
	for i := range r.list {
		if r.list[i] != o.list[i] {
			return false
		}
	}
	return true
}

var binRecords = []binRecord{
	{},
	{s: "怎么退货", list: []string{"kb-1", "", "kb-2"}, i: -3, u: 7},
	{s: "q\x00\xff", i: 1 << 40, u: 1<<64 - 1},
	{s: string(make([]byte, 300)), list: []string{"x"}, i: -1 << 63},
}

func TestAppendString_Layout(t *testing.T) {
	// The stored form: uvarint length, then the bytes. Records in
	// databases depend on it never changing.
	for _, tc := range []struct {
		s    string
		want []byte
	}{
		{"", []byte{0}},
		{"a", []byte{1, 'a'}},
		{"中", []byte{3, 0xe4, 0xb8, 0xad}},
		{string(make([]byte, 128)), append([]byte{0x80, 0x01}, make([]byte, 128)...)},
	} {
		if got := AppendString([]byte{9}, tc.s); !bytes.Equal(got, append([]byte{9}, tc.want...)) {
			t.Errorf("AppendString(%q) = %x, want 09%x", tc.s, got, tc.want)
		}
	}
}

func TestBinDecoder_RoundTrip(t *testing.T) {
	for _, r := range binRecords {
		b := r.append(nil)
		got, ok := decodeBinRecord(b)
		if !ok || !got.equal(r) {
			t.Fatalf("%+v: decoded %+v, ok %v", r, got, ok)
		}
		// Every truncation fails instead of being misread.
		for i := range len(b) {
			if _, ok := decodeBinRecord(b[:i]); ok {
				t.Fatalf("%+v: truncation to %d bytes accepted", r, i)
			}
		}
	}
}

func TestBinDecoder_FailureSticks(t *testing.T) {
	// A string claiming 5 bytes with 1 left fails, and so does
	// everything after it, even what would parse on its own.
	d := NewBinDecoder([]byte{5, 'a', 1, 'b'})
	if s := d.Str(); s != "" || d.OK() {
		t.Fatalf("short string read %q, ok %v", s, d.OK())
	}
	if s, n := d.Str(), d.Uvarint(); s != "" || n != 0 || d.OK() || d.Len() != 0 {
		t.Fatalf("reads after a failure: %q %d ok %v len %d", s, n, d.OK(), d.Len())
	}
	// A count larger than the bytes left is corrupt.
	d = NewBinDecoder([]byte{3, 0, 0})
	if n := d.Count(); n != 0 || d.OK() {
		t.Fatalf("count 3 over 2 bytes: %d, ok %v", n, d.OK())
	}
	// An overlong varint (11 bytes) fails.
	d = NewBinDecoder(bytes.Repeat([]byte{0x80}, 11))
	if d.Varint(); d.OK() {
		t.Fatal("overlong varint accepted")
	}
}

func FuzzBinDecoder(f *testing.F) {
	for _, r := range binRecords {
		f.Add(r.append(nil))
	}
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, ok := decodeBinRecord(b)
		if !ok {
			return
		}
		// What decodes re-encodes to something that decodes the same
		// (the input may hold overlong varints, so compare values).
		if got, ok := decodeBinRecord(r.append(nil)); !ok || !got.equal(r) {
			t.Fatalf("%x decoded to %+v, then to %+v", b, r, got)
		}
	})
}
