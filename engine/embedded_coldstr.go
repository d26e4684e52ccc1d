package engine

import (
	"bytes"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"time"
)

// Cold strings. Most string values are written once and rarely read again:
// a message's dedupe record (kept ten minutes so a late retry is still
// recognised), a transcript between a customer's visits. Held in memory they
// make the engine's memory grow with traffic × retention. So, like old log
// records (embedded_cold.go), string values that nobody wrote or read for a
// while move to cold segment files; the entry keeps where they are, and a
// read fetches them back (from the page cache, usually).
//
// "For a while" is measured in scans, not in time: after every
// StringSpillBytes of string values written, the maintenance goroutine
// looks at the strings written before the previous scan and moves those
// not read or overwritten since (appends do not count: see spillStrings). So only the strings of the last one or two
// scan intervals stay in memory, however long they are kept, and a quiet
// engine never scans at all.
//
// A cold string is its parts on disk followed by its in-memory tail: an
// append (StrAppend, a transcript's next turn) adds to the tail without
// reading the disk, and a later scan moves that tail into a new part, or
// rewrites the whole value as one part once it has mergeColdParts.
//
// Durability is that of cold log records: a segment is fsynced before any
// entry refers to it, the WAL still holds the values until the next
// snapshot (recovery replays them into memory and deletes the segments no
// snapshot mentions), snapshots refer to the parts (opSCold), and segments
// no snapshot refers to are deleted after a compaction.

// coldStr is where a cold string's leading bytes are on disk.
type coldStr struct {
	n     int64 // bytes in parts
	parts []coldPart
}

// coldPart is one run of a cold string's bytes in a segment file.
type coldPart struct {
	seg, off, n, crc uint32
}

const (
	// minColdString is the smallest value worth moving: below it the
	// entry's disk reference and bookkeeping (≈ 64 bytes) eat the saving.
	minColdString = 128
	// mergeColdParts is how many parts a string may have before the next
	// move rewrites it as one, so a read costs a few disk reads at most.
	mergeColdParts = 8
	// strScanChunk is how many keys a scan or an install handles per lock
	// hold, so writers wait for a chunk rather than for the whole scan. An
	// install moves a key to the cold-key index (a SHA-256 and two map
	// writes), so 2048 of them held the write lock for milliseconds. With
	// 256, the time writers spent waiting on the lock behind string spills
	// halved (mutex profile at 3 000 messages a second: 2.4 → 1.1 s in a
	// 9-s run); the ack-latency tail did not measurably move (disk fsync
	// variance dominates it).
	strScanChunk = 256
	// defaultStringSpill is EmbeddedOptions.StringSpillBytes' default.
	defaultStringSpill = 4 << 20
)

// strLen is the length of a string entry's value.
func (ent *entry) strLen() int64 {
	if ent.cold == nil {
		return int64(len(ent.str))
	}
	return ent.cold.n + int64(len(ent.str))
}

// used records that ent was read in the current scan generation, so the
// next scan leaves it in memory. Called with the lock held (read or write):
// lastUse is atomic because readers share the read lock.
func (e *Embedded) used(ent *entry) {
	if g := e.st.gen; ent.lastUse.Load() != g {
		ent.lastUse.Store(g)
	}
}

// strValue returns a copy of a string entry's whole value, reading its cold
// parts from disk. Called with the lock held (read or write), so no segment
// is deleted under it.
func (e *Embedded) strValue(ent *entry) ([]byte, error) {
	e.used(ent)
	if ent.cold == nil {
		return clone(ent.str), nil
	}
	return e.readColdStr(ent.cold, ent.str)
}

// coldRead is a cold string's position, taken under the engine lock and
// read after it is released.
type coldRead struct {
	cold *coldStr
	tail []byte
}

// strValueLater returns a string entry's value when it is in memory; for a
// cold one it fills later (holding segMu's read side, so the files stay)
// and returns nil: the caller calls later.read once e.mu is released.
// Called with e.mu held.
func (e *Embedded) strValueLater(ent *entry, later *coldRead) []byte {
	e.used(ent)
	if ent.cold == nil {
		return clone(ent.str)
	}
	e.segMu.RLock()
	// ent.str's bytes never change (appends write past its end).
	*later = coldRead{cold: ent.cold, tail: ent.str[:len(ent.str):len(ent.str)]}
	return nil
}

// read reads the value and releases segMu.
func (c *coldRead) read(e *Embedded) ([]byte, error) {
	defer e.segMu.RUnlock()
	return e.readColdStr(c.cold, c.tail)
}

// preRead is a cold string read before a compare-and-swap takes the write
// lock, so the comparison under the lock needs no disk read as long as the
// entry is still the one that was read.
type preRead struct {
	ent *entry
	val []byte
}

// preReadCold reads key's value ahead when it is a cold string as long as
// old (a compare-and-swap on it would otherwise read the disk under the
// write lock); otherwise, or on any error, it returns an empty preRead.
func (e *Embedded) preReadCold(key string, old []byte) preRead {
	if old == nil {
		return preRead{}
	}
	var later coldRead
	var ent *entry
	e.mu.RLock()
	if cur := e.st.live(key, time.Now().UnixNano()); cur != nil && cur.kind == kindString && cur.cold != nil && cur.strLen() == int64(len(old)) {
		ent = cur
		e.strValueLater(cur, &later)
	}
	e.mu.RUnlock()
	if later.cold == nil {
		return preRead{}
	}
	v, err := later.read(e)
	if err != nil {
		return preRead{} // the comparison under the lock reads again and reports it
	}
	return preRead{ent: ent, val: v}
}

// equal compares ent's value with v, using the value read ahead when ent
// is the entry it was read from (entries never change in place).
func (p preRead) equal(e *Embedded, ent *entry, v []byte) (bool, error) {
	if p.ent != nil && p.ent == ent {
		e.used(ent)
		return bytes.Equal(p.val, v), nil
	}
	return e.strEqual(ent, v)
}

// readColdStr returns cs's bytes from disk followed by tail, in a new
// buffer.
func (e *Embedded) readColdStr(cs *coldStr, tail []byte) ([]byte, error) {
	out := make([]byte, 0, cs.n+int64(len(tail)))
	for _, p := range cs.parts {
		start := len(out)
		out = out[:start+int(p.n)]
		part := out[start:]
		if err := e.files.readAt(p.seg, part, int64(p.off)); err != nil {
			return nil, fmt.Errorf("engine: embedded: reading cold string: %w", err)
		}
		if crc32.Checksum(part, crcTable) != p.crc {
			return nil, fmt.Errorf("engine: embedded: %s: cold string at %d: %w", coldName(p.seg), p.off, errCorrupt)
		}
	}
	return append(out, tail...), nil
}

// strEqual reports whether a string entry's value equals v, reading the
// disk only when the lengths match.
func (e *Embedded) strEqual(ent *entry, v []byte) (bool, error) {
	if ent.cold == nil {
		e.used(ent)
		return bytes.Equal(ent.str, v), nil
	}
	if ent.strLen() != int64(len(v)) {
		return false, nil
	}
	cur, err := e.strValue(ent)
	if err != nil {
		return false, err
	}
	return bytes.Equal(cur, v), nil
}

// strScanDue reports whether enough string bytes were written since the
// last scan to start one; if so it opens generation gen and hands over the
// keys written two generations ago, the only ones that can have become
// cold since the last scan (older ones were looked at then, and carried
// over when they were still in use). Committer goroutine, with the write
// lock held and no spill running.
func (s *state) strScanDue() (gen uint32, keys []string, due bool) {
	if s.strSpillEvery <= 0 || s.strWritten < s.strSpillEvery {
		return 0, nil, false
	}
	s.strWritten = 0
	s.gen++
	keys, s.strWaiting, s.strWriting = s.strWaiting, s.strWriting, nil
	return s.gen, keys, true
}

// noteStrWrite records a string value of size bytes installed at key (n of
// them new), asking for a scan when enough were written.
func (s *state) noteStrWrite(key string, size, n int) {
	if s.strSpillEvery <= 0 {
		return
	}
	if size >= minColdString {
		s.strWriting = append(s.strWriting, key)
	}
	s.strWritten += int64(n)
	if s.strWritten >= s.strSpillEvery {
		s.spillDue.Store(true)
	}
}

type strCandidate struct {
	key  string
	ent  *entry
	data []byte // what goes to disk: ent.str, or the whole value when merging
	// merge: the value's parts are rewritten as one (data is the whole
	// value), so a string that keeps growing is not read in ever more
	// pieces.
	merge bool
}

// spillStrings moves to a new cold segment those of keys (written two
// generations before gen) whose strings were not read or overwritten since
// (generation gen-2 or before). Appends do not count as use: a transcript
// that grows but that nobody reads moves to disk piece by piece. Keys
// whose string was used meanwhile are carried over to the next scans,
// so a value read for a while and then forgotten still moves. The work is
// proportional to the strings written, not to all keys. Maintenance
// goroutine only.
func (e *Embedded) spillStrings(gen uint32, keys []string) error {
	var cands []strCandidate
	var carry []string
	seen := make(map[string]struct{}, len(keys))
	size := int64(len(coldMagic))
	now := time.Now().UnixNano()
	e.mu.RLock()
	for i, key := range keys {
		if i%strScanChunk == strScanChunk-1 {
			e.mu.RUnlock() // let writers in
			e.mu.RLock()
		}
		if _, dup := seen[key]; dup {
			continue
		}
		seen[key] = struct{}{}
		ent := e.st.keys[key]
		if ent == nil || ent.kind != kindString || len(ent.str) < minColdString || (ent.expireAt != 0 && ent.expireAt <= now) {
			continue // gone, or nothing (left) to move: a later write lists it again
		}
		if gen-ent.lastUse.Load() < 2 {
			carry = append(carry, key)
			continue
		}
		c := strCandidate{key: key, ent: ent, data: ent.str, merge: ent.cold != nil && len(ent.cold.parts) >= mergeColdParts}
		n := int64(len(ent.str))
		if c.merge {
			n += ent.cold.n
		}
		if size+n > maxColdFile {
			carry = append(carry, key) // the next scan takes the rest
			continue
		}
		// ent.str never changes: a write installs a new entry, and an
		// append writes only past the end of the newest entry's slice.
		cands = append(cands, c)
		size += n
	}
	e.mu.RUnlock()
	if len(carry) > 0 {
		e.mu.Lock()
		e.st.strWriting = append(e.st.strWriting, carry...)
		e.mu.Unlock()
	}
	if len(cands) == 0 {
		return nil
	}
	recs := make([]logRec, len(cands))
	for i := range cands {
		c := &cands[i]
		if c.merge {
			// A compaction may be dropping segments meanwhile (never
			// these: a live entry refers to them); segMu keeps the files
			// while they are read all the same.
			e.segMu.RLock()
			whole, err := e.readColdStr(c.ent.cold, c.ent.str)
			e.segMu.RUnlock()
			if err != nil {
				return err
			}
			c.data = whole
		}
		recs[i] = logRec{data: c.data}
	}
	moved, err := e.placeCold(recs, len(cands), func(seg uint32, where []coldRec, i int) bool {
		c := cands[i]
		cur := e.st.keys[c.key]
		if cur == nil || cur.kind != kindString || cur.cold != c.ent.cold || len(cur.str) < len(c.ent.str) ||
			(cur != c.ent && !bytes.Equal(cur.str[:len(c.ent.str)], c.ent.str)) {
			return false // rewritten, deleted or expired meanwhile
		}
		// cur's value is c's, maybe with bytes appended since: those
		// stay in memory as the new tail.
		w := where[i]
		p := coldPart{seg: seg, off: w.off, n: w.n, crc: w.crc}
		cs := &coldStr{n: int64(w.n), parts: []coldPart{p}}
		if old := c.ent.cold; old != nil && !c.merge {
			cs.n += old.n
			cs.parts = append(append(make([]coldPart, 0, len(old.parts)+1), old.parts...), p)
		}
		ne := &entry{kind: kindString, expireAt: cur.expireAt, cold: cs}
		if tail := cur.str[len(c.ent.str):]; len(tail) > 0 {
			ne.str = clone(tail)
		}
		if coldKeyable(ne) && e.st.toColdKey(c.key, ne) {
			return true // wholly on disk: memory keeps only its key's hash
		}
		ne.lastUse.Store(cur.lastUse.Load())
		e.st.keys[c.key] = ne // same expiry: the expiring set is unchanged
		return true
	})
	if err != nil || moved == 0 {
		return err
	}
	e.spills.Add(1)
	e.coldStrings.Add(uint64(moved))
	return nil
}

// Garbage in cold string segments. A segment can only be deleted once no
// string refers to it, but strings end at different times: dedupe records
// after minutes, transcripts after a month. One transcript's part would
// keep a whole segment of expired dedupe records on disk for a month, so
// after each snapshot the segments whose live bytes (counted by freeze)
// are under a quarter of their size have their live parts copied to a new
// segment; the next snapshot no longer refers to them and dropCold
// deletes them.

const (
	// minColdGarbage is the least garbage worth rewriting a segment for
	// (the rewrite copies at most a third of that).
	minColdGarbage = 4 << 10
	// maxRewriteBytes bounds the victim segments of one pass (the rest
	// wait for the next snapshot); under a quarter of that, their live
	// parts, is held in memory while they are copied.
	maxRewriteBytes = 64 << 20
)

// collectColdStrings rewrites the live parts of mostly-dead string
// segments. Maintenance goroutine, after a snapshot of fr.
func (e *Embedded) collectColdStrings(fr *frozen) {
	victims := map[uint32]bool{}
	var total int64
	for seg, live := range fr.strLive {
		fi, err := os.Stat(filepath.Join(e.dir, coldName(seg)))
		if err != nil {
			continue
		}
		size := fi.Size() - int64(len(coldMagic))
		if size-live >= minColdGarbage && live*4 < size && total+size <= maxRewriteBytes {
			victims[seg] = true
			total += size
		}
	}
	if len(victims) == 0 {
		return
	}
	if err := e.rewriteColdStrings(victims); err != nil {
		e.logf("engine: embedded: rewriting cold string segments: %v", err)
	}
}

type coldMove struct {
	key  string
	cold *coldStr
	// hash is set (and key empty) for a cold key; cold then holds its
	// one part.
	hash    keyHash
	coldKey bool
}

// rewriteColdStrings copies the parts that live strings keep in victims
// to a new segment and points those strings at the copies.
func (e *Embedded) rewriteColdStrings(victims map[uint32]bool) error {
	var moves []coldMove
	e.mu.RLock()
	i := 0
	for key, ent := range e.st.keys {
		if i++; i%strScanChunk == 0 {
			e.mu.RUnlock() // let writers in
			e.mu.RLock()
		}
		if ent.kind != kindString || ent.cold == nil {
			continue
		}
		for _, p := range ent.cold.parts {
			if victims[p.seg] {
				moves = append(moves, coldMove{key: key, cold: ent.cold})
				break
			}
		}
	}
	for h, c := range e.st.coldKeys {
		if i++; i%strScanChunk == 0 {
			e.mu.RUnlock()
			e.mu.RLock()
		}
		if victims[c.part.seg] {
			moves = append(moves, coldMove{cold: &coldStr{n: int64(c.part.n), parts: []coldPart{c.part}}, hash: h, coldKey: true})
		}
	}
	e.mu.RUnlock()
	if len(moves) == 0 {
		return nil
	}
	var recs []logRec
	first := make([]int, len(moves)) // each move's first record in recs
	bySeg := map[uint32][]int{}      // victim segment → its parts' records
	parts := []coldPart{}            // recs[i]'s part
	for i, m := range moves {
		first[i] = len(recs)
		for _, p := range m.cold.parts {
			if victims[p.seg] {
				bySeg[p.seg] = append(bySeg[p.seg], len(recs))
				recs = append(recs, logRec{})
				parts = append(parts, p)
			}
		}
	}
	// One victim file in memory at a time, and only the live parts kept:
	// reading them all at once held up to maxRewriteBytes at once, the
	// engine's largest transient allocation. Segments are deleted only by
	// compactions, and this runs inside one.
	for seg, idx := range bySeg {
		b, err := os.ReadFile(filepath.Join(e.dir, coldName(seg)))
		if err != nil {
			return err
		}
		for _, r := range idx {
			p := parts[r]
			if int64(p.off)+int64(p.n) > int64(len(b)) {
				return fmt.Errorf("%s: part at %d+%d past the end: %w", coldName(p.seg), p.off, p.n, errCorrupt)
			}
			data := b[p.off : p.off+p.n]
			if crc32.Checksum(data, crcTable) != p.crc {
				return fmt.Errorf("%s: cold string at %d: %w", coldName(p.seg), p.off, errCorrupt)
			}
			recs[r] = logRec{data: clone(data)}
		}
	}
	moved, err := e.placeCold(recs, len(moves), func(seg uint32, where []coldRec, i int) bool {
		m := moves[i]
		if m.coldKey {
			c, ok := e.st.coldKeys[m.hash]
			if !ok || c.part != m.cold.parts[0] {
				return false // rewritten, deleted or expired meanwhile
			}
			w := where[first[i]]
			c.part = coldPart{seg: seg, off: w.off, n: w.n, crc: w.crc}
			e.st.coldKeys[m.hash] = c
			return true
		}
		cur := e.st.keys[m.key]
		if cur == nil || cur.kind != kindString || cur.cold != m.cold {
			return false // rewritten, deleted or moved further meanwhile
		}
		parts := make([]coldPart, len(m.cold.parts))
		w := first[i]
		for k, p := range m.cold.parts {
			if victims[p.seg] {
				p = coldPart{seg: seg, off: where[w].off, n: where[w].n, crc: where[w].crc}
				w++
			}
			parts[k] = p
		}
		// cur.str is shared: ne becomes the newest entry, the only one
		// appends may extend in place.
		ne := &entry{kind: kindString, expireAt: cur.expireAt, str: cur.str, cold: &coldStr{n: m.cold.n, parts: parts}}
		ne.lastUse.Store(cur.lastUse.Load())
		e.st.keys[m.key] = ne
		return true
	})
	if err != nil || moved == 0 {
		return err
	}
	e.coldRewrites.Add(1)
	return nil
}

// placeCold writes recs to a new cold segment, then calls install for
// each of items (in order, with e.mu held, in chunks of strScanChunk so
// writers get in between; where holds every record's position); install
// reports whether it made an entry refer to the segment. A segment nothing
// refers to is removed. It returns how many installs did.
func (e *Embedded) placeCold(recs []logRec, items int, install func(seg uint32, where []coldRec, i int) bool) (int, error) {
	e.mu.Lock()
	e.coldNext++
	seg := e.coldNext
	e.mu.Unlock()
	path := filepath.Join(e.dir, coldName(seg))
	where, err := writeCold(path, recs)
	if err != nil {
		return 0, err
	}
	moved := 0
	for start := 0; start < items; start += strScanChunk {
		e.mu.Lock()
		e.coldSegs[seg] = true // before any entry refers to it
		for i := start; i < min(start+strScanChunk, items); i++ {
			if install(seg, where, i) {
				moved++
			}
		}
		if start+strScanChunk >= items && moved == 0 {
			delete(e.coldSegs, seg)
		}
		e.mu.Unlock()
	}
	if moved == 0 {
		os.Remove(path) // every entry changed meanwhile
	}
	return moved, nil
}
