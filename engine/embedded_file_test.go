package engine

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestWriteDurable_Modes(t *testing.T) {
	dir := t.TempDir()
	content := strings.Repeat("x", 3<<20) // more than the 1 MiB buffer
	fill := func(w io.Writer) error { _, err := io.WriteString(w, content); return err }

	for _, mode := range []fileMode{createNew, replaceViaTmp} {
		path := filepath.Join(dir, "f")
		os.Remove(path)
		n, err := writeDurable(path, mode, fill)
		if err != nil || n != int64(len(content)) {
			t.Fatalf("mode %d: wrote %d, %v; want %d", mode, n, err, len(content))
		}
		if b, _ := os.ReadFile(path); string(b) != content {
			t.Fatalf("mode %d: file holds %d bytes", mode, len(b))
		}
		if _, err := os.Stat(path + ".tmp"); !os.IsNotExist(err) {
			t.Fatalf("mode %d: tmp file left: %v", mode, err)
		}
	}

	// replaceViaTmp replaces; createNew refuses an existing file and
	// leaves it alone (a segment number is never reused).
	path := filepath.Join(dir, "f")
	if _, err := writeDurable(path, replaceViaTmp, func(w io.Writer) error { _, err := io.WriteString(w, "new"); return err }); err != nil {
		t.Fatal(err)
	}
	if _, err := writeDurable(path, createNew, fill); !errors.Is(err, os.ErrExist) {
		t.Fatalf("createNew over an existing file: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "new" {
		t.Fatalf("existing file changed to %d bytes", len(b))
	}
}

func TestWriteDurable_FailureLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	boom := errors.New("boom")
	fds := openFDs(t)
	for _, mode := range []fileMode{createNew, replaceViaTmp} {
		for range 20 {
			path := filepath.Join(dir, "f")
			// The fill error wins over anything after it, and the file
			// it had started is gone.
			_, err := writeDurable(path, mode, func(w io.Writer) error {
				io.WriteString(w, "partial")
				return boom
			})
			if !errors.Is(err, boom) {
				t.Fatalf("mode %d: %v, want the fill error", mode, err)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Fatalf("mode %d: failed write left %v", mode, ents[0].Name())
			}
		}
	}
	// A snapshot whose rename fails (its target is a non-empty
	// directory) reports that error and removes its tmp file.
	path := filepath.Join(dir, "snap")
	os.MkdirAll(filepath.Join(path, "x"), 0o755)
	if _, err := writeDurable(path, replaceViaTmp, func(w io.Writer) error { return nil }); err == nil {
		t.Fatal("rename over a directory succeeded")
	}
	if _, err := os.Stat(path + ".tmp"); !os.IsNotExist(err) {
		t.Fatalf("tmp file left after a failed rename: %v", err)
	}
	// Every file was closed, on every path.
	if got := openFDs(t); fds >= 0 && got > fds {
		t.Fatalf("open files: %d before, %d after", fds, got)
	}
}

// openFDs counts the process's open files, or -1 where /proc is missing.
func openFDs(t *testing.T) int {
	if runtime.GOOS != "linux" {
		return -1
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}
