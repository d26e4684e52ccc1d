package engine

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// Cold files stay open across reads, at most maxOpenCold at a time; a
// forgotten (deleted) segment is read no more, and nothing opens after
// closeAll.
func TestColdFiles_CacheEvictForgetClose(t *testing.T) {
	dir := t.TempDir()
	const n = maxOpenCold + 10
	for seg := uint32(1); seg <= n; seg++ {
		if err := os.WriteFile(filepath.Join(dir, coldName(seg)), []byte(fmt.Sprintf("segment-%03d", seg)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c := newColdFiles(dir)
	for round := 0; round < 2; round++ {
		for seg := uint32(1); seg <= n; seg++ {
			buf := make([]byte, 3)
			if err := c.readAt(seg, buf, 8); err != nil || string(buf) != fmt.Sprintf("%03d", seg) {
				t.Fatalf("round %d segment %d: %q, %v", round, seg, buf, err)
			}
			if len(c.open) > maxOpenCold {
				t.Fatalf("%d files open, limit %d", len(c.open), maxOpenCold)
			}
		}
	}
	// A file closed by an eviction between lookup and read is reopened.
	f, err := c.file(1)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	buf := make([]byte, 3)
	if err := c.readAt(1, buf, 8); err != nil || string(buf) != "001" {
		t.Fatalf("read after the cached file was closed: %q, %v", buf, err)
	}
	c.forget(2)
	if err := os.Remove(filepath.Join(dir, coldName(2))); err != nil {
		t.Fatal(err)
	}
	if err := c.readAt(2, buf, 8); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("read of a forgotten, deleted segment = %v, want not-exist", err)
	}
	c.closeAll()
	if err := c.readAt(3, buf, 8); !errors.Is(err, ErrClosed) {
		t.Fatalf("read after closeAll = %v, want ErrClosed", err)
	}
}
