package index

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net"
	"strconv"
	"sync"

	"github.com/qdrant/go-client/qdrant"
)

// QdrantConfig configures the Qdrant store.
type QdrantConfig struct {
	Addr       string // host:port of the gRPC API (6334)
	APIKey     string
	TLS        bool
	Collection string
}

// Names of the collection's vectors and payload fields.
const (
	qSparse = "lexical"
	qDense  = "dense"
	// RRFK is the reciprocal-rank-fusion constant sent to Qdrant, the same
	// as embed.Fuse's default so fused scores are rescaled identically.
	RRFK = 60
)

// Qdrant is an Index on a Qdrant collection (gRPC): one point per document
// with a named sparse vector "lexical" (IDF modifier: Qdrant applies the idf,
// the bot sends idf-free query weights) and, when a dense embedder is
// configured, a named dense vector "dense" (cosine); payload indexes on the
// filter fields. Hybrid queries prefetch both vectors and fuse with RRF on
// the server. Entry pooling (Pool) runs on the returned points.
type Qdrant struct {
	c          *qdrant.Client
	collection string
	mu         sync.Mutex
	ready      bool
	denseDim   int
}

var _ Index = (*Qdrant)(nil)

// NewQdrant connects to Qdrant. The collection is created on first upsert,
// when the dense dimension (if any) is known.
func NewQdrant(ctx context.Context, cfg QdrantConfig) (*Qdrant, error) {
	host, portS, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("qdrant addr %q: %w", cfg.Addr, err)
	}
	port, err := strconv.Atoi(portS)
	if err != nil {
		return nil, fmt.Errorf("qdrant addr %q: bad port", cfg.Addr)
	}
	c, err := qdrant.NewClient(&qdrant.Config{Host: host, Port: port, APIKey: cfg.APIKey, UseTLS: cfg.TLS, SkipCompatibilityCheck: true})
	if err != nil {
		return nil, err
	}
	q := &Qdrant{c: c, collection: cfg.Collection}
	exists, err := c.CollectionExists(ctx, cfg.Collection)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("qdrant: %w", err)
	}
	q.ready = exists
	if exists {
		// A restarted bot must know whether the collection has dense
		// vectors, or hybrid queries would silently go lexical-only.
		info, err := c.GetCollectionInfo(ctx, cfg.Collection)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("qdrant collection info: %w", err)
		}
		q.denseDim = int(info.GetConfig().GetParams().GetVectorsConfig().GetParamsMap().GetMap()[qDense].GetSize())
	}
	return q, nil
}

// IDFOnServer reports that the collection applies idf to sparse queries.
func (q *Qdrant) IDFOnServer() bool { return true }

func (q *Qdrant) ensure(ctx context.Context, dim int) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.ready {
		return nil
	}
	req := &qdrant.CreateCollection{
		CollectionName: q.collection,
		SparseVectorsConfig: qdrant.NewSparseVectorsConfig(map[string]*qdrant.SparseVectorParams{
			qSparse: {Modifier: qdrant.Modifier_Idf.Enum()},
		}),
	}
	if dim > 0 {
		req.VectorsConfig = qdrant.NewVectorsConfigMap(map[string]*qdrant.VectorParams{
			qDense: {Size: uint64(dim), Distance: qdrant.Distance_Cosine},
		})
	}
	if err := q.c.CreateCollection(ctx, req); err != nil {
		return fmt.Errorf("qdrant create collection: %w", err)
	}
	fields := []struct {
		name string
		typ  qdrant.FieldType
	}{
		{"entry", qdrant.FieldType_FieldTypeKeyword}, {"stores", qdrant.FieldType_FieldTypeKeyword},
		{"all_stores", qdrant.FieldType_FieldTypeBool}, {"category", qdrant.FieldType_FieldTypeKeyword},
		{"visibility", qdrant.FieldType_FieldTypeKeyword}, {"status", qdrant.FieldType_FieldTypeKeyword},
		{"valid_until", qdrant.FieldType_FieldTypeInteger}, {"seq", qdrant.FieldType_FieldTypeInteger},
	}
	for _, f := range fields {
		if _, err := q.c.CreateFieldIndex(ctx, &qdrant.CreateFieldIndexCollection{
			CollectionName: q.collection, FieldName: f.name, FieldType: f.typ.Enum(), Wait: qdrant.PtrOf(true),
		}); err != nil {
			return fmt.Errorf("qdrant payload index %s: %w", f.name, err)
		}
	}
	q.ready, q.denseDim = true, dim
	return nil
}

// PointID is the stable UUID of document seq of entry.
func PointID(entry string, seq int) string {
	h := sha256.Sum256([]byte(entry + "#" + strconv.Itoa(seq)))
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

// Upsert implements Index: the entries' old points are deleted, then the
// new ones written (waiting for both, so a search right after sees them).
func (q *Qdrant) Upsert(ctx context.Context, docs []Doc) error {
	if len(docs) == 0 {
		return nil
	}
	dim := 0
	for _, d := range docs {
		if len(d.Dense) > 0 {
			dim = len(d.Dense)
			break
		}
	}
	if err := q.ensure(ctx, dim); err != nil {
		return err
	}
	var entries []string
	seen := map[string]bool{}
	points := make([]*qdrant.PointStruct, 0, len(docs))
	for _, d := range docs {
		if !seen[d.Entry] {
			seen[d.Entry] = true
			entries = append(entries, d.Entry)
		}
		vecs := map[string]*qdrant.Vector{}
		if d.Sparse.Len() > 0 {
			vecs[qSparse] = qdrant.NewVectorSparse(d.Sparse.Idx, d.Sparse.Val)
		}
		if len(d.Dense) > 0 {
			vecs[qDense] = qdrant.NewVectorDense(d.Dense)
		}
		stores := make([]any, len(d.Meta.Stores))
		for i, s := range d.Meta.Stores {
			stores[i] = s
		}
		points = append(points, &qdrant.PointStruct{
			Id:      qdrant.NewID(PointID(d.Entry, d.Seq)),
			Vectors: qdrant.NewVectorsMap(vecs),
			Payload: qdrant.NewValueMap(map[string]any{
				"entry": d.Entry, "seq": int64(d.Seq), "stores": stores, "all_stores": len(d.Meta.Stores) == 0,
				"category": d.Meta.Category, "visibility": d.Meta.Visibility, "status": d.Meta.Status,
				"valid_until": d.Meta.ValidUntil, "hash": d.Hash,
			}),
		})
	}
	if err := q.Delete(ctx, entries); err != nil {
		return err
	}
	const batch = 512
	for i := 0; i < len(points); i += batch {
		if _, err := q.c.Upsert(ctx, &qdrant.UpsertPoints{
			CollectionName: q.collection, Wait: qdrant.PtrOf(true), Points: points[i:min(i+batch, len(points))],
		}); err != nil {
			return fmt.Errorf("qdrant upsert: %w", err)
		}
	}
	return nil
}

// Delete implements Index.
func (q *Qdrant) Delete(ctx context.Context, entries []string) error {
	q.mu.Lock()
	ready := q.ready
	q.mu.Unlock()
	if len(entries) == 0 || !ready {
		return nil
	}
	_, err := q.c.Delete(ctx, &qdrant.DeletePoints{
		CollectionName: q.collection, Wait: qdrant.PtrOf(true),
		Points: qdrant.NewPointsSelectorFilter(&qdrant.Filter{Must: []*qdrant.Condition{qdrant.NewMatchKeywords("entry", entries...)}}),
	})
	if err != nil {
		return fmt.Errorf("qdrant delete: %w", err)
	}
	return nil
}

// QdrantFilter translates f into a Qdrant payload filter.
func QdrantFilter(f Filter) *qdrant.Filter {
	var must []*qdrant.Condition
	if !f.AnyStore {
		should := []*qdrant.Condition{qdrant.NewMatchBool("all_stores", true)}
		if f.Store != "" {
			should = append(should, qdrant.NewMatchKeyword("stores", f.Store))
		}
		must = append(must, qdrant.NewFilterAsCondition(&qdrant.Filter{Should: should}))
	}
	if f.Category != "" {
		must = append(must, qdrant.NewMatchKeyword("category", f.Category))
	}
	if len(f.Visibilities) > 0 {
		must = append(must, qdrant.NewMatchKeywords("visibility", f.Visibilities...))
	}
	if len(f.Statuses) > 0 {
		must = append(must, qdrant.NewMatchKeywords("status", f.Statuses...))
	}
	if !f.Now.IsZero() {
		must = append(must, qdrant.NewFilterAsCondition(&qdrant.Filter{Should: []*qdrant.Condition{
			qdrant.NewMatchInt("valid_until", 0),
			qdrant.NewRange("valid_until", &qdrant.Range{Gt: qdrant.PtrOf(float64(f.Now.Unix()))}),
		}}))
	}
	return &qdrant.Filter{Must: must}
}

// Search implements Index. q.Sparse must be idf-free (the collection's IDF
// modifier applies it). Hybrid: prefetch sparse and dense, fuse with RRF.
func (q *Qdrant) Search(ctx context.Context, qu Query, f Filter, k int) ([]Hit, error) {
	q.mu.Lock()
	ready, dim := q.ready, q.denseDim
	q.mu.Unlock()
	if !ready || k <= 0 {
		return nil, nil
	}
	// Several points per entry: ask for more points than entries wanted.
	limit := uint64(max(10*k, 50))
	req := &qdrant.QueryPoints{
		CollectionName: q.collection, Filter: QdrantFilter(f), Limit: qdrant.PtrOf(limit),
		WithPayload: qdrant.NewWithPayloadInclude("entry", "seq"),
	}
	hasSparse, hasDense := qu.Sparse.Len() > 0, len(qu.Dense) > 0 && dim > 0
	hybrid := hasSparse && hasDense
	switch {
	case hybrid:
		req.Prefetch = []*qdrant.PrefetchQuery{
			{Query: qdrant.NewQuerySparse(qu.Sparse.Idx, qu.Sparse.Val), Using: qdrant.PtrOf(qSparse), Limit: qdrant.PtrOf(limit)},
			{Query: qdrant.NewQueryDense(qu.Dense), Using: qdrant.PtrOf(qDense), Limit: qdrant.PtrOf(limit)},
		}
		req.Query = qdrant.NewQueryRRF(&qdrant.Rrf{K: qdrant.PtrOf(uint32(RRFK))})
	case hasDense:
		req.Query, req.Using = qdrant.NewQueryDense(qu.Dense), qdrant.PtrOf(qDense)
	case hasSparse:
		req.Query, req.Using = qdrant.NewQuerySparse(qu.Sparse.Idx, qu.Sparse.Val), qdrant.PtrOf(qSparse)
	default:
		return nil, nil
	}
	pts, err := q.c.Query(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("qdrant query: %w", err)
	}
	idx := map[string]int{}
	var hits []Hit
	var pools []pooler
	for _, p := range pts {
		e := p.GetPayload()["entry"].GetStringValue()
		seq := int(p.GetPayload()["seq"].GetIntegerValue())
		s := float64(p.GetScore())
		if hybrid {
			s /= 2.0 / (RRFK + 1) // rank 1 in both lists → 1, like embed.Fuse
		}
		i, ok := idx[e]
		if !ok {
			i = len(hits)
			idx[e] = i
			hits = append(hits, Hit{Entry: e})
			pools = append(pools, pooler{})
		}
		if hybrid || (hasDense && !hasSparse) {
			// Fused and dense scores are max-pooled: the profile document
			// has no dense vector and rank scores do not add up.
			if seq != ProfileSeq && s > pools[i].m1 {
				pools[i].m1 = s
			}
			continue
		}
		pools[i].add(seq, s)
	}
	for i := range hits {
		if hybrid || !hasSparse {
			hits[i].Score = pools[i].m1
		} else {
			hits[i].Score = pools[i].score()
			hits[i].Sparse = hits[i].Score
			hits[i].Best = pools[i].m1
		}
	}
	return topK(hits, k), nil
}

// Hashes returns the content hash of every entry in the collection (read
// from the profile points), so a restarted bot re-embeds only entries that
// changed while it was down. Stored sparse vectors carry no idf (Qdrant
// applies it), so they stay valid when the rest of the KB changes.
func (q *Qdrant) Hashes(ctx context.Context) (map[string]string, error) {
	q.mu.Lock()
	ready := q.ready
	q.mu.Unlock()
	out := map[string]string{}
	if !ready {
		return out, nil
	}
	var offset *qdrant.PointId
	for {
		pts, next, err := q.c.ScrollAndOffset(ctx, &qdrant.ScrollPoints{
			CollectionName: q.collection, Limit: qdrant.PtrOf(uint32(1000)), Offset: offset,
			Filter:      &qdrant.Filter{Must: []*qdrant.Condition{qdrant.NewMatchInt("seq", ProfileSeq)}},
			WithPayload: qdrant.NewWithPayloadInclude("entry", "hash"),
		})
		if err != nil {
			return nil, fmt.Errorf("qdrant scroll: %w", err)
		}
		for _, p := range pts {
			out[p.GetPayload()["entry"].GetStringValue()] = p.GetPayload()["hash"].GetStringValue()
		}
		if next == nil || len(pts) == 0 {
			return out, nil
		}
		offset = next
	}
}

// Close implements Index.
func (q *Qdrant) Close() error { return q.c.Close() }
