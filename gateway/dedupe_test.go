package gateway

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"kefu/conv"
)

// dedupeState.bytes writes exactly what json.Marshal writes, on the hand
// path (no reply, text replies) and on the fallback (other replies).
func TestDedupeState_BytesMatchJSON(t *testing.T) {
	texts := []string{"", "营业时间为每天 9:00–22:00", `quote " back\\slash`, "<b>&</b>", "line\nbreak\ttab\u2028\u2029", "\x00\x1f", string([]byte{0xff, 'a'})}
	var states []dedupeState
	for _, txt := range texts {
		r := conv.Text(txt)
		states = append(states,
			dedupeState{S: "d", R: &r, At: 1795000000123},
			dedupeState{S: "p", O: "gw-" + txt, A: true, At: -5},
		)
	}
	states = append(states,
		dedupeState{S: "d", At: 0},
		dedupeState{S: "d", R: &conv.Reply{Kind: conv.ReplyImage, MediaID: "m1"}, At: 7},
		dedupeState{S: "d", R: &conv.Reply{Kind: conv.ReplyNews, Articles: []conv.Article{{Title: "t"}}}, At: 7},
		dedupeState{S: "d", R: &conv.Reply{Kind: conv.ReplyText}, At: 7},
	)
	for _, s := range states {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.bytes(); string(got) != string(want) {
			t.Errorf("bytes() = %s\njson.Marshal = %s", got, want)
		}
		// appendTo after existing bytes (the pooled buffer's use) keeps them.
		if got := s.appendTo([]byte("prefix")); string(got) != "prefix"+string(want) {
			t.Errorf("appendTo = %s, want prefix%s", got, want)
		}
		back, err := parseState(s.bytes())
		if err != nil || !reflect.DeepEqual(back.R == nil, s.R == nil) || back.S != s.S || back.At != s.At {
			t.Errorf("round trip of %+v: %+v, %v", s, back, err)
		}
	}
	// A new field in dedupeState or conv.Reply must be added to the hand path.
	if n := reflect.TypeOf(dedupeState{}).NumField(); n != 5 {
		t.Errorf("dedupeState has %d fields; update bytes()", n)
	}
	if n := reflect.TypeOf(conv.Reply{}).NumField(); n != 8 {
		t.Errorf("conv.Reply has %d fields; update textOnly()", n)
	}
}

func FuzzDedupeStateBytes(f *testing.F) {
	f.Add("d", "", false, "营业时间", int64(1))
	f.Add("p", "owner", true, strings.Repeat("<&>", 5), int64(-1))
	f.Fuzz(func(t *testing.T, st, owner string, async bool, text string, at int64) {
		r := conv.Text(text)
		s := dedupeState{S: st, O: owner, A: async, R: &r, At: at}
		want, _ := json.Marshal(s)
		if got := s.bytes(); string(got) != string(want) {
			t.Fatalf("bytes() = %q, json.Marshal = %q", got, want)
		}
	})
}
