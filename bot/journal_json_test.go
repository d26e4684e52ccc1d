package bot

import (
	"encoding/json"
	"math"
	"reflect"
	"testing"
	"time"
)

var recordStrings = []string{
	"", "plain", "营业时间是几点？", `quote " and \ backslash`, "<b>&amp;</b>", "tab\tnew\nline\rcr\bbs\fff",
	"\x00\x01\x1f\x7f", "bad utf8 \xff\xfe end", "\u2028 and \u2029", "emoji 😀", "\xe4\xbd",
}

var recordFloats = []float64{
	0, 1, -1, 0.5, 0.7912345678901234, 1.0 / 3, 1e-6, 9.99e-7, 1e-7, 1.5e-10, 1e20, 1e21, 1.2345e22, -3e-8,
	math.SmallestNonzeroFloat64, math.MaxFloat64, 123456789.125, 0.1 + 0.2,
}

func TestRecord_AppendJSONMatchesMarshal(t *testing.T) {
	// A field added to Record or Candidate needs a line in appendJSON (and here).
	if n := reflect.TypeFor[Record]().NumField(); n != 14 {
		t.Fatalf("Record has %d fields; update Record.appendJSON and this test", n)
	}
	if n := reflect.TypeFor[Candidate]().NumField(); n != 6 {
		t.Fatalf("Candidate has %d fields; update Candidate.appendJSON and this test", n)
	}
	yes, no := true, false
	at := time.Date(2026, 11, 23, 14, 16, 22, 123456789, time.FixedZone("CST", 8*3600))
	recs := []Record{{}, {ID: "0123456789abcdef", Kind: RecAnswer, At: at, Question: "怎么退货", Store: "s1", Customer: "oa:u", Entry: "kb-1", Score: 0.79,
		Candidates: []Candidate{{EntryID: "kb-1", Question: "如何退货", Score: 0.79}, {EntryID: "kb-2", Score: 0.5, Answer: "a", Category: "c", AgentOnly: true}},
		Helpful:    &yes, Answer: "x", Agent: "a", Ref: "r", Reason: "confident"}, {Kind: RecRating, Helpful: &no, At: time.Now()}}
	for i, s := range recordStrings {
		recs = append(recs, Record{ID: s, Kind: RecordKind(s), At: at, Question: s, Store: s, Customer: s, Entry: s, Answer: s, Agent: s, Ref: s, Reason: s,
			Candidates: []Candidate{{EntryID: s, Question: s, Answer: s, Category: s, Score: recordFloats[i%len(recordFloats)]}}})
	}
	for _, f := range recordFloats {
		recs = append(recs, Record{Kind: RecFallback, Score: f, Candidates: []Candidate{{EntryID: "e", Score: -f}, {EntryID: "f", Score: f / 3}}})
	}
	for _, r := range recs {
		want, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		got, err := marshalRecord(r)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Fatalf("marshalRecord:\n got %s\nwant %s", got, want)
		}
	}
	for _, bad := range []Record{{Score: math.NaN()}, {Candidates: []Candidate{{Score: math.Inf(1)}}}} {
		if _, err := marshalRecord(bad); err == nil {
			t.Fatalf("marshalRecord(%v): no error; json.Marshal refuses it", bad)
		}
	}
}

func FuzzRecord_AppendJSON(f *testing.F) {
	for i, s := range recordStrings {
		f.Add(s, recordFloats[i%len(recordFloats)])
	}
	f.Fuzz(func(t *testing.T, s string, score float64) {
		r := Record{ID: "x", Kind: RecClarify, Question: s, Reason: s, Score: score, Candidates: []Candidate{{EntryID: s, Question: s, Score: score}}}
		want, werr := json.Marshal(r)
		got, gerr := marshalRecord(r)
		if (werr == nil) != (gerr == nil) || string(got) != string(want) {
			t.Fatalf("marshalRecord:\n got %s %v\nwant %s %v", got, gerr, want, werr)
		}
	})
}
