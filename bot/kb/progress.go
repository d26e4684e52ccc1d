package kb

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// IsTerminal reports whether w is a character device (a terminal). Progress
// bars are drawn only there, never into files, pipes or logs.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// Bar draws a one-line progress bar on a terminal. The zero-cost no-op
// returned for non-terminals keeps callers free of TTY checks.
type Bar struct {
	mu    sync.Mutex
	w     io.Writer
	label string
	last  time.Time
	on    bool
}

// NewBar returns a bar writing to w, drawn only when w is a terminal.
func NewBar(w io.Writer, label string) *Bar {
	return &Bar{w: w, label: label, on: IsTerminal(w)}
}

// Update redraws the bar at most every 100 ms, and always at completion.
func (b *Bar) Update(done, total int) {
	if b == nil || !b.on || total <= 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if done < total && time.Since(b.last) < 100*time.Millisecond {
		return
	}
	b.last = time.Now()
	const width = 30
	n := done * width / total
	fmt.Fprintf(b.w, "\r%s [%s%s] %d/%d", b.label, strings.Repeat("=", n), strings.Repeat(" ", width-n), done, total)
	if done >= total {
		fmt.Fprintln(b.w)
	}
}
