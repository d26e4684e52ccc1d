package engine

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
)

// maxOpenCold bounds the cold segment files held open for reads. A long
// retention makes many segments; the ones read are mostly the newest.
const maxOpenCold = 64

// coldFiles keeps cold segment files open between reads. Opening and
// closing a file around every read was two of a cold read's three system
// calls, and with a small string-spill interval the bot's and surveys'
// per-customer records are read from disk on most messages.
//
// A file is closed when its segment is deleted (forget, called where the
// segment can no longer be read) or evicted when more than maxOpenCold are
// open; a read that meets a file closed by an eviction opens it again.
type coldFiles struct {
	dir    string
	mu     sync.RWMutex
	open   map[uint32]*os.File
	closed bool
}

func newColdFiles(dir string) *coldFiles {
	return &coldFiles{dir: dir, open: map[uint32]*os.File{}}
}

// readAt fills buf from segment seg at off.
func (c *coldFiles) readAt(seg uint32, buf []byte, off int64) error {
	for attempt := 0; ; attempt++ {
		f, err := c.file(seg)
		if err != nil {
			return err
		}
		_, err = f.ReadAt(buf, off)
		if errors.Is(err, os.ErrClosed) && attempt == 0 {
			c.drop(seg, f) // evicted between file and ReadAt
			continue
		}
		return err
	}
}

func (c *coldFiles) file(seg uint32) (*os.File, error) {
	c.mu.RLock()
	f := c.open[seg]
	c.mu.RUnlock()
	if f != nil {
		return f, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if f := c.open[seg]; f != nil {
		return f, nil
	}
	if c.closed {
		return nil, ErrClosed
	}
	f, err := os.Open(filepath.Join(c.dir, coldName(seg)))
	if err != nil {
		return nil, err
	}
	if len(c.open) >= maxOpenCold {
		for s, old := range c.open { // any one: map order is random
			old.Close()
			delete(c.open, s)
			break
		}
	}
	c.open[seg] = f
	return f, nil
}

// drop forgets f for seg if it is still the cached file.
func (c *coldFiles) drop(seg uint32, f *os.File) {
	c.mu.Lock()
	if c.open[seg] == f {
		delete(c.open, seg)
	}
	c.mu.Unlock()
}

// forget closes seg's file before the segment is deleted.
func (c *coldFiles) forget(seg uint32) {
	c.mu.Lock()
	if f := c.open[seg]; f != nil {
		f.Close()
		delete(c.open, seg)
	}
	c.mu.Unlock()
}

// closeAll closes every cached file (the engine is closing).
func (c *coldFiles) closeAll() {
	c.mu.Lock()
	for s, f := range c.open {
		f.Close()
		delete(c.open, s)
	}
	c.closed = true
	c.mu.Unlock()
}
