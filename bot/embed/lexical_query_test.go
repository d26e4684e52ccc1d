package embed

import (
	"reflect"
	"testing"
)

// queryByMaps is Query as it was first written (maps, Doc's code path):
// the reference the faster Query must equal bit for bit.
func queryByMaps(l *Lexical, text string) Sparse {
	c, ns, dl := l.counts(text)
	w := make(map[uint32]float64, len(c))
	for id := range c {
		w[id] = l.opt.Weights[ns[id]-1] * l.IDF(id)
	}
	q := FromMap(w)
	if self := q.Dot(l.doc(c, ns, dl)); self > 0 {
		for i := range q.Val {
			q.Val[i] = float32(float64(q.Val[i]) / self)
		}
	}
	return q
}

func TestLexical_QueryEqualsMapReference(t *testing.T) {
	docs := []string{"门店营业时间是几点到几点", "几点关门", "怎么退货", "退款多久到账", "退货退款怎么办", "积分怎么用", "发票开错了怎么办", "会员卡 积分 兑换"}
	texts := append([]string{"", " ", "a", "退退退退退", "怎么怎么怎么", "火星天气", "门店 几点 关门", "一二三四五六七八九十一二三四五六七八九十一二三四五六七八九十一二三四五六七八九十"}, docs...)
	for _, maxN := range []int{1, 2, 3} {
		l := NewLexical(LexicalOptions{MaxN: maxN})
		l.Fit(docs)
		for _, s := range texts {
			got, want := l.Query(s), queryByMaps(l, s)
			if len(want.Idx) == 0 && len(got.Idx) == 0 {
				continue
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("MaxN %d, %q:\n got %v\nwant %v", maxN, s, got, want)
			}
		}
	}
}

func FuzzLexical_Query(f *testing.F) {
	docs := []string{"门店营业时间是几点到几点", "几点关门", "怎么退货", "退款多久到账", "ab ab abc"}
	l := NewLexical(LexicalOptions{MaxN: 2, Weights: []float64{1.2, 1}, K1: 0.8, B: 0.5})
	l.Fit(docs)
	for _, d := range docs {
		f.Add(d)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, want := l.Query(s), queryByMaps(l, s)
		if (len(want.Idx) != 0 || len(got.Idx) != 0) && !reflect.DeepEqual(got, want) {
			t.Fatalf("%q:\n got %v\nwant %v", s, got, want)
		}
	})
}

func TestLexical_EmbedQueryEqualsMapReference(t *testing.T) {
	groups := [][]string{{"门店营业时间是几点到几点", "你们几点开门", "几点关门", "晚上营业到几点"}, {"怎么退货", "如何退货", "退货流程", "我要退掉"},
		{"退款多久到账", "钱什么时候退回来", "退款几天到"}, {"积分怎么用", "积分能换什么", "积分兑换"}}
	var docs []string
	var pairs []Pair
	for _, g := range groups {
		docs = append(docs, g...)
		for a := range g {
			for b := a + 1; b < len(g); b++ {
				pairs = append(pairs, Pair{g[a], g[b]})
			}
		}
	}
	l := NewLexical(LexicalOptions{MaxN: 2, Weights: []float64{1.2, 1}, K1: 0.8, B: 0.5})
	l.FitEntries(groups)
	l.LearnAssociations(pairs, 1, 8)
	if l.Associations() == 0 {
		t.Fatal("no associations learnt; the test needs some")
	}
	for _, s := range append(docs, "退货几天到账", "营业积分", "", "火星") {
		for _, expand := range []float64{0, 0.3, 1} {
			got, want := l.EmbedQuery(s, expand), embedQueryByMaps(l, s, expand)
			if (len(want.Idx) != 0 || len(got.Idx) != 0) && !reflect.DeepEqual(got, want) {
				t.Fatalf("%q expand %v:\n got %v\nwant %v", s, expand, got, want)
			}
		}
	}
}

// embedQueryByMaps is EmbedQuery as it was first written (a map of
// expansion weights).
func embedQueryByMaps(l *Lexical, text string, expand float64) Sparse {
	v := queryByMaps(l, text)
	if expand <= 0 || len(l.assoc) == 0 {
		return v
	}
	add := map[uint32]float64{}
	for i, id := range v.Idx {
		for _, a := range l.assoc[id] {
			add[a.Term] += float64(v.Val[i]) * float64(a.W) * l.IDF(a.Term) / l.IDF(id)
		}
	}
	if len(add) == 0 {
		return v
	}
	return v.AddScaled(FromMap(add), expand)
}
