package engine

import (
	"cmp"
	"io"
	"maps"
	"sort"
	"strings"
	"sync/atomic"
)

// kind is the type of value a key holds (one keyspace, like Redis).
type kind uint8

const (
	kindString kind = iota + 1
	kindHash
	kindZSet
	kindLog
)

type entry struct {
	kind kind
	// lastUse is the string-scan generation of the entry's last write or
	// read (embedded_coldstr.go); atomic because readers share the lock.
	lastUse  atomic.Uint32
	expireAt int64 // unix ns; 0 = no expiry (only strings get TTLs)
	// str is a string's value, or for a cold string (cold != nil) the
	// bytes after its parts on disk.
	str  []byte
	cold *coldStr
	hash map[string][]byte
	zset *zset
	log  *stream
}

type zkey struct {
	score  float64
	member string
}

func cmpZKey(a, b zkey) int {
	if c := cmp.Compare(a.score, b.score); c != 0 {
		return c
	}
	return strings.Compare(a.member, b.member)
}

type zset struct {
	scores map[string]float64
	order  *skiplist[zkey]
}

func newZSet() *zset {
	return &zset{scores: map[string]float64{}, order: newSkiplist(cmpZKey)}
}

func (z *zset) add(member string, score float64) {
	if old, ok := z.scores[member]; ok {
		if old == score {
			return
		}
		z.order.delete(zkey{old, member})
	}
	z.scores[member] = score
	z.order.insert(zkey{score, member})
}

func (z *zset) rem(member string) bool {
	old, ok := z.scores[member]
	if !ok {
		return false
	}
	delete(z.scores, member)
	z.order.delete(zkey{old, member})
	return true
}

type logRec struct {
	ms, seq uint64
	data    []byte
}

// coldRec is a log record whose data was moved to a cold segment file
// (embedded_cold.go); only its ID and where to read it stay in memory.
type coldRec struct {
	ms, seq uint64
	seg     uint32 // cold-<seg>.seg
	off, n  uint32 // data position and length in the file
	crc     uint32 // CRC-32C of the data, checked on read
}

// stream is an append-only log: cold records of older versions' segments
// (oldest, data on disk), cold blocks (embedded_coldblock.go), then hot
// records (data in memory). The slices are only ever appended to or
// replaced by a copy, never changed in place, so a frozen snapshot can
// share them.
type stream struct {
	cold            []coldRec
	blocks          []coldBlock
	blockRecs       int // records in blocks, skipped ones excluded
	recs            []logRec
	hot             int64 // data bytes in recs
	lastMs, lastSeq uint64
}

func (s *stream) len() int { return len(s.cold) + s.blockRecs + len(s.recs) }

// firstMs is the time of the oldest record.
func (s *stream) firstMs() (uint64, bool) {
	switch {
	case len(s.cold) > 0:
		return s.cold[0].ms, true
	case len(s.blocks) > 0:
		return s.blocks[0].msAt(s.blocks[0].skip), true
	case len(s.recs) > 0:
		return s.recs[0].ms, true
	}
	return 0, false
}

func (s *stream) trim(minMs uint64) {
	if i := sort.Search(len(s.cold), func(i int) bool { return s.cold[i].ms >= minMs }); i > 0 {
		s.cold = append(s.cold[:0:0], s.cold[i:]...)
	}
	if len(s.cold) > 0 {
		return
	}
	if j := sort.Search(len(s.blocks), func(i int) bool { return s.blocks[i].lastMs >= minMs }); j > 0 {
		for _, b := range s.blocks[:j] {
			s.blockRecs -= b.live()
		}
		s.blocks = append(s.blocks[:0:0], s.blocks[j:]...)
	}
	if len(s.blocks) > 0 {
		// The first block holds the cut (its last record is kept): skip the
		// records before it, in a copy (a frozen snapshot may share the slice).
		if k := s.blocks[0].countBefore(minMs); k > s.blocks[0].skip {
			s.blockRecs -= int(k - s.blocks[0].skip)
			s.blocks = append(s.blocks[:0:0], s.blocks...)
			s.blocks[0].skip = k
		}
		return
	}
	i := sort.Search(len(s.recs), func(i int) bool { return s.recs[i].ms >= minMs })
	if i == 0 {
		return
	}
	for _, r := range s.recs[:i] {
		s.hot -= int64(len(r.data))
	}
	// Copy the survivors down so the trimmed records' memory is released.
	s.recs = append(s.recs[:0:0], s.recs[i:]...)
}

type qkey struct {
	due int64 // unix ms
	id  string
}

func cmpQKey(a, b qkey) int {
	if c := cmp.Compare(a.due, b.due); c != 0 {
		return c
	}
	return strings.Compare(a.id, b.id)
}

type qjob struct {
	data     []byte
	due      int64 // unix ms
	attempts int
}

type queue struct {
	jobs map[string]*qjob
	due  *skiplist[qkey]
}

func newQueue() *queue {
	return &queue{jobs: map[string]*qjob{}, due: newSkiplist(cmpQKey)}
}

// state is the embedded engine's in-memory data. It is not synchronized:
// Embedded guards it with its RWMutex.
type state struct {
	keys     map[string]*entry
	queues   map[string]*queue
	expiring map[string]struct{} // keys whose entry has expireAt != 0
	// hotLimit is the in-memory data a log may hold before its oldest
	// records are moved to disk (0: never); overLimit collects the logs
	// that passed it since the last spill.
	hotLimit  int64
	overLimit map[string]struct{}
	spillDue  atomic.Bool // overLimit is not empty, or a string scan is due (read without the lock)
	// String scans (embedded_coldstr.go): one after every strSpillEvery
	// bytes of string values written (0: never); gen counts them.
	// strWriting lists the keys of the strings written in this generation,
	// strWaiting those of the one before.
	strSpillEvery, strWritten int64
	gen                       uint32
	strWriting, strWaiting    []string
	// coldKeys holds the strings that are wholly on disk by a hash of
	// their key (embedded_coldkey.go); a key is here or in keys.
	coldKeys map[keyHash]coldKey
}

func newState() *state {
	return &state{
		keys:      map[string]*entry{},
		queues:    map[string]*queue{},
		expiring:  map[string]struct{}{},
		overLimit: map[string]struct{}{},
		coldKeys:  map[keyHash]coldKey{},
	}
}

// live returns key's entry unless it is absent or expired. Expired entries
// are left for the sweeper so reads can run under a read lock.
// A cold key comes back as a transient entry that must not be written to.
func (s *state) live(key string, now int64) *entry {
	e := s.lookup(key)
	if e == nil || (e.expireAt != 0 && e.expireAt <= now) {
		return nil
	}
	return e
}

// lookup returns key's entry, expired or not, from keys or (transient) from
// coldKeys.
func (s *state) lookup(key string) *entry {
	if e := s.keys[key]; e != nil {
		return e
	}
	if c, ok := s.coldKeyOf(key); ok {
		return c.entry()
	}
	return nil
}

func (s *state) put(key string, e *entry) {
	e.lastUse.Store(s.gen)
	if _, ok := s.keys[key]; !ok && len(s.coldKeys) > 0 {
		delete(s.coldKeys, hashKey(key))
	}
	s.keys[key] = e
	if e.expireAt != 0 {
		s.expiring[key] = struct{}{}
	} else {
		delete(s.expiring, key)
	}
}

func (s *state) del(key string) {
	if _, ok := s.keys[key]; !ok && len(s.coldKeys) > 0 {
		delete(s.coldKeys, hashKey(key))
	}
	delete(s.keys, key)
	delete(s.expiring, key)
}

// ofKind returns key's entry if it holds kind k, replacing any other value.
// Replay is blind: the live call already checked types and expiry, so a
// mismatching entry here can only be one that had expired.
func (s *state) ofKind(key string, k kind) *entry {
	e := s.keys[key]
	if e != nil && e.kind == k && e.expireAt == 0 {
		return e
	}
	e = &entry{kind: k}
	switch k {
	case kindHash:
		e.hash = map[string][]byte{}
	case kindZSet:
		e.zset = newZSet()
	case kindLog:
		e.log = &stream{}
	}
	s.put(key, e)
	return e
}

func (s *state) queue(name string) *queue {
	q := s.queues[name]
	if q == nil {
		q = newQueue()
		s.queues[name] = q
	}
	return q
}

// applyPayload applies every op of one frame. end reports a snapshot trailer.
func (s *state) applyPayload(p []byte) (end bool, err error) {
	return s.applyPayloadKeys(p, nil)
}

// applyPayloadKeys applies a payload and, when touched is non-nil, calls
// it with the key of every op (every op's first field is its key).
func (s *state) applyPayloadKeys(p []byte, touched func(key string)) (end bool, err error) {
	d := &dec{b: p}
	for len(d.b) > 0 && d.err == nil {
		d.keyNext = touched != nil
		if s.applyOp(d) {
			end = true
		}
		if touched != nil && d.key != "" {
			touched(d.key)
			d.key = ""
		}
	}
	return end, d.err
}

func (s *state) applyOp(d *dec) (end bool) {
	switch code := d.byte(); code {
	case opSet:
		key, val, exp := d.str(), d.bytes(), d.sv()
		if d.err == nil {
			s.put(key, &entry{kind: kindString, str: val, expireAt: exp})
			s.noteStrWrite(key, len(val), len(val))
		}
	case opSApp:
		// fresh records whether the live call found no value: an expired
		// value may still be in memory (sweeps are not logged), and it
		// must not come back to life under the appended bytes.
		key, data, exp, fresh := d.str(), d.raw(), d.sv(), d.byte()
		if d.err != nil {
			return
		}
		var prev *entry
		if e := s.lookup(key); fresh == 0 && e != nil && e.kind == kindString {
			prev = e
		}
		ne := &entry{kind: kindString, expireAt: exp}
		if prev == nil {
			ne.str = appendValue(nil, data)
			s.put(key, ne)
		} else {
			ne.str, ne.cold = appendValue(prev.str, data), prev.cold
			s.put(key, ne)
			// An append is not a use: a value that only grows (a
			// transcript nobody reads) may still move to disk.
			ne.lastUse.Store(prev.lastUse.Load())
		}
		s.noteStrWrite(key, len(ne.str), len(data))
	case opSCold:
		key, exp, n := d.str(), d.sv(), d.count()
		if d.err != nil {
			return
		}
		cs := &coldStr{parts: make([]coldPart, 0, n)}
		for i := 0; i < n && d.err == nil; i++ {
			p := coldPart{seg: uint32(d.uv()), off: uint32(d.uv()), n: uint32(d.uv()), crc: uint32(d.uv())}
			cs.parts = append(cs.parts, p)
			cs.n += int64(p.n)
		}
		tail := d.bytes()
		if d.err == nil {
			s.put(key, &entry{kind: kindString, str: tail, cold: cs, expireAt: exp})
		}
	case opSColdKey:
		var h keyHash
		if raw := d.raw(); len(raw) == len(h) {
			copy(h[:], raw)
		} else {
			d.fail()
		}
		exp := d.sv()
		p := coldPart{seg: uint32(d.uv()), off: uint32(d.uv()), n: uint32(d.uv()), crc: uint32(d.uv())}
		if d.err == nil {
			s.coldKeys[h] = coldKey{part: p, expireAt: exp}
		}
	case opDel:
		key := d.str()
		if d.err == nil {
			s.del(key)
		}
	case opHSet:
		key, n := d.str(), d.count()
		if d.err != nil {
			return
		}
		e := s.ofKind(key, kindHash)
		for i := 0; i < n && d.err == nil; i++ {
			f, v := d.str(), d.bytes()
			e.hash[f] = v
		}
	case opHDel:
		key, n := d.str(), d.count()
		e := s.keys[key]
		for i := 0; i < n && d.err == nil; i++ {
			f := d.str()
			if e != nil && e.kind == kindHash {
				delete(e.hash, f)
			}
		}
		if e != nil && e.kind == kindHash && len(e.hash) == 0 {
			s.del(key)
		}
	case opZAdd:
		key, n := d.str(), d.count()
		if d.err != nil {
			return
		}
		e := s.ofKind(key, kindZSet)
		for i := 0; i < n && d.err == nil; i++ {
			m, sc := d.str(), d.f64()
			if d.err == nil {
				e.zset.add(m, sc)
			}
		}
	case opZRem:
		key, n := d.str(), d.count()
		e := s.keys[key]
		for i := 0; i < n && d.err == nil; i++ {
			m := d.str()
			if e != nil && e.kind == kindZSet {
				e.zset.rem(m)
			}
		}
		if e != nil && e.kind == kindZSet && len(e.zset.scores) == 0 {
			s.del(key)
		}
	case opQPut, opQJob:
		name, id, data, due := d.str(), d.str(), d.bytes(), d.sv()
		attempts := -1
		if code == opQJob {
			attempts = int(d.uv())
		}
		if d.err != nil {
			return
		}
		q := s.queue(name)
		j := q.jobs[id]
		if j == nil {
			j = &qjob{due: due}
			q.jobs[id] = j
			q.due.insert(qkey{due, id})
		} else if j.due != due {
			q.due.delete(qkey{j.due, id})
			j.due = due
			q.due.insert(qkey{due, id})
		}
		j.data = data
		if attempts >= 0 {
			j.attempts = attempts
		}
	case opQClaim:
		name, due, n := d.str(), d.sv(), d.count()
		q := s.queues[name]
		for i := 0; i < n && d.err == nil; i++ {
			id, attempts := d.str(), int(d.uv())
			if d.err != nil || q == nil {
				continue
			}
			if j := q.jobs[id]; j != nil {
				if j.due != due {
					q.due.delete(qkey{j.due, id})
					j.due = due
					q.due.insert(qkey{due, id})
				}
				j.attempts = attempts
			}
		}
	case opQDel:
		name, id := d.str(), d.str()
		if d.err != nil {
			return
		}
		if q := s.queues[name]; q != nil {
			if j := q.jobs[id]; j != nil {
				q.due.delete(qkey{j.due, id})
				delete(q.jobs, id)
			}
			if len(q.jobs) == 0 {
				delete(s.queues, name)
			}
		}
	case opXAdd:
		key, ms, seq, data := d.str(), d.uv(), d.uv(), d.bytes()
		if d.err != nil {
			return
		}
		l := s.ofKind(key, kindLog).log
		l.recs = append(l.recs, logRec{ms: ms, seq: seq, data: data})
		l.hot += int64(len(data))
		l.lastMs, l.lastSeq = ms, seq
		if s.hotLimit > 0 && l.hot > s.hotLimit {
			s.overLimit[key] = struct{}{}
			s.spillDue.Store(true)
		}
	case opXCold:
		key, ms, seq, seg, off, n, crc := d.str(), d.uv(), d.uv(), d.uv(), d.uv(), d.uv(), d.uv()
		if d.err != nil {
			return
		}
		l := s.ofKind(key, kindLog).log
		l.cold = append(l.cold, coldRec{ms: ms, seq: seq, seg: uint32(seg), off: uint32(off), n: uint32(n), crc: uint32(crc)})
		l.lastMs, l.lastSeq = ms, seq
	case opXBlock:
		key := d.str()
		b := coldBlock{firstMs: d.uv(), firstSeq: d.uv(), lastMs: d.uv(), lastSeq: d.uv(), seg: uint32(d.uv()), off: uint32(d.uv()),
			n: uint32(d.uv()), crc: uint32(d.uv()), count: uint32(d.uv()), skip: uint32(d.uv())}
		b.msDelta = d.bytes()
		if d.err != nil || b.skip >= b.count || !b.consistent() {
			d.fail()
			return
		}
		l := s.ofKind(key, kindLog).log
		l.blocks = append(l.blocks, b)
		l.blockRecs += b.live()
		l.lastMs, l.lastSeq = b.lastMs, b.lastSeq
	case opXTrim:
		key, minMs := d.str(), d.uv()
		if e := s.keys[key]; d.err == nil && e != nil && e.kind == kindLog {
			e.log.trim(minMs)
		}
	case opXMeta:
		key, ms, seq := d.str(), d.uv(), d.uv()
		if d.err == nil {
			l := s.ofKind(key, kindLog).log
			l.lastMs, l.lastSeq = ms, seq
		}
	case opEnd:
		return d.err == nil
	default:
		d.fail()
	}
	return false
}

// frozen is a consistent view of the whole state for a snapshot, taken
// under the write lock but written without it. It shares every value with
// the live state instead of encoding them: string entries are never
// modified in place (a write installs a new entry), log records only ever
// get appended after the captured length (a trim copies the survivors to a
// new array), and byte values are never mutated. Only what the live state
// changes in place is copied — hash and sorted-set maps, queued jobs — so
// freezing costs a walk over the keys, not a copy of the data.
type frozen struct {
	keys     []frozenKey
	coldKeys []frozenColdKey
	jobs     []frozenJob
	segs     map[uint32]bool // cold segments the frozen logs and strings refer to
	// strLive is, per segment holding cold strings, how many of its bytes
	// the frozen strings still refer to (the rest is garbage).
	strLive map[uint32]int64
}

type frozenKey struct {
	key string
	e   *entry
}

type frozenColdKey struct {
	h keyHash
	c coldKey
}

type frozenJob struct {
	queue, id string
	data      []byte
	due       int64
	attempts  int
}

// freeze captures the live state at now (expired keys are left out rather
// than resurrected on load). The caller holds the write lock.
func (s *state) freeze(now int64) *frozen {
	fr := &frozen{keys: make([]frozenKey, 0, len(s.keys)), segs: map[uint32]bool{}, strLive: map[uint32]int64{}}
	for key, e := range s.keys {
		if e.expireAt != 0 && e.expireAt <= now {
			continue
		}
		switch e.kind {
		case kindString:
			if e.cold != nil {
				for _, p := range e.cold.parts {
					fr.segs[p.seg] = true
					fr.strLive[p.seg] += int64(p.n)
				}
			}
		case kindHash:
			e = &entry{kind: kindHash, hash: maps.Clone(e.hash)}
		case kindZSet:
			e = &entry{kind: kindZSet, zset: &zset{scores: maps.Clone(e.zset.scores)}}
		case kindLog:
			l := e.log
			e = &entry{kind: kindLog, log: &stream{cold: l.cold[:len(l.cold):len(l.cold)], blocks: l.blocks[:len(l.blocks):len(l.blocks)],
				blockRecs: l.blockRecs, recs: l.recs[:len(l.recs):len(l.recs)], lastMs: l.lastMs, lastSeq: l.lastSeq}}
			for _, b := range l.blocks {
				fr.segs[b.seg] = true
			}
			last := uint32(0)
			for i, c := range l.cold {
				if i == 0 || c.seg != last { // runs of one segment
					fr.segs[c.seg], last = true, c.seg
				}
			}
		}
		fr.keys = append(fr.keys, frozenKey{key, e})
	}
	fr.coldKeys = make([]frozenColdKey, 0, len(s.coldKeys))
	for h, c := range s.coldKeys {
		if c.expireAt != 0 && c.expireAt <= now {
			continue
		}
		fr.segs[c.part.seg] = true
		fr.strLive[c.part.seg] += int64(c.part.n)
		fr.coldKeys = append(fr.coldKeys, frozenColdKey{h, c})
	}
	for name, q := range s.queues {
		for id, j := range q.jobs {
			fr.jobs = append(fr.jobs, frozenJob{queue: name, id: id, data: j.data, due: j.due, attempts: j.attempts})
		}
	}
	return fr
}

// snapFrame bounds a snapshot frame's payload (a single larger value still
// gets a frame of its own).
const snapFrame = 64 << 10

// encode writes the frozen state as frames to w, ending with an opEnd
// trailer. Frames are streamed, so memory stays at one frame however big
// the state is.
func (fr *frozen) encode(w io.Writer) error {
	f := newFrame(snapFrame)
	var err error
	flush := func(force bool) {
		if err != nil || f.empty() || (!force && f.payloadLen() < snapFrame) {
			return
		}
		_, err = w.Write(f.finish())
		f.reset()
	}
	for _, k := range fr.keys {
		key, e := k.key, k.e
		switch e.kind {
		case kindString:
			if e.cold == nil {
				f.op(opSet)
				f.str(key)
				f.bytes(e.str)
				f.sv(e.expireAt)
				break
			}
			f.op(opSCold)
			f.str(key)
			f.sv(e.expireAt)
			f.uv(uint64(len(e.cold.parts)))
			for _, p := range e.cold.parts {
				f.uv(uint64(p.seg))
				f.uv(uint64(p.off))
				f.uv(uint64(p.n))
				f.uv(uint64(p.crc))
			}
			f.bytes(e.str)
		case kindHash:
			f.op(opHSet)
			f.str(key)
			f.uv(uint64(len(e.hash)))
			for k, v := range e.hash {
				f.str(k)
				f.bytes(v)
			}
		case kindZSet:
			f.op(opZAdd)
			f.str(key)
			f.uv(uint64(len(e.zset.scores)))
			for m, sc := range e.zset.scores {
				f.str(m)
				f.f64(sc)
			}
		case kindLog:
			for _, c := range e.log.cold {
				f.op(opXCold)
				f.str(key)
				f.uv(c.ms)
				f.uv(c.seq)
				f.uv(uint64(c.seg))
				f.uv(uint64(c.off))
				f.uv(uint64(c.n))
				f.uv(uint64(c.crc))
				flush(false)
			}
			for _, b := range e.log.blocks {
				f.op(opXBlock)
				f.str(key)
				for _, v := range []uint64{b.firstMs, b.firstSeq, b.lastMs, b.lastSeq, uint64(b.seg), uint64(b.off), uint64(b.n), uint64(b.crc), uint64(b.count), uint64(b.skip)} {
					f.uv(v)
				}
				f.bytes(b.msDelta)
				flush(false)
			}
			for _, r := range e.log.recs {
				f.op(opXAdd)
				f.str(key)
				f.uv(r.ms)
				f.uv(r.seq)
				f.bytes(r.data)
				flush(false)
			}
			f.op(opXMeta)
			f.str(key)
			f.uv(e.log.lastMs)
			f.uv(e.log.lastSeq)
		}
		flush(false)
	}
	for _, k := range fr.coldKeys {
		f.op(opSColdKey)
		f.bytes(k.h[:])
		f.sv(k.c.expireAt)
		f.uv(uint64(k.c.part.seg))
		f.uv(uint64(k.c.part.off))
		f.uv(uint64(k.c.part.n))
		f.uv(uint64(k.c.part.crc))
		flush(false)
	}
	for _, j := range fr.jobs {
		f.op(opQJob)
		f.str(j.queue)
		f.str(j.id)
		f.bytes(j.data)
		f.sv(j.due)
		f.uv(uint64(j.attempts))
		flush(false)
	}
	f.op(opEnd)
	flush(true)
	return err
}

// appendValue returns old followed by data for a StrAppend. Values that are
// appended to (transcripts) grow by half again when they run out of room,
// so a string built by n appends is copied O(1) times per byte instead of
// once per append. Writing into old's spare capacity is safe: entries are
// replaced, never modified, so whoever still holds the previous entry (a
// reader under the lock, a snapshot's frozen copy) sees old[:len(old)],
// and those bytes do not change; spare capacity is only ever created here
// and only the key's newest entry appends into it.
func appendValue(old, data []byte) []byte {
	if len(data) <= cap(old)-len(old) {
		return append(old, data...)
	}
	need := len(old) + len(data)
	room := need / 2
	if room > maxAppendRoom {
		room = maxAppendRoom
	}
	return append(append(make([]byte, 0, need+room), old...), data...)
}

// maxAppendRoom bounds the spare capacity appendValue reserves per value.
const maxAppendRoom = 16 << 10
