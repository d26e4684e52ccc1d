package index

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"testing"
	"time"

	"kefu/bot/embed"
)

func vec(pairs ...float32) embed.Sparse {
	var s embed.Sparse
	for i := 0; i+1 < len(pairs); i += 2 {
		s.Idx = append(s.Idx, uint32(pairs[i]))
		s.Val = append(s.Val, pairs[i+1])
	}
	return s
}

func TestEmbedded_FilterPoolDelete(t *testing.T) {
	ctx := context.Background()
	x := NewEmbedded()
	pub := Meta{Visibility: "customer", Status: "published"}
	err := x.Upsert(ctx, []Doc{
		{Entry: "a", Seq: 0, Sparse: vec(1, 1), Meta: pub},
		{Entry: "a", Seq: 1, Sparse: vec(1, 0.5, 2, 1), Meta: pub},
		{Entry: "b", Seq: 0, Sparse: vec(1, 0.9), Meta: Meta{Visibility: "agent", Status: "published"}},
		{Entry: "c", Seq: 0, Sparse: vec(1, 0.8), Meta: Meta{Visibility: "customer", Status: "published", Stores: []string{"s1"}}},
		{Entry: "d", Seq: 0, Sparse: vec(1, 0.95), Meta: Meta{Visibility: "customer", Status: "published", ValidUntil: 100}},
	})
	if err != nil {
		t.Fatal(err)
	}
	q := Query{Sparse: vec(1, 1)}
	cust := Filter{Visibilities: []string{"customer"}, Statuses: []string{"published"}, Now: time.Unix(200, 0)}
	hits, _ := x.Search(ctx, q, cust, 10)
	if len(hits) != 1 || hits[0].Entry != "a" {
		t.Fatalf("customer without store: %+v", hits)
	}
	// a: best 1, second 0.5 → Pool(1, 0.5, 0).
	if want := Pool(1, 0.5, 0); hits[0].Score < want-1e-6 || hits[0].Score > want+1e-6 {
		t.Errorf("pooled score %v, want %v", hits[0].Score, want)
	}
	// Best is the best question's own score, before pooling.
	if hits[0].Best < 1-1e-6 || hits[0].Best > 1+1e-6 {
		t.Errorf("best question score %v, want 1", hits[0].Best)
	}
	cust.Store = "s1"
	if hits, _ := x.Search(ctx, q, cust, 10); len(hits) != 2 {
		t.Errorf("store s1 should see a and c: %+v", hits)
	}
	if hits, _ := x.Search(ctx, q, Filter{AnyStore: true}, 10); len(hits) != 4 {
		t.Errorf("unfiltered: %+v", hits)
	}
	x.Delete(ctx, []string{"a"})
	if hits, _ := x.Search(ctx, q, Filter{AnyStore: true}, 10); len(hits) != 3 || hits[0].Entry == "a" {
		t.Errorf("after delete: %+v", hits)
	}
}

func TestEmbedded_CompactionAndSnapshot(t *testing.T) {
	ctx := context.Background()
	x := NewEmbedded()
	meta := Meta{Visibility: "customer", Status: "published"}
	for round := 0; round < 5; round++ {
		var docs []Doc
		for i := 0; i < 50; i++ {
			docs = append(docs, Doc{Entry: fmt.Sprint("e", i), Sparse: vec(float32(i), 1, 1000, float32(round+1)), Meta: meta})
		}
		if err := x.Upsert(ctx, docs); err != nil {
			t.Fatal(err)
		}
	}
	if x.Len() != 50 {
		t.Fatalf("live docs %d, want 50", x.Len())
	}
	if len(x.docs) > 100 {
		t.Errorf("%d slots for 50 live docs: compaction did not run", len(x.docs))
	}
	hits, _ := x.Search(ctx, Query{Sparse: vec(7, 1)}, Filter{AnyStore: true}, 1)
	if len(hits) != 1 || hits[0].Entry != "e7" {
		t.Fatalf("after compaction: %+v", hits)
	}
	d := x.Docs("e7")
	if len(d) != 1 || d[0].Sparse.Len() != 2 || d[0].Sparse.Val[1] != 5 {
		t.Fatalf("rebuilt vector %+v", d)
	}
	path := filepath.Join(t.TempDir(), "idx.gob")
	if err := x.Save(path, "tag-1"); err != nil {
		t.Fatal(err)
	}
	y := NewEmbedded()
	tag, err := y.Load(path)
	if err != nil || tag != "tag-1" || y.Len() != 50 {
		t.Fatalf("load: tag %q err %v len %d", tag, err, y.Len())
	}
	if _, err := NewEmbedded().Load(filepath.Join(t.TempDir(), "missing")); err != ErrNoSnapshot {
		t.Errorf("missing snapshot: %v", err)
	}
}

// A common term (in more than 1% of the documents) only adds to entries a
// rarer term reached, but to every question of such an entry: the second
// best question counts in the pooled score even when it shares nothing but
// common terms with the query.
func TestEmbedded_CommonTermsReachWholeEntry(t *testing.T) {
	ctx := context.Background()
	const rare, common = 1, 999
	meta := Meta{Visibility: "customer", Status: "published"}
	docs := []Doc{
		{Entry: "a", Seq: 0, Sparse: vec(rare, 1, common, 0.5), Meta: meta},
		{Entry: "a", Seq: 1, Sparse: vec(common, 0.5), Meta: meta},
	}
	for i := 0; i < 300; i++ {
		docs = append(docs, Doc{Entry: fmt.Sprint("f", i), Sparse: vec(common, 0.4, float32(2000+i), 1), Meta: meta})
	}
	x := NewEmbedded()
	if err := x.Upsert(ctx, docs); err != nil {
		t.Fatal(err)
	}
	q := Query{Sparse: vec(rare, 1, common, 1)}
	want := Pool(1.5, 0.5, 0)
	check := func(x *Embedded, when string) {
		hits, err := x.Search(ctx, q, Filter{AnyStore: true}, 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(hits) != 1 || hits[0].Entry != "a" || math.Abs(hits[0].Score-want) > 1e-6 {
			t.Fatalf("%s: hits %+v, want only a with %v (common terms reach only entries a rare term reached)", when, hits, want)
		}
	}
	check(x, "built")
	path := filepath.Join(t.TempDir(), "idx.gob")
	if err := x.Save(path, "t"); err != nil {
		t.Fatal(err)
	}
	y := NewEmbedded()
	if _, err := y.Load(path); err != nil {
		t.Fatal(err)
	}
	check(y, "loaded")
}
