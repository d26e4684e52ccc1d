package conv

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

var jsonStrings = []string{
	"", "plain", "营业时间是几点？", `quote " and \ backslash`, "<b>&amp;</b>", "tab\tnew\nline\rcr\bbs\fff",
	"\x00\x01\x1f\x7f", "bad utf8 \xff\xfe end", "\u2028 and \u2029", "emoji 😀", "\xe4\xbd", "mixed 中<文>&\"\\\n",
}

var jsonTimes = []time.Time{
	{}, time.Date(2026, 11, 23, 14, 16, 22, 0, time.UTC), time.Date(2026, 11, 23, 14, 16, 22, 123456789, time.UTC),
	time.Date(2026, 1, 2, 3, 4, 5, 600000000, time.FixedZone("CST", 8*3600)), time.Now(),
}

func TestTurn_AppendJSONMatchesMarshal(t *testing.T) {
	// A field added to Turn needs a line in AppendJSON (and here).
	if n := reflect.TypeFor[Turn]().NumField(); n != 10 {
		t.Fatalf("Turn has %d fields; update Turn.AppendJSON and this test", n)
	}
	turns := []Turn{{}, {At: jsonTimes[2], Role: TurnBot, Text: "x", Kind: MsgText, EntryID: "kb-1", Intent: "confident", Agent: "a", Conv: "c1", MsgID: "m1", State: StateQueued}}
	for i, s := range jsonStrings {
		turns = append(turns, Turn{At: jsonTimes[i%len(jsonTimes)], Role: TurnCustomer, Text: s, MsgID: s, Agent: s})
	}
	for _, tr := range turns {
		want, err := json.Marshal(tr)
		if err != nil {
			t.Fatal(err)
		}
		if got := tr.AppendJSON(nil); string(got) != string(want) {
			t.Fatalf("AppendJSON:\n got %s\nwant %s", got, want)
		}
	}
}

func TestEvent_AppendJSONMatchesMarshal(t *testing.T) {
	if n := reflect.TypeFor[Event]().NumField(); n != 11 {
		t.Fatalf("Event has %d fields; update Event.AppendJSON and this test", n)
	}
	evs := []Event{{}, {ID: "1-0", Type: EvBotAnswered, At: jsonTimes[4], Conv: "c", Customer: "demo:u", Store: "s1", Channel: "demo", Agent: "a", Actor: "x", Reason: "r",
		Data: map[string]string{"score": "0.791", "entry": "kb-1", "reason": "confident", "z": "", "a<": "&"}}}
	many := map[string]string{}
	for i, s := range jsonStrings {
		many[s+string(rune('a'+i))] = s
		evs = append(evs, Event{Type: EvMessageReceived, At: jsonTimes[i%len(jsonTimes)], Customer: CustomerID(s), Reason: s, Data: map[string]string{"k": s}})
	}
	evs = append(evs, Event{Type: EvClosed, Data: many}, Event{Type: EvClosed, Data: map[string]string{}})
	for _, ev := range evs {
		want, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		if got := ev.AppendJSON(nil); string(got) != string(want) {
			t.Fatalf("AppendJSON:\n got %s\nwant %s", got, want)
		}
	}
}

// decodeBoth decodes b with DecodeJSON and with json.Unmarshal, each into
// a copy of start, and fails if they disagree.
func decodeBoth(t *testing.T, b []byte, start Event) {
	t.Helper()
	cp := func(ev Event) Event {
		if ev.Data != nil {
			m := make(map[string]string, len(ev.Data))
			for k, v := range ev.Data {
				m[k] = v
			}
			ev.Data = m
		}
		return ev
	}
	got, want := cp(start), cp(start)
	gerr := got.DecodeJSON(b)
	werr := json.Unmarshal(b, &want)
	if (gerr == nil) != (werr == nil) {
		t.Fatalf("%q: DecodeJSON error %v, json.Unmarshal error %v", b, gerr, werr)
	}
	if werr == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("%q:\n DecodeJSON   %#v\n json.Unmarshal %#v", b, got, want)
	}
}

var decodeSeeds = []string{
	`{}`, `{"type":"x"}`, `{"id":"1-0","type":"bot_answered","at":"2026-11-23T14:16:32.388679169Z","customer":"demo:u","store":"s","channel":"demo","data":{"entry":"kb-1","score":"0.791"}}`,
	`{"type":"x","data":{}}`, `{"type":"x","data":{"a":"1"},"data":{"b":"2","a":"3"}}`, `{"type":"x","type":"y"}`,
	`{ "type":"x"}`, `{"type" :"x"}`, `{"Type":"x"}`, `{"type":"x","extra":"y"}`, `{"type":null}`, `{"data":null}`, `{"data":{"k":null}}`,
	`{"type":"a\"b"}`, `{"type":"a\u003cb"}`, `{"type":"\ufffd"}`, "{\"type\":\"\xff\"}", "{\"type\":\"a\nb\"}", `{"type":"x",}`, `{"type":"x"}x`,
	`{"type":"x"`, `{"type":`, `{"type"`, `{"`, `{`, ``, `[]`, `null`, `{"at":"2026-13-01T00:00:00Z"}`, `{"at":"not a time"}`, `{"at":5}`,
	`{"at":"2026-01-02T03:04:05+08:00"}`, `{"data":{"a":"1",}}`, `{"data":{"a":"1"}`, `{"data":{"a" :"1"}}`, `{"data":{"a":1}}`, `{"reason":"中文<>&"}`,
}

func TestEvent_DecodeJSONMatchesUnmarshal(t *testing.T) {
	starts := []Event{{}, {Type: "old", Reason: "kept", Data: map[string]string{"old": "v", "a": "0"}}}
	for _, s := range decodeSeeds {
		for _, st := range starts {
			decodeBoth(t, []byte(s), st)
		}
	}
	for i, s := range jsonStrings {
		ev := Event{Type: EvMessageReceived, At: jsonTimes[i%len(jsonTimes)], Customer: CustomerID(s), Reason: s, Data: map[string]string{"k": s, s: "v"}}
		for _, st := range starts {
			decodeBoth(t, ev.AppendJSON(nil), st)
		}
	}
}

func FuzzEvent_DecodeJSON(f *testing.F) {
	for _, s := range decodeSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		decodeBoth(t, b, Event{})
		decodeBoth(t, b, Event{Type: "old", Data: map[string]string{"a": "0"}})
	})
}

func FuzzTurn_AppendJSON(f *testing.F) {
	for _, s := range jsonStrings {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, text, id string) {
		tr := Turn{At: jsonTimes[2], Role: TurnCustomer, Text: text, MsgID: id}
		want, err := json.Marshal(tr)
		if err != nil {
			t.Fatal(err)
		}
		if got := tr.AppendJSON(nil); string(got) != string(want) {
			t.Fatalf("AppendJSON:\n got %s\nwant %s", got, want)
		}
	})
}

// BenchmarkEvent_DecodeJSON decodes a typical message_received event, as
// the report's fold does for every logged event.
func BenchmarkEvent_DecodeJSON(b *testing.B) {
	rec := Event{Type: EvMessageReceived, At: time.Date(2026, 12, 7, 20, 0, 0, 123000000, time.UTC), Customer: "demo:oBench0000000000000000000042",
		Store: "store-001", Channel: "demo", Data: map[string]string{"kind": "text", "msg_id": "oa:wx:m:oBench42:1796670292", "origin": "0"}}.AppendJSON(nil)
	var ev Event
	b.ReportAllocs()
	for b.Loop() {
		data := ev.Data
		clear(data)
		ev = Event{Data: data}
		if err := ev.DecodeJSON(rec); err != nil {
			b.Fatal(err)
		}
	}
}
