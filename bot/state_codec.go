package bot

import (
	"encoding/binary"
	"encoding/json"

	"kefu/conv"
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
		b = conv.AppendString(b, p)
	}
	b = conv.AppendString(b, m.PendingQuestion)
	b = binary.AppendVarint(b, int64(m.Misses))
	b = conv.AppendString(b, m.RateEntry)
	return conv.AppendString(b, m.RateQuestion)
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
	d := conv.NewBinDecoder(b)
	if n := d.Count(); n > 0 {
		m.Pending = make([]string, n)
		for i := range m.Pending {
			m.Pending[i] = d.Str()
		}
	}
	m.PendingQuestion = d.Str()
	m.Misses = int(d.Varint())
	m.RateEntry = d.Str()
	m.RateQuestion = d.Str()
	if !d.OK() || d.Len() != 0 {
		return Memory{}, false
	}
	return m, true
}
