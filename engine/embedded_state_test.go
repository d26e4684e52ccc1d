package engine

import "testing"

// TestAppendValueKeepsOlderEntriesIntact checks the in-place growth of
// appended strings: a previous entry (what a snapshot's frozen copy or a
// reader holds) keeps its bytes, and the spare room is reused.
func TestAppendValueKeepsOlderEntriesIntact(t *testing.T) {
	v1 := appendValue(nil, []byte("turn-1\n"))
	v2 := appendValue(v1, []byte("turn-2\n"))
	v3 := appendValue(v2, []byte("turn-3\n"))
	if string(v1) != "turn-1\n" || string(v2) != "turn-1\nturn-2\n" || string(v3) != "turn-1\nturn-2\nturn-3\n" {
		t.Fatalf("values: %q %q %q", v1, v2, v3)
	}
	if &v2[0] != &v3[0] {
		t.Fatal("an append that fits the spare room copied the value")
	}
	big := appendValue(nil, make([]byte, 1<<20))
	if room := cap(big) - len(big); room != maxAppendRoom {
		t.Fatalf("spare room of a 1 MiB value = %d, want %d", room, maxAppendRoom)
	}
}
