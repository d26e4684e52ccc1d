package bot

import (
	"encoding/binary"
	"encoding/json"
)

// Memory is read and written on every message. It used to be stored as
// JSON, whose reflection-based decoding was a visible share of the bot's
// CPU; it is now stored in a compact binary form that starts with a
// version byte no JSON text starts with, so values written by older
// versions (JSON, always starting with '{') still load.
//
// Layout of version 1: memV1, uvarint count of Pending, then Pending,
// PendingQuestion, a zigzag varint Misses, RateEntry and RateQuestion,
// each string as a uvarint length and its bytes.
const memV1 = 0x01

// appendBinary appends m's binary encoding to b.
func (m *Memory) appendBinary(b []byte) []byte {
	b = append(b, memV1)
	b = binary.AppendUvarint(b, uint64(len(m.Pending)))
	for _, p := range m.Pending {
		b = appendStr(b, p)
	}
	b = appendStr(b, m.PendingQuestion)
	b = binary.AppendVarint(b, int64(m.Misses))
	b = appendStr(b, m.RateEntry)
	return appendStr(b, m.RateQuestion)
}

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// encodeMemory is the stored form of m.
func encodeMemory(m *Memory) []byte {
	n := 16 + len(m.PendingQuestion) + len(m.RateEntry) + len(m.RateQuestion)
	for _, p := range m.Pending {
		n += len(p) + 2
	}
	return m.appendBinary(make([]byte, 0, n))
}

// decodeMemory reads a stored Memory in either form; ok is false when b is
// neither (the caller starts afresh).
func decodeMemory(b []byte) (m Memory, ok bool) {
	if len(b) > 0 && b[0] == memV1 {
		return decodeMemoryV1(b[1:])
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return Memory{}, false
	}
	return m, true
}

func decodeMemoryV1(b []byte) (Memory, bool) {
	var m Memory
	d := memDecoder{b: b, ok: true}
	n := d.uvarint()
	if n > uint64(len(d.b)) { // every entry takes at least one byte
		return Memory{}, false
	}
	if n > 0 {
		m.Pending = make([]string, n)
		for i := range m.Pending {
			m.Pending[i] = d.str()
		}
	}
	m.PendingQuestion = d.str()
	misses, k := binary.Varint(d.b)
	if k <= 0 {
		return Memory{}, false
	}
	d.b = d.b[k:]
	m.Misses = int(misses)
	m.RateEntry = d.str()
	m.RateQuestion = d.str()
	if !d.ok || len(d.b) != 0 {
		return Memory{}, false
	}
	return m, true
}

type memDecoder struct {
	b  []byte
	ok bool
}

func (d *memDecoder) uvarint() uint64 {
	v, k := binary.Uvarint(d.b)
	if k <= 0 {
		d.ok, d.b = false, nil
		return 0
	}
	d.b = d.b[k:]
	return v
}

func (d *memDecoder) str() string {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.ok, d.b = false, nil
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}
