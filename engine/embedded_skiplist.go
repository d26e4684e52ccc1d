package engine

// skiplist is an ordered set used for sorted sets (score, member) and queue
// due indexes (due, id). It gives O(log n) insert/delete/seek and in-order
// iteration, which a map plus sort cannot do for large sets.
type skiplist[K any] struct {
	cmp   func(a, b K) int
	head  slnode[K]
	level int
	n     int
	rnd   uint64
}

type slnode[K any] struct {
	key  K
	next []*slnode[K]
}

const slMaxLevel = 24

func newSkiplist[K any](cmp func(a, b K) int) *skiplist[K] {
	s := &skiplist[K]{cmp: cmp, level: 1, rnd: 0x9E3779B97F4A7C15}
	s.head.next = make([]*slnode[K], slMaxLevel)
	return s
}

// randomLevel draws a level with p = 1/4 using xorshift (no lock contention
// on math/rand; callers already hold the engine lock).
func (s *skiplist[K]) randomLevel() int {
	lvl := 1
	for lvl < slMaxLevel {
		s.rnd ^= s.rnd << 13
		s.rnd ^= s.rnd >> 7
		s.rnd ^= s.rnd << 17
		if s.rnd&3 != 0 {
			break
		}
		lvl++
	}
	return lvl
}

// Len returns the number of keys.
func (s *skiplist[K]) Len() int { return s.n }

// insert adds k; k must not already be present.
func (s *skiplist[K]) insert(k K) {
	var update [slMaxLevel]*slnode[K]
	x := &s.head
	for i := s.level - 1; i >= 0; i-- {
		for x.next[i] != nil && s.cmp(x.next[i].key, k) < 0 {
			x = x.next[i]
		}
		update[i] = x
	}
	lvl := s.randomLevel()
	if lvl > s.level {
		for i := s.level; i < lvl; i++ {
			update[i] = &s.head
		}
		s.level = lvl
	}
	n := &slnode[K]{key: k, next: make([]*slnode[K], lvl)}
	for i := 0; i < lvl; i++ {
		n.next[i] = update[i].next[i]
		update[i].next[i] = n
	}
	s.n++
}

// delete removes k and reports whether it was present.
func (s *skiplist[K]) delete(k K) bool {
	var update [slMaxLevel]*slnode[K]
	x := &s.head
	for i := s.level - 1; i >= 0; i-- {
		for x.next[i] != nil && s.cmp(x.next[i].key, k) < 0 {
			x = x.next[i]
		}
		update[i] = x
	}
	x = x.next[0]
	if x == nil || s.cmp(x.key, k) != 0 {
		return false
	}
	for i := 0; i < len(x.next); i++ {
		if update[i].next[i] == x {
			update[i].next[i] = x.next[i]
		}
	}
	for s.level > 1 && s.head.next[s.level-1] == nil {
		s.level--
	}
	s.n--
	return true
}

// first returns the smallest node or nil.
func (s *skiplist[K]) first() *slnode[K] { return s.head.next[0] }

// seekGE returns the first node with key >= k, or nil.
func (s *skiplist[K]) seekGE(k K) *slnode[K] {
	x := &s.head
	for i := s.level - 1; i >= 0; i-- {
		for x.next[i] != nil && s.cmp(x.next[i].key, k) < 0 {
			x = x.next[i]
		}
	}
	return x.next[0]
}
