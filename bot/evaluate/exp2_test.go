package evaluate

import (
	"math"
	"os"
	"sort"
	"testing"

	"kefu/bot/textnorm"
)

type feat map[string]float64

type scheme struct {
	name    string
	uni     float64 // unigram weight
	bi      float64
	skip1   float64 // a_b gap-1 pairs
	skip2   float64
	tri     float64
	idfPow  float64
	docNorm float64 // exponent of doc norm in denominator (1 = cosine)
	bm25    bool
	k1, b   float64
	norm    bool
	digits  bool
	bmidf   bool
}

func feats(s string, sc scheme) feat {
	rs := []rune(s)
	f := feat{}
	for i := range rs {
		if rs[i] == ' ' {
			continue
		}
		f["1"+string(rs[i])] += 1
		if i+1 < len(rs) && rs[i+1] != ' ' && sc.bi > 0 {
			f["2"+string(rs[i:i+2])] += 1
		}
		if i+2 < len(rs) && sc.skip1 > 0 && rs[i+2] != ' ' {
			f["s"+string(rs[i])+string(rs[i+2])] += 1
		}
		if i+3 < len(rs) && sc.skip2 > 0 && rs[i+3] != ' ' {
			f["t"+string(rs[i])+string(rs[i+3])] += 1
		}
		if i+2 < len(rs) && sc.tri > 0 && rs[i+1] != ' ' && rs[i+2] != ' ' {
			f["3"+string(rs[i:i+3])] += 1
		}
	}
	return f
}

func wOf(k string, sc scheme) float64 {
	switch k[0] {
	case '1':
		return sc.uni
	case '2':
		return sc.bi
	case 's':
		return sc.skip1
	case 't':
		return sc.skip2
	case '3':
		return sc.tri
	}
	return 0
}

func expScore(t *testing.T, set string, sc scheme, half int) float64 {
	queries, faq := loadSet(t, set)
	entries, _ := LoadFAQ(faq)
	var nm *textnorm.Normalizer
	if sc.norm {
		nm = textnorm.New(textnorm.Options{})
	}
	prep := func(s string) string {
		if nm != nil {
			s = nm.Normalize(s)
		} else {
			s = textnorm.Fold(s)
		}
		if sc.digits {
			rs := []rune(s)
			out := rs[:0]
			for i, r := range rs {
				if r >= '0' && r <= '9' {
					if i > 0 && rs[i-1] >= '0' && rs[i-1] <= '9' {
						continue
					}
					r = '0'
				}
				out = append(out, r)
			}
			s = string(out)
		}
		return s
	}
	docs := make([]feat, len(entries))
	df := map[string]float64{}
	var avgdl float64
	for i, e := range entries {
		docs[i] = feats(prep(e.Question), sc)
		for k, v := range docs[i] {
			df[k]++
			avgdl += v * wOf(k, sc)
		}
	}
	n := float64(len(entries))
	avgdl /= n
	idf := func(k string) float64 {
		v := math.Log((1+n)/(1+df[k])) + 1
		if sc.bmidf {
			v = math.Log(1 + (n-df[k]+0.5)/(df[k]+0.5))
		}
		return math.Pow(v, sc.idfPow)
	}
	dv := make([]feat, len(docs))
	for i, d := range docs {
		v := feat{}
		var nn, dl float64
		for k, c := range d {
			dl += c * wOf(k, sc)
		}
		for k, c := range d {
			var w float64
			if sc.bm25 {
				w = wOf(k, sc) * c * (sc.k1 + 1) / (c + sc.k1*(1-sc.b+sc.b*dl/avgdl))
			} else {
				w = wOf(k, sc) * (1 + math.Log(c)) * idf(k)
			}
			v[k] = w
			nn += w * w
		}
		if !sc.bm25 {
			nn = math.Pow(math.Sqrt(nn), sc.docNorm)
			for k := range v {
				v[k] /= nn
			}
		}
		dv[i] = v
	}
	hit, tot := 0, 0
	for _, q := range queries {
		if Half(q.Query) != half {
			continue
		}
		qf := feats(prep(q.Query), sc)
		qv := feat{}
		for k, c := range qf {
			if sc.bm25 {
				qv[k] = idf(k)
			} else {
				qv[k] = wOf(k, sc) * (1 + math.Log(c)) * idf(k)
			}
		}
		best, bi := -1.0, -1
		for i, d := range dv {
			var s float64
			for k, w := range qv {
				s += w * d[k]
			}
			if s > best {
				best, bi = s, i
			}
		}
		tot++
		if entries[bi].ID == q.FAQID {
			hit++
		}
	}
	return float64(hit) / float64(tot)
}

func TestExp2(t *testing.T) {
	if os.Getenv("KEFU_EXP2") == "" {
		t.Skip("experiment")
	}
	base := scheme{name: "base", uni: 1, bi: 1, idfPow: 1, docNorm: 1, norm: true}
	mk := func(name string, f func(*scheme)) scheme { s := base; s.name = name; f(&s); return s }
	schemes := []scheme{
		mk("bm25 k.8 b.5 old-idf", func(s *scheme) { s.bm25 = true; s.k1 = 0.8; s.b = 0.5; s.digits = true }),
		mk("bm25 k0.5 b0.30", func(s *scheme) { s.bm25 = true; s.k1 = 0.5; s.b = 0.3; s.digits = true; s.bmidf = true }),
		mk("bm25 k0.5 b0.50", func(s *scheme) { s.bm25 = true; s.k1 = 0.5; s.b = 0.5; s.digits = true; s.bmidf = true }),
		mk("bm25 k0.5 b0.75", func(s *scheme) { s.bm25 = true; s.k1 = 0.5; s.b = 0.75; s.digits = true; s.bmidf = true }),
		mk("bm25 k0.8 b0.30", func(s *scheme) { s.bm25 = true; s.k1 = 0.8; s.b = 0.3; s.digits = true; s.bmidf = true }),
		mk("bm25 k0.8 b0.50", func(s *scheme) { s.bm25 = true; s.k1 = 0.8; s.b = 0.5; s.digits = true; s.bmidf = true }),
		mk("bm25 k0.8 b0.75", func(s *scheme) { s.bm25 = true; s.k1 = 0.8; s.b = 0.75; s.digits = true; s.bmidf = true }),
		mk("bm25 k1.2 b0.30", func(s *scheme) { s.bm25 = true; s.k1 = 1.2; s.b = 0.3; s.digits = true; s.bmidf = true }),
		mk("bm25 k1.2 b0.50", func(s *scheme) { s.bm25 = true; s.k1 = 1.2; s.b = 0.5; s.digits = true; s.bmidf = true }),
		mk("bm25 k1.2 b0.75", func(s *scheme) { s.bm25 = true; s.k1 = 1.2; s.b = 0.75; s.digits = true; s.bmidf = true }),
	}
	var names []string
	res := map[string][]float64{}
	for _, sc := range schemes {
		names = append(names, sc.name)
		for _, set := range []string{"bq", "afqmc", "lcqmc"} {
			res[sc.name] = append(res[sc.name], expScore(t, set, sc, 0))
		}
	}
	sort.Strings(names)
	for _, sc := range schemes {
		r := res[sc.name]
		t.Logf("%-22s bq %.3f afqmc %.3f lcqmc %.3f", sc.name, r[0], r[1], r[2])
	}
}
