package surveys

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"reflect"
	"slices"
	"testing"
	"time"

	"kefu/conv"
	"kefu/engine"
)

func TestBotContact_EncodeRoundTrip(t *testing.T) {
	at := time.Date(2026, 11, 23, 14, 16, 22, 123456789, time.UTC)
	for _, b := range []botContact{
		{Conv: "bot:demo:u1:1795443385715", Customer: "demo:u1", Channel: "demo", ChannelType: conv.ChannelWeChatOA, ExternalUser: "u1",
			Account: "gh_1", Store: "store-001", Entries: []string{"kb-1", "kb-2"}, StartedAt: at, LastTurnAt: at.Add(time.Minute), LastMsgAt: at.Add(time.Second)},
		{Conv: "bot:kf:x:1", Customer: "kf:x"}, // no entries, zero times
	} {
		got, err := decodeBotContact(b.encode())
		if err != nil || !reflect.DeepEqual(got, b) {
			t.Fatalf("round trip: %+v, %v; want %+v", got, err, b)
		}
	}
	for _, bad := range [][]byte{nil, {}, {2}, {botContactV1, 200}, (&botContact{Conv: "c"}).encode()[:4]} {
		if _, err := decodeBotContact(bad); err == nil {
			t.Fatalf("decoded garbage %v", bad)
		}
	}
}

// Stored contacts outlive the binary that wrote them: these bytes, written
// by the version that introduced botContactV1, must keep encoding and
// decoding exactly so.
func TestBotContact_StoredBytesPinned(t *testing.T) {
	at := time.Date(2026, 11, 23, 14, 16, 22, 123456789, time.UTC)
	for _, tc := range []struct {
		b   botContact
		hex string
	}{
		{botContact{Conv: "bot:demo:u1:1795443385715", Customer: "demo:u1", Channel: "demo", ChannelType: conv.ChannelWeChatOA, ExternalUser: "u1",
			Account: "gh_1", Store: "store-001", Entries: []string{"kb-1", "kb-2"}, StartedAt: at, LastTurnAt: at.Add(time.Minute), LastMsgAt: at.Add(time.Second)},
			"0119626f743a64656d6f3a75313a313739353434333338353731350764656d6f3a75310464656d6f097765636861745f6f610275310467685f310973746f72652d3030310204" +
				"6b622d31046b622d32aaa4dbdcc98fd9ea31aa8496e18893d9ea31aaccb196d18fd9ea31"},
		{botContact{Conv: "bot:kf:x:1", Customer: "kf:x"}, "010a626f743a6b663a783a31046b663a78000000000000000000"},
	} {
		if got := hex.EncodeToString(tc.b.encode()); got != tc.hex {
			t.Errorf("%+v: encoded %s, want %s", tc.b, got, tc.hex)
		}
		raw, _ := hex.DecodeString(tc.hex)
		if got, err := decodeBotContact(raw); err != nil || !reflect.DeepEqual(got, tc.b) {
			t.Errorf("%s: decoded %+v, %v; want %+v", tc.hex, got, err, tc.b)
		}
	}
}

// A contact stored as JSON by an older version, with that version's
// per-customer "idle:" timer, keeps its entries and still ends on idle.
func TestBotIdle_OldJSONContactStillEnds(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	now := h.clock.Now()
	old := botContact{Conv: "bot:demo:old1:1", Customer: "demo:old1", Channel: "demo", ChannelType: conv.ChannelWeChatOA, ExternalUser: "old1",
		Store: "store-001", Entries: []string{"kb-old"}, StartedAt: now.Add(-time.Minute), LastTurnAt: now.Add(-time.Minute), LastMsgAt: now.Add(-time.Minute)}
	raw, _ := json.Marshal(old)
	if err := h.eng.Set(ctx, keyBot+"demo:old1", raw, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := h.eng.Enqueue(ctx, queueTimers, engine.Job{ID: "idle:demo:old1", Due: now.Add(DefaultBotIdle - time.Minute)}); err != nil {
		t.Fatal(err)
	}
	msg := conv.Message{ID: "o2", Channel: "demo", ChannelType: conv.ChannelWeChatOA, Customer: "demo:old1", ExternalUser: "old1", Kind: conv.MsgText, CreatedAt: now}
	if err := h.svc.NoteBotTurn(ctx, msg, "kb-new"); err != nil {
		t.Fatal(err)
	}
	h.advance(DefaultBotIdle - time.Minute) // the old timer fires early and re-arms
	if n := len(h.ev.of(conv.EvSurveyScheduled)); n != 0 {
		t.Fatalf("contact ended %d min after its last turn", DefaultBotIdle/time.Minute-1)
	}
	h.advance(time.Minute)
	sch := h.ev.of(conv.EvSurveyScheduled)
	if len(sch) != 1 || sch[0].Conv != "bot:demo:old1:1" {
		t.Fatalf("scheduled = %+v", sch)
	}
	h.advance(DefaultDelay)
	sent := h.out.byPrefix("survey:")
	if len(sent) != 1 {
		t.Fatalf("survey not sent: %+v", h.ev.all)
	}
	sv, _ := h.svc.loadSurvey(ctx, sent[0].ID[len("survey:"):])
	if !slices.Equal(sv.Attribution.Entries, []string{"kb-old", "kb-new"}) {
		t.Fatalf("entries = %v", sv.Attribution.Entries)
	}
}

// The timer of an ended contact, firing late, leaves the customer's next
// contact (and its own timer) alone.
func TestBotIdle_StaleTimerSparesNextContact(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	turn := func(id string) {
		t.Helper()
		msg := conv.Message{ID: id, Channel: "demo", ChannelType: conv.ChannelWeChatOA, Customer: "demo:n1", ExternalUser: "n1", Kind: conv.MsgText, CreatedAt: h.clock.Now()}
		if err := h.svc.NoteBotTurn(ctx, msg, ""); err != nil {
			t.Fatal(err)
		}
	}
	turn("a1")
	first, _, err := h.svc.getBotContact(ctx, keyBot+"demo:n1")
	if err != nil {
		t.Fatal(err)
	}
	h.advance(DefaultBotIdle)
	if n := len(h.ev.of(conv.EvSurveyScheduled)); n != 1 {
		t.Fatalf("first contact: %d scheduled", n)
	}
	turn("b1")
	// The first contact's timer again (as if redelivered after its lease).
	ack, err := h.svc.fire(ctx, engine.Job{ID: botIdleTimer(first.Conv)})
	if err != nil || !ack {
		t.Fatalf("stale timer: ack %v, %v", ack, err)
	}
	if _, _, err := h.svc.getBotContact(ctx, keyBot+"demo:n1"); err != nil {
		t.Fatalf("stale timer touched the next contact: %v", err)
	}
	h.advance(DefaultBotIdle)
	if sch := h.ev.of(conv.EvSurveyScheduled); len(sch) != 2 || sch[1].Conv == first.Conv {
		t.Fatalf("second contact not ended by its own timer: %+v", sch)
	}
}

// Turns in quick succession that only move the contact's times are not
// written; a new entry, or a turn turnCoalesce later, is.
func TestNoteBotTurn_CoalescesQuickTurns(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	key := keyBot + "demo:q1"
	turn := func(id, entry string) botContact {
		t.Helper()
		msg := conv.Message{ID: id, Channel: "demo", ChannelType: conv.ChannelWeChatOA, Customer: "demo:q1", ExternalUser: "q1", Kind: conv.MsgText, CreatedAt: h.clock.Now()}
		if err := h.svc.NoteBotTurn(ctx, msg, entry); err != nil {
			t.Fatal(err)
		}
		b, _, err := h.svc.getBotContact(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	first := turn("t1", "kb-hours")
	step := h.svc.turnCoalesce() / 3
	h.advance(step)
	if b := turn("t2", "kb-hours"); !b.LastTurnAt.Equal(first.LastTurnAt) || !b.LastMsgAt.Equal(first.LastMsgAt) {
		t.Fatalf("a quick repeat turn was written: %+v", b)
	}
	h.advance(step)
	if b := turn("t3", "kb-address"); !slices.Equal(b.Entries, []string{"kb-hours", "kb-address"}) || !b.LastTurnAt.After(first.LastTurnAt) {
		t.Fatalf("a turn with a new entry was not written: %+v", b)
	}
	last := turn("t4", "")
	h.advance(h.svc.turnCoalesce())
	if b := turn("t5", ""); !b.LastTurnAt.After(last.LastTurnAt) {
		t.Fatalf("a turn turnCoalesce later was not written: %+v", b)
	}
	if c := h.svc.turnCoalesce(); c != 30*time.Second {
		t.Fatalf("turnCoalesce with the default BotIdle = %s, want 30s", c)
	}
}
