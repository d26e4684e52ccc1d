package evaluate

import (
	"context"
	"os"
	"testing"

	"kefu/bot"
)

func TestFailures(t *testing.T) {
	if os.Getenv("KEFU_FAIL") == "" {
		t.Skip()
	}
	queries, faq := loadSet(t, os.Getenv("KEFU_FAIL"))
	entries, _ := LoadFAQ(faq)
	q := map[string]string{}
	for _, e := range entries {
		q[e.ID] = e.Question
	}
	b, _ := bot.NewWithEntries(bot.DefaultConfig(), entries, nil, nil)
	n := 0
	for _, r := range queries {
		if Half(r.Query) != 0 {
			continue
		}
		c := b.Search(context.Background(), r.Query, "", false, 3)
		if len(c) > 0 && c[0].EntryID != r.FAQID {
			n++
			if n > 40 {
				break
			}
			t.Logf("Q %s | want %s | got %s (%.2f)", r.Query, q[r.FAQID], c[0].Question, c[0].Score)
		}
	}
}
