package index

import (
	"bufio"
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"

	"kefu/bot/embed"
)

// Embedded is the default vector store: an in-memory inverted index for
// sparse vectors plus brute-force dense vectors, persisted to one file.
// Search holds a read lock only, so it runs concurrently with other searches.
//
// Memory: a document costs its postings (8 bytes per term) plus a 32-byte
// slot; sparse vectors are not kept twice but rebuilt from the postings when
// needed (Save, compaction, Docs). Filter metadata is stored once per entry.
type Embedded struct {
	mu sync.RWMutex
	// docs are slots; a removed doc keeps its slot (alive=false) until
	// compaction so posting lists need not be rewritten on every delete.
	docs []slot
	// docEnt is docs[i].ent, kept apart so the common-term phase of a
	// search reads 4 bytes per posting, not a 32-byte slot.
	docEnt  []int32
	ents    []entRec
	entNum  map[string]int32
	byEntry map[string][]int32
	post    map[uint32][]posting
	dead    int
	scratch sync.Pool
}

type slot struct {
	ent   int32 // index into ents
	seq   int32
	alive bool
	dense []float32
}

// entRec is one entry's record: documents of an entry share it so that
// searches pool and filter by integer, not by map lookups on strings.
type entRec struct {
	id    string
	alive bool
	meta  Meta
}

type posting struct {
	doc int32
	w   float32
}

var _ Index = (*Embedded)(nil)

// NewEmbedded returns an empty index.
func NewEmbedded() *Embedded {
	return &Embedded{byEntry: map[string][]int32{}, entNum: map[string]int32{}, post: map[uint32][]posting{}}
}

// Len is the number of live documents.
func (x *Embedded) Len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.docs) - x.dead
}

// Upsert implements Index.
func (x *Embedded) Upsert(_ context.Context, docs []Doc) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	replaced := map[string]bool{}
	for _, d := range docs {
		if !replaced[d.Entry] {
			x.removeLocked(d.Entry)
			replaced[d.Entry] = true
		}
	}
	for _, d := range docs {
		x.addLocked(d)
	}
	x.maybeCompactLocked()
	return nil
}

func (x *Embedded) addLocked(d Doc) {
	id := int32(len(x.docs))
	en, ok := x.entNum[d.Entry]
	if !ok {
		en = int32(len(x.ents))
		x.entNum[d.Entry] = en
		x.ents = append(x.ents, entRec{id: d.Entry})
	}
	x.ents[en].alive, x.ents[en].meta = true, d.Meta
	var dense []float32
	if d.Dense != nil {
		dense = unit(d.Dense)
	}
	x.docs = append(x.docs, slot{ent: en, seq: int32(d.Seq), alive: true, dense: dense})
	x.docEnt = append(x.docEnt, en)
	x.byEntry[d.Entry] = append(x.byEntry[d.Entry], id)
	for i, t := range d.Sparse.Idx {
		x.post[t] = append(x.post[t], posting{id, d.Sparse.Val[i]})
	}
}

// Delete implements Index.
func (x *Embedded) Delete(_ context.Context, entries []string) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, e := range entries {
		x.removeLocked(e)
	}
	x.maybeCompactLocked()
	return nil
}

func (x *Embedded) removeLocked(entry string) {
	for _, id := range x.byEntry[entry] {
		if x.docs[id].alive {
			x.docs[id].alive, x.docs[id].dense = false, nil
			x.dead++
		}
	}
	delete(x.byEntry, entry)
	if en, ok := x.entNum[entry]; ok {
		x.ents[en].alive = false
	}
}

// sparseLocked rebuilds the sparse vectors of live documents from the
// postings (ids in ascending order within each vector, as Sparse requires).
func (x *Embedded) sparseLocked() []embed.Sparse {
	out := make([]embed.Sparse, len(x.docs))
	terms := make([]uint32, 0, len(x.post))
	for t := range x.post {
		terms = append(terms, t)
	}
	sort.Slice(terms, func(i, j int) bool { return terms[i] < terms[j] })
	for _, t := range terms {
		for _, p := range x.post[t] {
			if x.docs[p.doc].alive {
				v := &out[p.doc]
				v.Idx, v.Val = append(v.Idx, t), append(v.Val, p.w)
			}
		}
	}
	return out
}

// maybeCompactLocked rebuilds slots and postings when a quarter is dead, so
// memory and scan cost stay proportional to live documents.
func (x *Embedded) maybeCompactLocked() {
	if x.dead == 0 || x.dead*4 < len(x.docs) {
		return
	}
	docs := x.liveDocsLocked()
	x.docs, x.docEnt, x.ents = nil, nil, nil
	x.entNum = make(map[string]int32, len(x.entNum))
	x.byEntry = make(map[string][]int32, len(x.byEntry))
	x.post = make(map[uint32][]posting, len(x.post))
	x.dead = 0
	for _, d := range docs {
		x.addLocked(d)
	}
}

// liveDocsLocked reconstructs the live documents.
func (x *Embedded) liveDocsLocked() []Doc {
	vecs := x.sparseLocked()
	out := make([]Doc, 0, len(x.docs)-x.dead)
	for i, s := range x.docs {
		if s.alive {
			e := &x.ents[s.ent]
			out = append(out, Doc{Entry: e.id, Seq: int(s.seq), Sparse: vecs[i], Dense: s.dense, Meta: e.meta})
		}
	}
	return out
}

func unit(v []float32) []float32 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	if s == 0 {
		return v
	}
	n := float32(1 / math.Sqrt(s))
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = x * n
	}
	return out
}

func dot(a, b []float32) float64 {
	if len(a) != len(b) {
		return 0
	}
	var s float32
	for i := range a {
		s += a[i] * b[i]
	}
	return float64(s)
}

type scratch struct {
	acc     []float32
	touched []int32
	// Per entry: pooled scores, filter verdict (0 unknown, 1 pass, 2 fail),
	// whether a rare term reached one of its documents, and the list of
	// entries touched, all reset after each search.
	pool    []pooler
	verdict []uint8
	reached []bool
	ents    []int32
	hits    []Hit
}

// Search implements Index. Entry score is the best score of its questions.
func (x *Embedded) Search(_ context.Context, q Query, f Filter, k int) ([]Hit, error) {
	if k <= 0 {
		return nil, nil
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	hasSparse, hasDense := q.Sparse.Len() > 0, len(q.Dense) > 0
	var sparseHits, denseHits []Hit
	if hasSparse {
		sparseHits = x.searchSparse(q.Sparse, &f, k, hasDense)
	}
	if hasDense {
		denseHits = x.searchDense(unit(q.Dense), &f, k, hasSparse)
	}
	switch {
	case hasSparse && hasDense:
		return fuse(q.Fusion, sparseHits, denseHits, k), nil
	case hasDense:
		return topK(denseHits, k), nil
	default:
		return topK(sparseHits, k), nil
	}
}

// searchSparse returns the best hit per entry. With wide set (hybrid), it
// returns more than k so fusion sees enough candidates.
func (x *Embedded) searchSparse(qv embed.Sparse, f *Filter, k int, wide bool) []Hit {
	sc, _ := x.scratch.Get().(*scratch)
	if sc == nil || len(sc.acc) < len(x.docs) || len(sc.pool) < len(x.ents) {
		n := len(x.ents) + 256
		sc = &scratch{acc: make([]float32, len(x.docs)+1024), pool: make([]pooler, n), verdict: make([]uint8, n), reached: make([]bool, n)}
	}
	defer x.scratch.Put(sc)
	sc.touched, sc.ents = sc.touched[:0], sc.ents[:0]
	acc := sc.acc
	// Two phases keep latency flat as the KB grows: rare terms first, then
	// common terms (in more than 1% of the documents: "的", "么", "怎么")
	// only add to documents of entries a rare term already reached. An entry
	// sharing nothing but common characters with the query cannot rank
	// among the best when anything shares a rarer term; if nothing does,
	// common terms run in full. The unit is the entry, not the document:
	// an entry's score pools its second-best question too (Pool), and a
	// similar question that shares only common terms with the query still
	// counts there (bq with paraphrases, dev half: R@1 0.199 → 0.202, the
	// same ranking as exhaustive scoring).
	common := max(256, len(x.docs)/100)
	marked := false
	for pass := 0; pass < 2; pass++ {
		for i, t := range qv.Idx {
			pl := x.post[t]
			if (len(pl) > common) != (pass == 1) {
				continue
			}
			w := qv.Val[i]
			if pass == 1 && len(sc.touched) > 0 {
				if !marked {
					for _, d := range sc.touched {
						sc.reached[x.docEnt[d]] = true
					}
					marked = true
				}
				for _, p := range pl {
					if acc[p.doc] == 0 {
						if !sc.reached[x.docEnt[p.doc]] {
							continue
						}
						sc.touched = append(sc.touched, p.doc)
					}
					acc[p.doc] += w * p.w
				}
				continue
			}
			for _, p := range pl {
				if acc[p.doc] == 0 {
					sc.touched = append(sc.touched, p.doc)
				}
				acc[p.doc] += w * p.w
			}
		}
	}
	for _, d := range sc.touched {
		s := acc[d]
		acc[d] = 0
		sl := &x.docs[d]
		sc.reached[sl.ent] = false
		if !sl.alive || s <= 0 {
			continue
		}
		en := sl.ent
		switch sc.verdict[en] {
		case 0:
			sc.ents = append(sc.ents, en)
			if f.Match(&x.ents[en].meta) {
				sc.verdict[en] = 1
			} else {
				sc.verdict[en] = 2
				continue
			}
		case 2:
			continue
		}
		sc.pool[en].add(int(sl.seq), float64(s))
	}
	// Every entry a term reached is a hit; they are ranked in a buffer of
	// the scratch and only the best n are copied out.
	hits := sc.hits[:0]
	for _, en := range sc.ents {
		if sc.verdict[en] == 1 {
			p := &sc.pool[en]
			s := p.score()
			hits = append(hits, Hit{Entry: x.ents[en].id, Score: s, Sparse: s, Best: p.m1})
		}
		sc.verdict[en], sc.pool[en] = 0, pooler{}
	}
	n := k
	if wide {
		n = max(4*k, 50)
	}
	top := slices.Clone(topK(hits, n))
	clear(hits) // drop the entry ids the pool would otherwise keep alive
	sc.hits = hits[:0]
	return top
}

func (x *Embedded) searchDense(qv []float32, f *Filter, k int, wide bool) []Hit {
	best := map[string]int{}
	var hits []Hit
	metaOK := map[string]bool{}
	for i := range x.docs {
		sl := &x.docs[i]
		if !sl.alive || sl.dense == nil {
			continue
		}
		e := x.ents[sl.ent].id
		ok, seen := metaOK[e]
		if !seen {
			ok = f.Match(&x.ents[sl.ent].meta)
			metaOK[e] = ok
		}
		if !ok {
			continue
		}
		s := dot(qv, sl.dense)
		if j, dup := best[e]; dup {
			if s > hits[j].Score {
				hits[j].Score, hits[j].Dense = s, s
			}
			continue
		}
		best[e] = len(hits)
		hits = append(hits, Hit{Entry: e, Score: s, Dense: s})
	}
	n := k
	if wide {
		n = max(4*k, 50)
	}
	return topK(hits, n)
}

func fuse(f embed.Fusion, sp, de []Hit, k int) []Hit {
	toScored := func(h []Hit, dense bool) []embed.Scored {
		out := make([]embed.Scored, len(h))
		for i, x := range h {
			out[i] = embed.Scored{ID: x.Entry, Score: x.Score}
		}
		return out
	}
	byID := map[string]*Hit{}
	for i := range sp {
		h := sp[i]
		byID[h.Entry] = &h
	}
	for _, d := range de {
		if h, ok := byID[d.Entry]; ok {
			h.Dense = d.Dense
		} else {
			h := d
			byID[d.Entry] = &h
		}
	}
	fused := embed.Fuse(f, toScored(sp, false), toScored(de, true))
	out := make([]Hit, 0, min(k, len(fused)))
	for _, s := range fused {
		if len(out) == k {
			break
		}
		h := *byID[s.ID]
		h.Score = s.Score
		out = append(out, h)
	}
	return out
}

// topK sorts hits by score (ties by entry id for determinism) and truncates.
func topK(h []Hit, k int) []Hit {
	less := func(a, b Hit) bool { return a.Score > b.Score || (a.Score == b.Score && a.Entry < b.Entry) }
	if len(h) > 4*k && k < 64 {
		// Partial selection: keep a small sorted prefix instead of sorting
		// thousands of weak hits from common characters.
		top := make([]Hit, 0, k+1)
		for _, x := range h {
			if len(top) == k && !less(x, top[k-1]) {
				continue
			}
			i := sort.Search(len(top), func(i int) bool { return less(x, top[i]) })
			top = append(top, Hit{})
			copy(top[i+1:], top[i:])
			top[i] = x
			if len(top) > k {
				top = top[:k]
			}
		}
		return top
	}
	// Hits name distinct entries, so less is a total order and any sort
	// gives this ranking; slices.SortFunc avoids sort.Slice's reflection.
	slices.SortFunc(h, func(a, b Hit) int {
		switch {
		case less(a, b):
			return -1
		case less(b, a):
			return 1
		}
		return 0
	})
	if len(h) > k {
		h = h[:k]
	}
	return h
}

// Docs returns a copy of the live documents of entry (for tests and tools).
func (x *Embedded) Docs(entry string) []Doc {
	x.mu.RLock()
	defer x.mu.RUnlock()
	var out []Doc
	for _, d := range x.liveDocsLocked() {
		if d.Entry == entry {
			out = append(out, d)
		}
	}
	return out
}

// Entries lists the entry ids present in the index.
func (x *Embedded) Entries() []string {
	x.mu.RLock()
	defer x.mu.RUnlock()
	out := make([]string, 0, len(x.byEntry))
	for e := range x.byEntry {
		out = append(out, e)
	}
	sort.Strings(out)
	return out
}

// Close implements Index.
func (x *Embedded) Close() error { return nil }

// snapshotVersion changes whenever the file layout changes.
const snapshotVersion = 1

type snapshot struct {
	Version int
	Tag     string
	Docs    []Doc
}

// Save writes the live documents to path atomically, tagged with tag (the
// caller's fingerprint of what produced the vectors).
func (x *Embedded) Save(path, tag string) error {
	x.mu.RLock()
	snap := snapshot{Version: snapshotVersion, Tag: tag, Docs: x.liveDocsLocked()}
	x.mu.RUnlock()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".index-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	w := bufio.NewWriterSize(tmp, 1<<20)
	if err := gob.NewEncoder(w).Encode(&snap); err != nil {
		tmp.Close()
		return fmt.Errorf("index save: %w", err)
	}
	if err := w.Flush(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// ErrNoSnapshot is returned by Load when there is no usable snapshot.
var ErrNoSnapshot = errors.New("index: no snapshot")

// Load reads a snapshot written by Save and returns its tag. A missing file,
// an old layout or a corrupt file yields ErrNoSnapshot: the caller rebuilds.
func (x *Embedded) Load(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", ErrNoSnapshot
	}
	defer f.Close()
	var snap snapshot
	if err := gob.NewDecoder(bufio.NewReader(f)).Decode(&snap); err != nil || snap.Version != snapshotVersion {
		return "", ErrNoSnapshot
	}
	fresh := NewEmbedded()
	if err := fresh.Upsert(context.Background(), snap.Docs); err != nil {
		return "", err
	}
	x.mu.Lock()
	x.docs, x.docEnt, x.ents, x.entNum, x.byEntry, x.post, x.dead = fresh.docs, fresh.docEnt, fresh.ents, fresh.entNum, fresh.byEntry, fresh.post, 0
	x.mu.Unlock()
	return snap.Tag, nil
}
