package bot

import (
	"context"
	"os"
	"testing"
	"time"

	"kefu/bot/kb"
)

func TestKBWatcher_ReloadsOnChange(t *testing.T) {
	kbPath := copySample(t)
	b := newSampleBot(t, func(c *Config) { c.KB = kbPath })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- KBWatcher{Bot: b, Interval: 20 * time.Millisecond}.Run(ctx) }()

	// A broken file is ignored: the live KB stays.
	os.WriteFile(kbPath, []byte("{not json\n"), 0o644)
	time.Sleep(100 * time.Millisecond)
	if _, ok := b.Entry("hours-001"); !ok {
		t.Fatal("broken KB file replaced the live KB")
	}
	entries := []kb.Entry{{ID: "new-1", Question: "可以带宠物进店吗", Answer: "导盲犬以外的宠物请勿入内。"}}
	if err := kb.WriteFile(kbPath, entries); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		if _, ok := b.Entry("new-1"); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("watcher did not reload the changed KB")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, ok := b.Entry("hours-001"); ok {
		t.Error("removed entry still live after reload")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
