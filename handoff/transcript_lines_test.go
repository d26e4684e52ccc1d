package handoff

import (
	"context"
	"fmt"
	"testing"

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
