// Package qdranttest is an in-process Qdrant stand-in for tests: a gRPC
// server built from the go-client's own generated service definitions that
// implements the calls kefu makes (collection exists/create, payload index,
// upsert, delete by filter, query with prefetch + RRF fusion), checks them
// against the schema the bot must create, and answers queries by brute
// force (sparse with the IDF modifier, dense cosine, payload filters).
//
// What it covers: that the real go-client requests kefu builds are
// well-formed and mean what kefu intends (collection schema, named vectors,
// payload indexes, filters, vectors, fusion), and that results flow back
// through kefu correctly. What it does not cover: Qdrant's own HNSW/sparse
// index behaviour, its exact score arithmetic (the RRF rank base, float
// rounding), optimisers, persistence, clustering, auth, or wire
// compatibility across server versions — run the tests against a real
// server with KEFU_TEST_QDRANT_ADDR for those.
package qdranttest

import (
	"context"
	"fmt"
	"math"
	"net"
	"slices"
	"sort"
	"sync"

	"github.com/qdrant/go-client/qdrant"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

type point struct {
	id      string
	payload map[string]*qdrant.Value
	sparse  map[string]*qdrant.SparseVector
	dense   map[string][]float32
}

type collection struct {
	req     *qdrant.CreateCollection
	indexed map[string]qdrant.FieldType
	points  map[string]*point
}

// Server is the fake. Its exported counters and Log let tests assert what
// was sent.
type Server struct {
	mu    sync.Mutex
	colls map[string]*collection
	// Log records one line per call, e.g. "create kb", "upsert kb 12".
	Log []string
	// Errors are protocol violations found in requests (also returned to
	// the client as InvalidArgument).
	Errors []string

	gs   *grpc.Server
	Addr string
}

// Start listens on 127.0.0.1 on a free port and serves until Stop.
func Start() (*Server, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{colls: map[string]*collection{}, gs: grpc.NewServer(), Addr: lis.Addr().String()}
	qdrant.RegisterCollectionsServer(s.gs, collSrv{s: s})
	qdrant.RegisterPointsServer(s.gs, pointsSrv{s: s})
	go s.gs.Serve(lis)
	return s, nil
}

// Stop shuts the server down.
func (s *Server) Stop() { s.gs.Stop() }

// Collection returns the create request of a collection (nil when absent).
func (s *Server) Collection(name string) *qdrant.CreateCollection {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.colls[name]; ok {
		return c.req
	}
	return nil
}

// Calls returns a copy of Log and clears it.
func (s *Server) Calls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.Log
	s.Log = nil
	return out
}

// Points counts the points of a collection.
func (s *Server) Points(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.colls[name]; ok {
		return len(c.points)
	}
	return 0
}

func (s *Server) bad(format string, a ...any) error {
	msg := fmt.Sprintf(format, a...)
	s.Errors = append(s.Errors, msg)
	return status.Error(codes.InvalidArgument, msg)
}

// collectionExists answers CollectionExists.
func (s *Server) collectionExists(_ context.Context, r *qdrant.CollectionExistsRequest) (*qdrant.CollectionExistsResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.colls[r.GetCollectionName()]
	return &qdrant.CollectionExistsResponse{Result: &qdrant.CollectionExists{Exists: ok}}, nil
}

// get answers Get (collection info: the vector configuration).
func (s *Server) get(_ context.Context, r *qdrant.GetCollectionInfoRequest) (*qdrant.GetCollectionInfoResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.coll(r.GetCollectionName())
	if err != nil {
		return nil, err
	}
	return &qdrant.GetCollectionInfoResponse{Result: &qdrant.CollectionInfo{
		Status:        qdrant.CollectionStatus_Green,
		PointsCount:   qdrant.PtrOf(uint64(len(c.points))),
		Config:        &qdrant.CollectionConfig{Params: &qdrant.CollectionParams{VectorsConfig: c.req.GetVectorsConfig(), SparseVectorsConfig: c.req.GetSparseVectorsConfig()}},
		PayloadSchema: map[string]*qdrant.PayloadSchemaInfo{},
	}}, nil
}

// create answers Create.
func (s *Server) create(_ context.Context, r *qdrant.CreateCollection) (*qdrant.CollectionOperationResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Log = append(s.Log, "create "+r.GetCollectionName())
	if _, ok := s.colls[r.GetCollectionName()]; ok {
		return nil, status.Errorf(codes.AlreadyExists, "Collection `%s` already exists!", r.GetCollectionName())
	}
	sp := r.GetSparseVectorsConfig().GetMap()
	if sp["lexical"] == nil || sp["lexical"].GetModifier() != qdrant.Modifier_Idf {
		return nil, s.bad("collection needs sparse vector \"lexical\" with the IDF modifier, got %v", sp)
	}
	if m := r.GetVectorsConfig().GetParamsMap().GetMap(); m != nil {
		if d := m["dense"]; d == nil || d.GetSize() == 0 || d.GetDistance() != qdrant.Distance_Cosine {
			return nil, s.bad("dense vector config must be named \"dense\", cosine, sized: %v", m)
		}
	}
	s.colls[r.GetCollectionName()] = &collection{req: r, indexed: map[string]qdrant.FieldType{}, points: map[string]*point{}}
	return &qdrant.CollectionOperationResponse{Result: true}, nil
}

func (s *Server) coll(name string) (*collection, error) {
	c, ok := s.colls[name]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "Collection `%s` doesn't exist!", name)
	}
	return c, nil
}

// createFieldIndex answers CreateFieldIndex.
func (s *Server) createFieldIndex(_ context.Context, r *qdrant.CreateFieldIndexCollection) (*qdrant.PointsOperationResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.coll(r.GetCollectionName())
	if err != nil {
		return nil, err
	}
	if r.FieldType == nil {
		return nil, s.bad("payload index %q without a field type", r.GetFieldName())
	}
	c.indexed[r.GetFieldName()] = r.GetFieldType()
	s.Log = append(s.Log, "index "+r.GetFieldName())
	return &qdrant.PointsOperationResponse{Result: &qdrant.UpdateResult{Status: qdrant.UpdateStatus_Completed}}, nil
}

func pointID(id *qdrant.PointId) string {
	if u := id.GetUuid(); u != "" {
		return u
	}
	return fmt.Sprint(id.GetNum())
}

// upsert answers Upsert.
func (s *Server) upsert(_ context.Context, r *qdrant.UpsertPoints) (*qdrant.PointsOperationResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.coll(r.GetCollectionName())
	if err != nil {
		return nil, err
	}
	dims := c.req.GetVectorsConfig().GetParamsMap().GetMap()
	for _, p := range r.GetPoints() {
		pt := &point{id: pointID(p.GetId()), payload: p.GetPayload(), sparse: map[string]*qdrant.SparseVector{}, dense: map[string][]float32{}}
		for name, v := range p.GetVectors().GetVectors().GetVectors() {
			switch {
			case v.GetSparse() != nil:
				if name != "lexical" {
					return nil, s.bad("sparse vector %q not in the schema", name)
				}
				sv := v.GetSparse()
				if len(sv.GetIndices()) != len(sv.GetValues()) {
					return nil, s.bad("sparse vector with %d indices and %d values", len(sv.GetIndices()), len(sv.GetValues()))
				}
				seen := map[uint32]bool{}
				for _, i := range sv.GetIndices() {
					if seen[i] {
						return nil, s.bad("duplicate sparse index %d", i)
					}
					seen[i] = true
				}
				pt.sparse[name] = sv
			case v.GetDense() != nil:
				d := dims[name]
				if d == nil || uint64(len(v.GetDense().GetData())) != d.GetSize() {
					return nil, s.bad("dense vector %q of size %d does not match the schema", name, len(v.GetDense().GetData()))
				}
				pt.dense[name] = v.GetDense().GetData()
			default:
				return nil, s.bad("point %s: vector %q is neither sparse nor dense", pt.id, name)
			}
		}
		c.points[pt.id] = pt
	}
	s.Log = append(s.Log, fmt.Sprintf("upsert %s %d", r.GetCollectionName(), len(r.GetPoints())))
	return &qdrant.PointsOperationResponse{Result: &qdrant.UpdateResult{Status: qdrant.UpdateStatus_Completed}}, nil
}

// deletePoints answers Delete (by filter or by ids).
func (s *Server) deletePoints(_ context.Context, r *qdrant.DeletePoints) (*qdrant.PointsOperationResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.coll(r.GetCollectionName())
	if err != nil {
		return nil, err
	}
	n := 0
	if f := r.GetPoints().GetFilter(); f != nil {
		if err := s.checkFilter(c, f); err != nil {
			return nil, err
		}
		for id, p := range c.points {
			if match(f, p.payload) {
				delete(c.points, id)
				n++
			}
		}
	} else {
		for _, id := range r.GetPoints().GetPoints().GetIds() {
			delete(c.points, pointID(id))
			n++
		}
	}
	s.Log = append(s.Log, fmt.Sprintf("delete %s %d", r.GetCollectionName(), n))
	return &qdrant.PointsOperationResponse{Result: &qdrant.UpdateResult{Status: qdrant.UpdateStatus_Completed}}, nil
}

// checkFilter requires every filtered field to have a payload index, as a
// production collection must (unindexed filters are slow on big ones).
func (s *Server) checkFilter(c *collection, f *qdrant.Filter) error {
	var walk func(f *qdrant.Filter) error
	walk = func(f *qdrant.Filter) error {
		for _, list := range [][]*qdrant.Condition{f.GetMust(), f.GetShould(), f.GetMustNot()} {
			for _, cond := range list {
				if sub := cond.GetFilter(); sub != nil {
					if err := walk(sub); err != nil {
						return err
					}
					continue
				}
				fc := cond.GetField()
				if fc == nil {
					return s.bad("unsupported condition %v", cond)
				}
				if _, ok := c.indexed[fc.GetKey()]; !ok {
					return s.bad("filter on %q, which has no payload index", fc.GetKey())
				}
			}
		}
		return nil
	}
	return walk(f)
}

func match(f *qdrant.Filter, pl map[string]*qdrant.Value) bool {
	if f == nil {
		return true
	}
	for _, c := range f.GetMust() {
		if !cond(c, pl) {
			return false
		}
	}
	for _, c := range f.GetMustNot() {
		if cond(c, pl) {
			return false
		}
	}
	if len(f.GetShould()) > 0 {
		for _, c := range f.GetShould() {
			if cond(c, pl) {
				return true
			}
		}
		return false
	}
	return true
}

// values flattens a payload value (lists match if any element matches).
func values(v *qdrant.Value) []*qdrant.Value {
	if l := v.GetListValue(); l != nil {
		return l.GetValues()
	}
	if v == nil {
		return nil
	}
	return []*qdrant.Value{v}
}

func cond(c *qdrant.Condition, pl map[string]*qdrant.Value) bool {
	if sub := c.GetFilter(); sub != nil {
		return match(sub, pl)
	}
	fc := c.GetField()
	vals := values(pl[fc.GetKey()])
	if m := fc.GetMatch(); m != nil {
		for _, v := range vals {
			switch mv := m.GetMatchValue().(type) {
			case *qdrant.Match_Keyword:
				if v.GetStringValue() == mv.Keyword {
					return true
				}
			case *qdrant.Match_Keywords:
				if slices.Contains(mv.Keywords.GetStrings(), v.GetStringValue()) {
					return true
				}
			case *qdrant.Match_Boolean:
				if _, ok := v.GetKind().(*qdrant.Value_BoolValue); ok && v.GetBoolValue() == mv.Boolean {
					return true
				}
			case *qdrant.Match_Integer:
				if _, ok := v.GetKind().(*qdrant.Value_IntegerValue); ok && v.GetIntegerValue() == mv.Integer {
					return true
				}
			}
		}
		return false
	}
	if r := fc.GetRange(); r != nil {
		for _, v := range vals {
			x := float64(v.GetIntegerValue())
			if d, ok := v.GetKind().(*qdrant.Value_DoubleValue); ok {
				x = d.DoubleValue
			}
			if (r.Gt == nil || x > r.GetGt()) && (r.Gte == nil || x >= r.GetGte()) &&
				(r.Lt == nil || x < r.GetLt()) && (r.Lte == nil || x <= r.GetLte()) {
				return true
			}
		}
	}
	return false
}

type scored struct {
	p *point
	s float64
}

// nearest scores points for one nearest query on vector "using".
func (s *Server) nearest(c *collection, q *qdrant.Query, using string, f *qdrant.Filter, limit uint64) ([]scored, error) {
	in := q.GetNearest()
	if in == nil {
		return nil, s.bad("only nearest queries are supported here, got %T", q.GetVariant())
	}
	var out []scored
	switch {
	case in.GetSparse() != nil:
		if using != "lexical" {
			return nil, s.bad("sparse query must use \"lexical\", got %q", using)
		}
		qv := in.GetSparse()
		// IDF modifier: idf(t) = ln(1 + (N - n + 0.5)/(n + 0.5)) over
		// points having the sparse vector, as Qdrant documents it.
		df := map[uint32]float64{}
		var n float64
		for _, p := range c.points {
			if sv := p.sparse[using]; sv != nil {
				n++
				for _, i := range sv.GetIndices() {
					df[i]++
				}
			}
		}
		for _, p := range c.points {
			sv := p.sparse[using]
			if sv == nil || !match(f, p.payload) {
				continue
			}
			dv := map[uint32]float32{}
			for i, idx := range sv.GetIndices() {
				dv[idx] = sv.GetValues()[i]
			}
			var sum float64
			for i, idx := range qv.GetIndices() {
				if w, ok := dv[idx]; ok {
					idf := math.Log(1 + (n-df[idx]+0.5)/(df[idx]+0.5))
					sum += float64(qv.GetValues()[i]) * idf * float64(w)
				}
			}
			if sum > 0 {
				out = append(out, scored{p, sum})
			}
		}
	case in.GetDense() != nil:
		qv := in.GetDense().GetData()
		if _, ok := c.req.GetVectorsConfig().GetParamsMap().GetMap()[using]; !ok {
			return nil, s.bad("dense query on unknown vector %q", using)
		}
		for _, p := range c.points {
			dv := p.dense[using]
			if dv == nil || !match(f, p.payload) {
				continue
			}
			if len(dv) != len(qv) {
				return nil, s.bad("dense query of size %d on vectors of size %d", len(qv), len(dv))
			}
			var dot, na, nb float64
			for i := range dv {
				dot += float64(dv[i]) * float64(qv[i])
				na += float64(dv[i]) * float64(dv[i])
				nb += float64(qv[i]) * float64(qv[i])
			}
			if na > 0 && nb > 0 {
				out = append(out, scored{p, dot / math.Sqrt(na*nb)})
			}
		}
	default:
		return nil, s.bad("unsupported nearest input %T", in.GetVariant())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].s > out[j].s || (out[i].s == out[j].s && out[i].p.id < out[j].p.id) })
	if uint64(len(out)) > limit {
		out = out[:limit]
	}
	return out, nil
}

// scroll answers Scroll: points matching the filter in id order, paged.
func (s *Server) scroll(_ context.Context, r *qdrant.ScrollPoints) (*qdrant.ScrollResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.coll(r.GetCollectionName())
	if err != nil {
		return nil, err
	}
	if r.Filter != nil {
		if err := s.checkFilter(c, r.GetFilter()); err != nil {
			return nil, err
		}
	}
	var ids []string
	for id, p := range c.points {
		if match(r.GetFilter(), p.payload) {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	start := 0
	if r.Offset != nil {
		start = sort.SearchStrings(ids, pointID(r.GetOffset()))
	}
	limit := int(r.GetLimit())
	if limit == 0 {
		limit = 10
	}
	out := &qdrant.ScrollResponse{}
	end := min(len(ids), start+limit)
	include := r.GetWithPayload().GetInclude().GetFields()
	for _, id := range ids[start:end] {
		pl := map[string]*qdrant.Value{}
		for k, v := range c.points[id].payload {
			if include == nil || slices.Contains(include, k) {
				pl[k] = v
			}
		}
		out.Result = append(out.Result, &qdrant.RetrievedPoint{Id: qdrant.NewID(id), Payload: pl})
	}
	if end < len(ids) {
		out.NextPageOffset = qdrant.NewID(ids[end])
	}
	s.Log = append(s.Log, fmt.Sprintf("scroll %s %d", r.GetCollectionName(), len(out.Result)))
	return out, nil
}

// query answers Query: a nearest query, or prefetches
// fused with RRF (score Σ 1/(k + rank), rank from 1).
func (s *Server) query(_ context.Context, r *qdrant.QueryPoints) (*qdrant.QueryResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.coll(r.GetCollectionName())
	if err != nil {
		return nil, err
	}
	if r.Filter != nil {
		if err := s.checkFilter(c, r.GetFilter()); err != nil {
			return nil, err
		}
	}
	limit := r.GetLimit()
	if limit == 0 {
		limit = 10
	}
	var res []scored
	if len(r.GetPrefetch()) > 0 {
		k := 2.0
		switch v := r.GetQuery().GetVariant().(type) {
		case *qdrant.Query_Rrf:
			if v.Rrf.K != nil {
				k = float64(v.Rrf.GetK())
			}
		case *qdrant.Query_Fusion:
			if v.Fusion != qdrant.Fusion_RRF {
				return nil, s.bad("only RRF fusion is supported here")
			}
		default:
			return nil, s.bad("prefetch without a fusion query: %T", v)
		}
		acc := map[string]*scored{}
		for _, pf := range r.GetPrefetch() {
			// Prefetches inherit the request's filter in Qdrant.
			f := r.GetFilter()
			if pf.Filter != nil {
				f = &qdrant.Filter{Must: []*qdrant.Condition{qdrant.NewFilterAsCondition(f), qdrant.NewFilterAsCondition(pf.GetFilter())}}
			}
			list, err := s.nearest(c, pf.GetQuery(), pf.GetUsing(), f, max(pf.GetLimit(), 1))
			if err != nil {
				return nil, err
			}
			for rank, x := range list {
				a := acc[x.p.id]
				if a == nil {
					a = &scored{p: x.p}
					acc[x.p.id] = a
				}
				a.s += 1 / (k + float64(rank+1))
			}
		}
		for _, a := range acc {
			res = append(res, *a)
		}
		sort.Slice(res, func(i, j int) bool { return res[i].s > res[j].s || (res[i].s == res[j].s && res[i].p.id < res[j].p.id) })
		if uint64(len(res)) > limit {
			res = res[:limit]
		}
	} else {
		res, err = s.nearest(c, r.GetQuery(), r.GetUsing(), r.GetFilter(), limit)
		if err != nil {
			return nil, err
		}
	}
	s.Log = append(s.Log, fmt.Sprintf("query %s %d", r.GetCollectionName(), len(res)))
	include := r.GetWithPayload().GetInclude().GetFields()
	out := &qdrant.QueryResponse{}
	for _, x := range res {
		pl := map[string]*qdrant.Value{}
		for k, v := range x.p.payload {
			if include == nil || slices.Contains(include, k) {
				pl[k] = v
			}
		}
		out.Result = append(out.Result, &qdrant.ScoredPoint{Id: qdrant.NewID(x.p.id), Score: float32(x.s), Payload: pl})
	}
	return out, nil
}

// collSrv and pointsSrv expose Server as the two gRPC services (both have a
// Delete method, so one type cannot implement both).
type collSrv struct {
	qdrant.UnimplementedCollectionsServer
	s *Server
}

// CollectionExists implements qdrant.CollectionsServer.
func (c collSrv) CollectionExists(ctx context.Context, r *qdrant.CollectionExistsRequest) (*qdrant.CollectionExistsResponse, error) {
	return c.s.collectionExists(ctx, r)
}

// Get implements qdrant.CollectionsServer.
func (c collSrv) Get(ctx context.Context, r *qdrant.GetCollectionInfoRequest) (*qdrant.GetCollectionInfoResponse, error) {
	return c.s.get(ctx, r)
}

// Create implements qdrant.CollectionsServer.
func (c collSrv) Create(ctx context.Context, r *qdrant.CreateCollection) (*qdrant.CollectionOperationResponse, error) {
	return c.s.create(ctx, r)
}

type pointsSrv struct {
	qdrant.UnimplementedPointsServer
	s *Server
}

// CreateFieldIndex implements qdrant.PointsServer.
func (p pointsSrv) CreateFieldIndex(ctx context.Context, r *qdrant.CreateFieldIndexCollection) (*qdrant.PointsOperationResponse, error) {
	return p.s.createFieldIndex(ctx, r)
}

// Upsert implements qdrant.PointsServer.
func (p pointsSrv) Upsert(ctx context.Context, r *qdrant.UpsertPoints) (*qdrant.PointsOperationResponse, error) {
	return p.s.upsert(ctx, r)
}

// Delete implements qdrant.PointsServer.
func (p pointsSrv) Delete(ctx context.Context, r *qdrant.DeletePoints) (*qdrant.PointsOperationResponse, error) {
	return p.s.deletePoints(ctx, r)
}

// Scroll implements qdrant.PointsServer.
func (p pointsSrv) Scroll(ctx context.Context, r *qdrant.ScrollPoints) (*qdrant.ScrollResponse, error) {
	return p.s.scroll(ctx, r)
}

// Query implements qdrant.PointsServer.
func (p pointsSrv) Query(ctx context.Context, r *qdrant.QueryPoints) (*qdrant.QueryResponse, error) {
	return p.s.query(ctx, r)
}
