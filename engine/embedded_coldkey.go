package engine

import (
	"crypto/sha256"
)

// Cold keys: a string whose whole value moved to a cold segment file in one
// part (embedded_coldstr.go) no longer needs its key, entry and expiry-set
// slot in memory. Such strings — above all the gateway's dedupe records,
// kept for dedupe_ttl at one per message — move to coldKeys, a map from a
// 128-bit hash of the key to the value's place on disk and its expiry:
// ≈60 bytes a key (slot and map growth) instead of ≈265 (key string, entry,
// disk reference, two map slots). That is what lets the embedded engine's
// memory stay flat while dedupe records pile up at full load.
//
// The hash is a truncated SHA-256, so two keys collide only by a chance
// nobody will see and cannot be made to (keys carry customer-chosen parts
// on the JSON channel). A key is in keys or in coldKeys, never in both:
// put and del take a key out of coldKeys, reads fall back to it, and every
// write that starts from the old value (append) reads it from there.
//
// Snapshots write these as opSColdKey (hash, expiry, part), the WAL never
// does: a key goes cold only by a scan, and a write brings it back as an
// ordinary entry.

// keyHash identifies a cold key.
type keyHash [16]byte

func hashKey(key string) keyHash {
	// A stack buffer: converting a key longer than 32 bytes allocated,
	// once per new key (every message's dedupe record).
	var buf [160]byte
	b := append(buf[:0], key...)
	sum := sha256.Sum256(b)
	return keyHash(sum[:16])
}

// coldKey is where a cold key's value is and when it expires (0: never).
type coldKey struct {
	part     coldPart
	expireAt int64
}

// entry returns a transient string entry for c; it is never stored, so
// nothing may write to it.
func (c coldKey) entry() *entry {
	return &entry{kind: kindString, expireAt: c.expireAt, cold: &coldStr{n: int64(c.part.n), parts: []coldPart{c.part}}}
}

// coldKeyOf reports key's cold-key record, if it has one.
func (s *state) coldKeyOf(key string) (coldKey, bool) {
	if len(s.coldKeys) == 0 {
		return coldKey{}, false
	}
	c, ok := s.coldKeys[hashKey(key)]
	return c, ok
}

// has reports whether key has a value (expired or not) in memory or as a
// cold key: deletes must be logged for both.
func (s *state) has(key string) bool {
	if s.keys[key] != nil {
		return true
	}
	_, ok := s.coldKeyOf(key)
	return ok
}

// coldKeyable reports whether a string entry just moved to disk can leave
// memory as a cold key: exactly one part and nothing in memory after it.
func coldKeyable(ent *entry) bool {
	return ent.kind == kindString && ent.cold != nil && len(ent.cold.parts) == 1 && len(ent.str) == 0
}

// toColdKey moves key's entry ent (coldKeyable, current) to coldKeys.
// Called with the write lock held. It refuses, leaving the entry in keys,
// when the hash is taken (a collision: never seen in practice, but then
// the ordinary entry keeps working).
func (s *state) toColdKey(key string, ent *entry) bool {
	h := hashKey(key)
	if _, taken := s.coldKeys[h]; taken {
		return false
	}
	s.coldKeys[h] = coldKey{part: ent.cold.parts[0], expireAt: ent.expireAt}
	delete(s.keys, key)
	delete(s.expiring, key)
	return true
}

// sweepColdKeys drops expired cold keys, like sweep.
func (e *Embedded) sweepColdKeys() {
	e.sweepBatches(func(now int64) (checked, removed int) {
		for h, c := range e.st.coldKeys {
			checked++
			if c.expireAt != 0 && c.expireAt <= now {
				delete(e.st.coldKeys, h)
				removed++
			}
			if checked >= sweepBatch {
				break
			}
		}
		return checked, removed
	})
}
