package bot

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

var codecMemories = []Memory{
	{}, {Misses: 1}, {Misses: -3}, {Misses: 1 << 40}, {Pending: []string{"kb-1"}, PendingQuestion: "怎么退货"},
	{Pending: []string{"a", "", "c"}, PendingQuestion: "q\x00\xff", Misses: 2, RateEntry: "kb-9", RateQuestion: "退款多久到账"},
	{RateEntry: "e", RateQuestion: string(make([]byte, 300))},
}

func TestMemory_BinaryRoundTrip(t *testing.T) {
	// A field added to Memory needs a place in the binary layout (and here).
	if n := reflect.TypeFor[Memory]().NumField(); n != 5 {
		t.Fatalf("Memory has %d fields; update Memory.appendBinary, decodeMemoryV1 and this test", n)
	}
	for _, m := range codecMemories {
		b := encodeMemory(&m)
		got, ok := decodeMemory(b)
		if !ok || !reflect.DeepEqual(got, m) {
			t.Fatalf("%+v: decoded %+v, ok %v", m, got, ok)
		}
		// Every truncation or extension is rejected, not misread.
		for i := 0; i < len(b); i++ {
			if _, ok := decodeMemory(b[:i]); ok && i > 0 {
				t.Fatalf("%+v: truncation to %d bytes accepted", m, i)
			}
		}
		if _, ok := decodeMemory(append(b, 0)); ok {
			t.Fatalf("%+v: trailing byte accepted", m)
		}
	}
}

// Stored memories outlive the binary that wrote them: these bytes, written
// by the version that introduced memV1, must keep encoding and decoding
// exactly so.
func TestMemory_StoredBytesPinned(t *testing.T) {
	for _, tc := range []struct {
		m   Memory
		hex string
	}{
		{Memory{}, "010000000000"},
		{Memory{Misses: -3}, "010000050000"},
		{Memory{Misses: 1 << 40}, "0100008080808080400000"},
		{Memory{Pending: []string{"kb-1"}, PendingQuestion: "怎么退货"}, "0101046b622d310ce6808ee4b988e98080e8b4a7000000"},
		{Memory{Pending: []string{"a", "", "c"}, PendingQuestion: "q\x00\xff", Misses: 2, RateEntry: "kb-9", RateQuestion: "退款多久到账"},
			"01030161000163037100ff04046b622d3912e98080e6acbee5a49ae4b985e588b0e8b4a6"},
	} {
		if got := hex.EncodeToString(encodeMemory(&tc.m)); got != tc.hex {
			t.Errorf("%+v: encoded %s, want %s", tc.m, got, tc.hex)
		}
		b, _ := hex.DecodeString(tc.hex)
		if got, ok := decodeMemory(b); !ok || !reflect.DeepEqual(got, tc.m) {
			t.Errorf("%s: decoded %+v, %v; want %+v", tc.hex, got, ok, tc.m)
		}
	}
}

func TestEngineState_LoadsOldJSONMemory(t *testing.T) {
	e := newFakeEngine()
	s := EngineState(e)
	ctx := context.Background()
	for _, m := range codecMemories {
		if m.isZero() {
			continue
		}
		b, _ := json.Marshal(m) // as versions before the binary form stored it
		if err := e.Set(ctx, stateKey("old"), b, time.Hour); err != nil {
			t.Fatal(err)
		}
		got, err := s.Load(ctx, "old")
		if err != nil {
			t.Fatal(err)
		}
		var want Memory
		_ = json.Unmarshal(b, &want)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("old JSON %s: loaded %+v, want %+v", b, got, want)
		}
		if err := s.Save(ctx, "new", m, time.Hour); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.Load(ctx, "new"); !reflect.DeepEqual(got, m) {
			t.Fatalf("saved %+v, loaded %+v", m, got)
		}
	}
	for _, corrupt := range []string{"", "{", "\x01", "\x01\x05a", "\x02abc", "garbage"} {
		_ = e.Set(ctx, stateKey("bad"), []byte(corrupt), time.Hour)
		if got, err := s.Load(ctx, "bad"); err != nil || !got.isZero() {
			t.Fatalf("corrupt %q: loaded %+v, %v; want a fresh memory", corrupt, got, err)
		}
	}
}

func FuzzDecodeMemory(f *testing.F) {
	for _, m := range codecMemories {
		f.Add(encodeMemory(&m))
		b, _ := json.Marshal(m)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, ok := decodeMemory(b)
		if !ok || len(b) == 0 || b[0] != memV1 {
			return
		}
		// What decodes survives a re-encoding (varints may be overlong in b).
		if got, ok := decodeMemory(encodeMemory(&m)); !ok || !reflect.DeepEqual(got, m) {
			t.Fatalf("%q decoded to %+v, then to %+v", b, m, got)
		}
	})
}
