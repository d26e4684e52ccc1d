package bot

import (
	"context"
	"os"
	"time"
)

// DefaultWatchInterval is how often KBWatcher checks the KB file.
const DefaultWatchInterval = 5 * time.Second

// KBWatcher is a background service that re-publishes the knowledge base
// when its file changes (an editor saved it, `kefu kb import` ran, or
// another instance approved a suggestion on a shared volume). Only changed
// entries are re-indexed. Run it under the app's service group.
type KBWatcher struct {
	Bot      *Bot
	Interval time.Duration
}

// Run polls the KB file's size and modification time until ctx ends. A
// file that fails to import is logged and skipped: the live KB stays as it
// was until the file is fixed.
func (w KBWatcher) Run(ctx context.Context) error {
	every := w.Interval
	if every <= 0 {
		every = DefaultWatchInterval
	}
	stamp := func() (time.Time, int64) {
		st, err := os.Stat(w.Bot.cfg.KB)
		if err != nil {
			return time.Time{}, -1
		}
		return st.ModTime(), st.Size()
	}
	lastMod, lastSize := stamp()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		mod, size := stamp()
		if size < 0 || (mod.Equal(lastMod) && size == lastSize) {
			continue
		}
		if err := w.Bot.Reload(ctx); err != nil {
			w.Bot.log.Warn("kb reload failed; keeping the published KB", "kb", w.Bot.cfg.KB, "err", err)
			lastMod, lastSize = mod, size // retry only after the next edit
			continue
		}
		lastMod, lastSize = mod, size
	}
}
