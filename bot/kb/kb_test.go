package kb

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

func sampleEntries() []Entry {
	return []Entry{
		{ID: "a", Question: "怎么退货", Similar: []string{"我想退货", "退货流程"}, Answer: "7 天无理由退货。", Category: "退换货", Author: "kb"},
		{ID: "b", Question: "人民广场店几点开门", Answer: "10:00", Stores: []string{"s1", "s2"}, ValidUntil: time.Date(2030, 1, 2, 0, 0, 0, 0, time.UTC)},
		{ID: "c", Question: "内部流程", Answer: "内部", Visibility: AgentOnly, Status: Draft, Image: "media-1", Link: "https://example.com/x"},
	}
}

func TestImportExport_RoundTrip(t *testing.T) {
	want := sampleEntries()
	if err := ValidateAll(want, nil, ValidateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []Format{JSONL, YAML, CSV, XLSX} {
		var buf bytes.Buffer
		if err := Export(&buf, f, want); err != nil {
			t.Fatalf("%s export: %v", f, err)
		}
		got, err := Import(&buf, f, ImportOptions{})
		if err != nil {
			t.Fatalf("%s import: %v", f, err)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %d entries, want %d", f, len(got), len(want))
		}
		for i := range want {
			if got[i].Hash() != want[i].Hash() || got[i].Version != want[i].Version || got[i].Author != want[i].Author {
				t.Errorf("%s entry %d: got %+v, want %+v", f, i, got[i], want[i])
			}
		}
	}
}

func TestImport_ReportsEveryErrorAndImportsNothing(t *testing.T) {
	cases := []struct {
		f    Format
		in   string
		want []string
	}{
		{JSONL, `{"id":"a","question":"q","answer":"x"}
{"id":"a","question":"q2","answer":"y"}
{"id":"b","question":"","answer":"z"}
not json
{"id":"c","question":"q","answer":"x","status":"live","valid_until":"soon"}`,
			[]string{"row 2, column id: duplicate of row 1", "row 3, column question: required", "row 4, column json", "row 5, column valid_until", "row 5, column status"}},
		{CSV, "id,question,answer,visibility\nx,问题,答案,public\ny,问题二,,customer\n",
			[]string{"row 2, column visibility", "row 3, column answer"}},
		{CSV, "id,question,colour\n", []string{"column colour: unknown column", "column answer: missing column"}},
		{YAML, "- id: a\n  question: q\n  answer: x\n- id: b\n  question: q\n  version: many\n", []string{"row 4, column yaml"}},
	}
	for i, c := range cases {
		got, err := Import(strings.NewReader(c.in), c.f, ImportOptions{})
		var ie *ImportError
		if !errors.As(err, &ie) {
			t.Fatalf("case %d: error %v, want *ImportError", i, err)
		}
		if got != nil {
			t.Errorf("case %d: entries returned despite errors", i)
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("case %d: error lacks %q:\n%v", i, w, err)
			}
		}
	}
}

func TestImport_ChineseHeadersAndLists(t *testing.T) {
	in := "\ufeff编号,标准问题,相似问题,答案,门店,状态\nk1,怎么开发票,开票|发票怎么开,在订单页申请,\"s1,s2\",published\n"
	got, err := Import(strings.NewReader(in), CSV, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e := got[0]
	if e.ID != "k1" || len(e.Similar) != 2 || len(e.Stores) != 2 || e.Visibility != Customer {
		t.Errorf("parsed %+v", e)
	}
}

func TestEntry_CustomerServable(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	e := Entry{ID: "x", Question: "q", Answer: "a", Stores: []string{"s1"}}
	e.Normalize()
	cases := []struct {
		mut   func(*Entry)
		store string
		want  bool
	}{
		{func(*Entry) {}, "s1", true},
		{func(*Entry) {}, "s2", false},
		{func(*Entry) {}, "", false},
		{func(e *Entry) { e.Stores = nil }, "", true},
		{func(e *Entry) { e.Visibility = AgentOnly }, "s1", false},
		{func(e *Entry) { e.Status = Draft }, "s1", false},
		{func(e *Entry) { e.Status = Retired }, "s1", false},
		{func(e *Entry) { e.ValidUntil = now }, "s1", false},
		{func(e *Entry) { e.ValidUntil = now.Add(time.Hour) }, "s1", true},
	}
	for i, c := range cases {
		x := e
		c.mut(&x)
		if got := x.CustomerServable(c.store, now); got != c.want {
			t.Errorf("case %d: got %v, want %v", i, got, c.want)
		}
	}
}

func TestBar_OnlyOnTerminal(t *testing.T) {
	var buf bytes.Buffer
	b := NewBar(&buf, "x")
	b.Update(1, 2)
	b.Update(2, 2)
	if buf.Len() != 0 {
		t.Errorf("progress drawn into a non-terminal: %q", buf.String())
	}
}

func fuzzImport(f *testing.F, format Format, seeds ...string) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, err := Import(bytes.NewReader(data), format, ImportOptions{})
		if err != nil {
			if entries != nil {
				t.Fatal("entries returned with an error")
			}
			return
		}
		// Whatever imports must export and import back unchanged.
		var buf bytes.Buffer
		if err := Export(&buf, format, entries); err != nil {
			t.Fatalf("export of imported entries: %v", err)
		}
		again, err := Import(&buf, format, ImportOptions{})
		if err != nil {
			t.Fatalf("re-import: %v\n%s", err, buf.String())
		}
		if len(again) != len(entries) {
			t.Fatalf("re-import: %d entries, want %d", len(again), len(entries))
		}
	})
}

func FuzzImportJSONL(f *testing.F) {
	fuzzImport(f, JSONL, `{"id":"a","question":"q","answer":"x","similar":["s"],"stores":["1"]}`, `{"id":1}`, "\n\n", `{"id":"a","question":"q","answer":"x","valid_until":"2030-01-01"}`)
}

func FuzzImportCSV(f *testing.F) {
	fuzzImport(f, CSV, "id,question,answer\na,q,x\n", "id,question,answer,similar\na,q,x,\"s1\ns2\"\n", "\"", "id\n")
}

func FuzzImportYAML(f *testing.F) {
	fuzzImport(f, YAML, "- id: a\n  question: q\n  answer: x\n", "entries:\n- id: a\n  question: q\n  answer: x\n", "{", "- [")
}

func FuzzImportXLSX(f *testing.F) {
	var buf bytes.Buffer
	Export(&buf, XLSX, sampleEntries()[:1])
	fuzzImport(f, XLSX, buf.String(), "PK\x03\x04", "")
}
