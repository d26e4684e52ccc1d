package evaluate

import (
	"context"
	"os"
	"testing"

	"kefu/bot"
	"kefu/bot/embed"
	"kefu/bot/textnorm"
)

func TestExp(t *testing.T) {
	if os.Getenv("KEFU_EXP") == "" {
		t.Skip("experiment: set KEFU_EXP=1")
	}
	_ = embed.LexicalOptions{}
	L := func(o embed.LexicalOptions) func() { return func() { bot.ExpLexical = &o } }
	_ = L
	variants := []struct {
		name string
		set  func()
	}{
		{"default", func() { textnorm.CorrectBigrams = false }},
		{"nocorr", func() { bot.ExpNoCorrect = true }},
		{"corr-bi", func() { textnorm.CorrectBigrams = true }},
	}
	for _, set := range []string{"bq", "afqmc", "lcqmc"} {
		queries, faq := loadSet(t, set)
		entries, _ := LoadFAQ(faq)
		for _, v := range variants {
			bot.ExpNoFillers, bot.ExpNoCorrect, bot.ExpLexical = false, false, nil
			v.set()
			for half := 0; half < 1; half++ {
			res, err := Run(context.Background(), entries, queries, Options{Half: half})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%-6s %-10s h%d R@1 %.3f R@5 %.3f base %.3f ratio %.2f", set, v.name, half, res.R1, res.R5, res.Baseline.R1, res.R1/res.Baseline.R1)
			}
		}
	}
}
