package engine

import (
	"cmp"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrCrossSlot is returned when keys used together in one call (Update,
// ClaimAndEnqueue) do not share a hash tag. Both engines enforce it so that
// code which works on the embedded engine or a standalone Redis also works on
// Redis Cluster.
var ErrCrossSlot = errors.New("engine: keys must share a hash tag")

// ErrWrongType is returned when a key holds a different kind of value than
// the operation expects (e.g. IncrBy on a non-integer string, HGet on a
// string). It is a caller bug, not an outage, so it does not wrap
// ErrUnavailable.
var ErrWrongType = errors.New("engine: wrong type")

// slotTag returns the part of key Redis Cluster hashes: the content of the
// first "{…}" if it is non-empty, else the whole key.
func slotTag(key string) string {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			return key[i+1 : i+1+j]
		}
	}
	return key
}

// hasTag reports whether key contains a non-empty hash tag.
func hasTag(key string) bool {
	i := strings.IndexByte(key, '{')
	if i < 0 {
		return false
	}
	j := strings.IndexByte(key[i+1:], '}')
	return j > 0
}

// queueBase returns the Redis key prefix of a queue's internal keys. A queue
// name without a hash tag is wrapped whole in one, so its job hash and due
// zset always land in the same slot.
func queueBase(prefix, queue string) string {
	full := prefix + queue
	if hasTag(full) {
		return full
	}
	return "{" + full + "}"
}

// checkSameSlot verifies that every full key hashes to the same tag.
func checkSameSlot(fullKeys ...string) error {
	if len(fullKeys) < 2 {
		return nil
	}
	t := slotTag(fullKeys[0])
	for _, k := range fullKeys[1:] {
		if slotTag(k) != t {
			return fmt.Errorf("%w: %q and %q", ErrCrossSlot, fullKeys[0], k)
		}
	}
	return nil
}

// CompareIDs orders log record IDs of the form "<unixms>-<seq>" (the Redis
// stream format, used by both engines) numerically and returns -1, 0 or +1.
// "" sorts before every ID. Malformed IDs sort after well-formed ones and
// lexically among themselves, so the order stays total.
func CompareIDs(a, b string) int {
	if a == b {
		return 0
	}
	if a == "" {
		return -1
	}
	if b == "" {
		return 1
	}
	am, as, aok := parseID(a)
	bm, bs, bok := parseID(b)
	switch {
	case aok && bok:
		if am != bm {
			return cmp.Compare(am, bm)
		}
		return cmp.Compare(as, bs)
	case aok:
		return -1
	case bok:
		return 1
	}
	return strings.Compare(a, b)
}

// parseID splits "<ms>-<seq>" (a bare "<ms>" means seq 0, as in Redis).
func parseID(id string) (ms, seq uint64, ok bool) {
	msPart, seqPart, hasSeq := strings.Cut(id, "-")
	ms, err := strconv.ParseUint(msPart, 10, 64)
	if err != nil {
		return 0, 0, false
	}
	if hasSeq {
		seq, err = strconv.ParseUint(seqPart, 10, 64)
		if err != nil {
			return 0, 0, false
		}
	}
	return ms, seq, true
}

func formatID(ms, seq uint64) string {
	return strconv.FormatUint(ms, 10) + "-" + strconv.FormatUint(seq, 10)
}

// errEmptyJobID rejects jobs without an ID: the ID is the queue member.
var errEmptyJobID = errors.New("engine: job ID is empty")
