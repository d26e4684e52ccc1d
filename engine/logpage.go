package engine

import (
	"context"
	"fmt"
)

// LogPage is a page of log records held in memory the page owns and
// reuses: a reader paging through a long log (the report's fold reads every
// event once) fills one LogPage again and again instead of allocating a
// Record, an ID string and a data copy per record. What Data returns is
// valid until the page is filled again.
type LogPage struct {
	ids     []logID
	ends    []int  // ends[i]: where record i's data ends in data
	data    []byte // every record's data, back to back
	scratch []byte // the embedded engine reads cold blocks through it
}

type logID struct{ ms, seq uint64 }

// Len is the number of records on the page.
func (p *LogPage) Len() int { return len(p.ids) }

// Data returns record i's data, valid until the page is filled again.
func (p *LogPage) Data(i int) []byte {
	start := 0
	if i > 0 {
		start = p.ends[i-1]
	}
	return p.data[start:p.ends[i]:p.ends[i]]
}

// ID returns record i's ID (formatted on each call: readers that go
// through many records ask only for the last one's, for their cursor).
func (p *LogPage) ID(i int) string { return formatID(p.ids[i].ms, p.ids[i].seq) }

// Millis returns the time part of record i's ID (Unix milliseconds).
func (p *LogPage) Millis(i int) int64 { return int64(p.ids[i].ms) }

func (p *LogPage) reset() {
	p.ids, p.ends, p.data = p.ids[:0], p.ends[:0], p.data[:0]
}

// grow makes room for n more records' IDs.
func (p *LogPage) grow(n int) {
	if cap(p.ids)-len(p.ids) < n {
		p.ids = append(make([]logID, 0, len(p.ids)+n), p.ids...)
		p.ends = append(make([]int, 0, len(p.ends)+n), p.ends...)
	}
}

func (p *LogPage) add(ms, seq uint64, data []byte) {
	p.ids = append(p.ids, logID{ms, seq})
	p.data = append(p.data, data...)
	p.ends = append(p.ends, len(p.data))
}

// PageReader is implemented by engines that fill a LogPage without a
// copy per record (the embedded engine). Use ReadLogPage, which falls back
// to ReadLog for the others.
type PageReader interface {
	// ReadLogPage replaces p's records with up to count (<= 0: all)
	// records of log with ID greater than afterID, as ReadLog would return
	// them.
	ReadLogPage(ctx context.Context, log, afterID string, count int, p *LogPage) error
}

// ReadLogPage replaces p's records with what e.ReadLog(ctx, log, afterID,
// count) returns, through e's PageReader when it has one. On an error p is
// left empty.
func ReadLogPage(ctx context.Context, e Engine, log, afterID string, count int, p *LogPage) error {
	if pr, ok := e.(PageReader); ok {
		if err := pr.ReadLogPage(ctx, log, afterID, count, p); err != nil {
			p.reset()
			return err
		}
		return nil
	}
	p.reset()
	recs, err := e.ReadLog(ctx, log, afterID, count)
	if err != nil {
		return err
	}
	p.grow(len(recs))
	for _, r := range recs {
		ms, seq, ok := parseID(r.ID)
		if !ok {
			p.reset()
			return fmt.Errorf("engine: log %q: record ID %q is not <ms>-<seq>", log, r.ID)
		}
		p.add(ms, seq, r.Data)
	}
	return nil
}
