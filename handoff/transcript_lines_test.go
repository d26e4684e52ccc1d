package handoff

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"kefu/conv"
	"kefu/engine"
)

// Transcripts written by an older version as a JSON array keep working,
// appends keep order, and the bound drops the oldest turns.
func TestTranscripts_LineFormatAndBound(t *testing.T) {
	eng, err := engine.OpenEmbedded(t.TempDir(), engine.EmbeddedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	ctx := context.Background()
	tr := NewTranscripts(eng, 3, 0)
	c := conv.CustomerID("demo:u1")
	old := `[{"at":"2026-11-01T00:00:00Z","role":"customer","text":"旧的一条"}]`
	if err := eng.Set(ctx, transcriptKey(c), []byte(old), 0); err != nil {
		t.Fatal(err)
	}
	if got, err := tr.Read(ctx, c); err != nil || len(got) != 1 || got[0].Text != "旧的一条" {
		t.Fatalf("old format: %v %+v", err, got)
	}
	for i := 0; i < 2; i++ {
		if err := tr.AppendMany(ctx, c, conv.Turn{Role: conv.TurnCustomer, Text: fmt.Sprint("问", i)}, conv.Turn{Role: conv.TurnBot, Text: fmt.Sprint("答", i)}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := tr.Read(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"答0", "问1", "答1"}
	if len(got) != len(want) {
		t.Fatalf("got %d turns, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		if got[i].Text != w {
			t.Fatalf("turn %d = %q, want %q", i, got[i].Text, w)
		}
	}
}

// Appends racing on one customer (two instances, or a bot turn and an
// agent reply) all land, each writer's turns in its order, and the bound
// still holds.
func TestTranscripts_ConcurrentAppendsLoseNothing(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine.Engine) {
		ctx := context.Background()
		const writers, each = 8, 10
		tr := NewTranscripts(eng, writers*each*2, time.Hour)
		c := conv.CustomerID("demo:race")
		var wg sync.WaitGroup
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for i := 0; i < each; i++ {
					q := conv.Turn{Role: conv.TurnCustomer, Text: fmt.Sprintf("q%d-%d", w, i)}
					a := conv.Turn{Role: conv.TurnBot, Text: fmt.Sprintf("a%d-%d", w, i)}
					if err := tr.AppendMany(ctx, c, q, a); err != nil {
						t.Error(err)
						return
					}
				}
			}(w)
		}
		wg.Wait()
		got, err := tr.Read(ctx, c)
		if err != nil || len(got) != writers*each*2 {
			t.Fatalf("read %d turns, %v; want %d", len(got), err, writers*each*2)
		}
		next := make([]int, writers)
		for i := 0; i < len(got); i += 2 {
			var w, n int
			if _, err := fmt.Sscanf(got[i].Text, "q%d-%d", &w, &n); err != nil || n != next[w] || got[i+1].Text != fmt.Sprintf("a%d-%d", w, n) {
				t.Fatalf("turns %d/%d = %q %q (writer %d expected %d)", i, i+1, got[i].Text, got[i+1].Text, w, next[w])
			}
			next[w]++
		}
		// One more pair drops the two oldest turns.
		if err := tr.AppendMany(ctx, c, conv.Turn{Role: conv.TurnCustomer, Text: "last-q"}, conv.Turn{Role: conv.TurnBot, Text: "last-a"}); err != nil {
			t.Fatal(err)
		}
		after, _ := tr.Read(ctx, c)
		if len(after) != len(got) || after[0].Text != got[2].Text || after[len(after)-1].Text != "last-a" {
			t.Fatalf("bound: %d turns, first %q last %q", len(after), after[0].Text, after[len(after)-1].Text)
		}
	})
}

// The stored list does not grow without bound: once it is well past the
// bound it is cut back to the newest turns (an old-format array included),
// and reads never see more than the bound.
func TestTranscripts_StoredListIsCutBack(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine.Engine) {
		ctx := context.Background()
		tr := NewTranscripts(eng, 3, time.Hour)
		c := conv.CustomerID("demo:long")
		old := `[{"at":"2026-11-01T00:00:00Z","role":"customer","text":"旧的一条"}]`
		if err := eng.Set(ctx, transcriptKey(c), []byte(old), 0); err != nil {
			t.Fatal(err)
		}
		text := strings.Repeat("长", 60) // ~180 bytes a turn
		for i := 0; i < 40; i++ {
			if err := tr.AppendMany(ctx, c, conv.Turn{Role: conv.TurnCustomer, Text: fmt.Sprint(text, i)}); err != nil {
				t.Fatal(err)
			}
			got, err := tr.Read(ctx, c)
			if err != nil || len(got) != min(i+2, 3) || got[len(got)-1].Text != fmt.Sprint(text, i) {
				t.Fatalf("after %d appends: %d turns, %v", i+1, len(got), err)
			}
		}
		raw, err := eng.Get(ctx, transcriptKey(c))
		if err != nil {
			t.Fatal(err)
		}
		if n := len(turnLines(raw)); n >= 40 || len(raw) > 3*trimTurnBytes+200 || raw[0] == '[' {
			t.Fatalf("stored list not cut back: %d turns, %d bytes", n, len(raw))
		}
		if ttl, err := eng.TTL(ctx, transcriptKey(c)); err != nil || ttl <= 0 {
			t.Fatalf("TTL after a cut = %v, %v", ttl, err)
		}
	})
}
