package engine

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
	"sync"
)

// On-disk format (WAL and snapshot share it):
//
//	frame   = len:uint32le crc:uint32le payload[len]
//	payload = op*
//	op      = code:byte fields…
//
// crc is CRC-32C of payload. Strings and byte slices are uvarint-length
// prefixed; integers are (u)varints; scores are float64 bits. Ops are
// physical ("key k now holds v until t"), never logical ("add 1"), so replay
// does not depend on the clock or on decisions made at write time. A frame is
// the unit of atomicity: a torn frame is dropped whole, so multi-key calls
// (Update, ClaimAndEnqueue, Claim) encode all their ops in one frame.

const frameHeader = 8

// maxFrame bounds a frame's length so a corrupt length field cannot make
// recovery allocate gigabytes.
const maxFrame = 1 << 30

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// Op codes. Values are part of the file format: never renumber.
const (
	opSet      byte = 1  // key, val, expireAt(unix ns, 0 = none)
	opDel      byte = 2  // key
	opHSet     byte = 3  // key, n, (field, val)*
	opHDel     byte = 4  // key, n, field*
	opZAdd     byte = 5  // key, n, (member, score)*
	opZRem     byte = 6  // key, n, member*
	opQPut     byte = 7  // queue, id, data, due(ms): keeps attempts of an existing job
	opQJob     byte = 8  // queue, id, data, due(ms), attempts: full job (snapshots)
	opQClaim   byte = 9  // queue, due(ms), n, (id, attempts)*
	opQDel     byte = 10 // queue, id
	opXAdd     byte = 11 // log, ms, seq, data
	opXTrim    byte = 12 // log, minMs
	opXMeta    byte = 13 // log, lastMs, lastSeq (snapshots: keeps IDs monotonic after trims)
	opEnd      byte = 14 // snapshot trailer
	opXCold    byte = 15 // log, ms, seq, seg, off, len, crc: a record kept in a cold segment file (snapshots)
	opSApp     byte = 16 // key, data, expireAt, fresh: key now holds (fresh ? "" : its value) + data
	opXBlock   byte = 18 // log, firstMs, firstSeq, lastMs, lastSeq, seg, off, len, crc, count, skip, msDelta: a block of records in a cold segment file (snapshots)
	opSCold    byte = 17 // key, expireAt, n, (seg, off, len, crc)*, tail: a string whose leading bytes are in cold segment files (snapshots)
	opSColdKey byte = 19 // keyHash(16 bytes), expireAt, seg, off, len, crc: a string wholly in a cold segment file, known by its key's hash (snapshots; embedded_coldkey.go)
)

var errCorrupt = errors.New("engine: corrupt record")

// enc builds one frame. The first frameHeader bytes are reserved and filled
// by finish.
type enc struct{ b []byte }

// newFrame returns an empty frame with room for sizeHint payload bytes.
// Frames of live calls are recycled (freeFrame) once the WAL buffer and
// the state have copied what they need: every mutation builds one, and
// allocating it was the engine's largest source of garbage. Pools are
// kept per size class: with one pool, the batch writers (events, bot
// journal: 2–30 KB frames) mostly drew a small frame of a single-key
// write, dropped it and allocated anew.
func newFrame(sizeHint int) *enc {
	need := frameHeader + max(sizeHint, 0)
	c := frameClassFor(need)
	if c < 0 {
		return &enc{b: make([]byte, frameHeader, need)}
	}
	if e, _ := framePools[c].Get().(*enc); e != nil {
		e.b = e.b[:frameHeader]
		return e
	}
	return &enc{b: make([]byte, frameHeader, frameClasses[c])}
}

// frameClasses are the pooled frame capacities; larger frames (a bulk
// HSet, a snapshot-sized batch) are allocated and left to the collector,
// so that one large value does not pin a large buffer.
var frameClasses = [...]int{512, 4 << 10, 32 << 10, 256 << 10}

var framePools [len(frameClasses)]sync.Pool

// frameClassFor returns the smallest class holding n bytes, -1 if none.
func frameClassFor(n int) int {
	for i, c := range frameClasses {
		if n <= c {
			return i
		}
	}
	return -1
}

// freeFrame recycles f; the caller must not use it afterwards. A frame
// goes to the largest class its capacity fills (one that grew past its
// class serves the next class up), none if it outgrew them all.
func freeFrame(f *enc) {
	if f == nil || cap(f.b) > 2*frameClasses[len(frameClasses)-1] {
		return
	}
	for i := len(frameClasses) - 1; i >= 0; i-- {
		if cap(f.b) >= frameClasses[i] {
			framePools[i].Put(f)
			return
		}
	}
}

func (e *enc) op(c byte)       { e.b = append(e.b, c) }
func (e *enc) uv(x uint64)     { e.b = binary.AppendUvarint(e.b, x) }
func (e *enc) sv(x int64)      { e.b = binary.AppendVarint(e.b, x) }
func (e *enc) bytes(p []byte)  { e.uv(uint64(len(p))); e.b = append(e.b, p...) }
func (e *enc) str(s string)    { e.uv(uint64(len(s))); e.b = append(e.b, s...) }
func (e *enc) f64(f float64)   { e.b = binary.LittleEndian.AppendUint64(e.b, math.Float64bits(f)) }
func (e *enc) payloadLen() int { return len(e.b) - frameHeader }
func (e *enc) payload() []byte { return e.b[frameHeader:] }
func (e *enc) reset()          { e.b = e.b[:frameHeader] }
func (e *enc) empty() bool     { return len(e.b) == frameHeader }
func (e *enc) finish() []byte {
	p := e.b[frameHeader:]
	binary.LittleEndian.PutUint32(e.b[0:4], uint32(len(p)))
	binary.LittleEndian.PutUint32(e.b[4:8], crc32.Checksum(p, crcTable))
	return e.b
}

// dec reads ops from a payload. The first error sticks; accessors then
// return zero values, so callers check d.err once per op.
type dec struct {
	b   []byte
	err error
	// keyNext makes the next str() the op's key and records it in key;
	// live calls use it to learn which keys a frame touched.
	keyNext bool
	key     string
}

func (d *dec) fail() { d.err = errCorrupt; d.b = nil }

func (d *dec) byte() byte {
	if len(d.b) < 1 {
		d.fail()
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *dec) uv() uint64 {
	x, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return x
}

func (d *dec) sv() int64 {
	x, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return x
}

// raw returns a slice aliasing the payload.
func (d *dec) raw() []byte {
	n := d.uv()
	if d.err != nil || n > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	p := d.b[:n:n]
	d.b = d.b[n:]
	return p
}

// bytes returns a copy, safe to keep in state after the buffer is reused.
func (d *dec) bytes() []byte {
	p := d.raw()
	if d.err != nil {
		return nil
	}
	return append(make([]byte, 0, len(p)), p...)
}

func (d *dec) str() string {
	s := string(d.raw())
	if d.keyNext {
		d.keyNext, d.key = false, s
	}
	return s
}

func (d *dec) f64() float64 {
	if len(d.b) < 8 {
		d.fail()
		return 0
	}
	f := math.Float64frombits(binary.LittleEndian.Uint64(d.b))
	d.b = d.b[8:]
	return f
}

// count reads a length prefix, bounded by the bytes left so a corrupt value
// cannot trigger a huge allocation.
func (d *dec) count() int {
	n := d.uv()
	if n > uint64(len(d.b)) {
		d.fail()
		return 0
	}
	return int(n)
}

// nextFrame parses the frame at the start of b. It returns the payload and
// the frame's total size, or ok=false if the frame is incomplete or its CRC
// does not match (a torn write).
func nextFrame(b []byte) (payload []byte, size int, ok bool) {
	if len(b) < frameHeader {
		return nil, 0, false
	}
	n := binary.LittleEndian.Uint32(b[0:4])
	sum := binary.LittleEndian.Uint32(b[4:8])
	// n == 0 is never written; refusing it keeps a zero-filled tail (see
	// segment) from reading as a run of empty frames.
	if n == 0 || n > maxFrame || uint64(n) > uint64(len(b)-frameHeader) {
		return nil, 0, false
	}
	p := b[frameHeader : frameHeader+int(n)]
	if crc32.Checksum(p, crcTable) != sum {
		return nil, 0, false
	}
	return p, frameHeader + int(n), true
}
