package engine

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
)

// Cold log blocks. A log record moved to disk used to keep its ID and file
// position in memory (coldRec, 32 bytes), so a log kept for months (the
// event log: 90 days) still cost memory per record. Records now move in
// blocks of up to coldBlockBytes of data: each record's ID and length are
// written in the file beside its data, and memory keeps only the block's
// bounds plus each record's time as a delta from the one before (about a
// byte a record), which is what trims need without reading the disk.
//
//	block = (uvarint ms, uvarint seq, uvarint len, data)*   CRC-32C kept in memory
//
// Segments written by older versions (one coldRec a record) are still read;
// stream keeps them before its blocks.

// coldBlockBytes bounds a block's data: a read of the block's first record
// reads at most this much.
const coldBlockBytes = 64 << 10

// coldBlock is a run of a log's records in a cold segment file.
type coldBlock struct {
	firstMs, firstSeq uint64 // the block's first record (before skip)
	lastMs, lastSeq   uint64
	seg, off, n, crc  uint32 // the block's bytes in cold-<seg>.seg
	count             uint32 // records in the block
	skip              uint32 // leading records trimmed away
	// msDelta holds each record's ms as a uvarint delta from the record
	// before (the first: from firstMs, so 0).
	msDelta []byte
}

// live is the number of records not trimmed away.
func (b *coldBlock) live() int { return int(b.count - b.skip) }

// countBefore returns how many records have ms < minMs (times never
// decrease within a log).
func (b *coldBlock) countBefore(minMs uint64) uint32 {
	ms, d := b.firstMs, b.msDelta
	for i := uint32(0); i < b.count; i++ {
		v, k := binary.Uvarint(d)
		if k <= 0 {
			return i // unreachable for blocks built here; keep what is unreadable
		}
		d = d[k:]
		ms += v
		if ms >= minMs {
			return i
		}
	}
	return b.count
}

// consistent reports whether msDelta holds exactly count times, the first
// equal to firstMs and the last to lastMs: trims rely on it (a block whose
// last record is at or after the cut keeps at least that record).
func (b *coldBlock) consistent() bool {
	ms, d := b.firstMs, b.msDelta
	for i := uint32(0); i < b.count; i++ {
		v, k := binary.Uvarint(d)
		if k <= 0 || (i == 0 && v != 0) || ms+v < ms {
			return false
		}
		d, ms = d[k:], ms+v
	}
	return len(d) == 0 && ms == b.lastMs
}

// msAt returns the time of record i.
func (b *coldBlock) msAt(i uint32) uint64 {
	ms, d := b.firstMs, b.msDelta
	for j := uint32(0); j <= i; j++ {
		v, k := binary.Uvarint(d)
		if k <= 0 {
			break
		}
		d = d[k:]
		ms += v
	}
	return ms
}

// writeColdBlocks writes recs to a new segment file as blocks and makes it
// durable (no file is left on error), returning the blocks (seg left to
// the caller).
func writeColdBlocks(path string, recs []logRec) ([]coldBlock, error) {
	var blocks []coldBlock
	_, err := writeDurable(path, createNew, func(w io.Writer) error {
		if _, err := io.WriteString(w, coldMagic); err != nil {
			return err
		}
		off := int64(len(coldMagic))
		var buf []byte
		for start := 0; start < len(recs); {
			b := coldBlock{firstMs: recs[start].ms, firstSeq: recs[start].seq, off: uint32(off)}
			buf = buf[:0]
			prev := recs[start].ms
			end := start
			for end < len(recs) && (end == start || len(buf)+len(recs[end].data) <= coldBlockBytes) {
				r := recs[end]
				buf = binary.AppendUvarint(buf, r.ms)
				buf = binary.AppendUvarint(buf, r.seq)
				buf = binary.AppendUvarint(buf, uint64(len(r.data)))
				buf = append(buf, r.data...)
				b.msDelta = binary.AppendUvarint(b.msDelta, r.ms-prev)
				prev = r.ms
				end++
			}
			last := recs[end-1]
			b.lastMs, b.lastSeq, b.count = last.ms, last.seq, uint32(end-start)
			b.n, b.crc = uint32(len(buf)), crc32.Checksum(buf, crcTable)
			b.msDelta = append([]byte(nil), b.msDelta...) // exact size: kept for the block's life
			if _, err := w.Write(buf); err != nil {
				return err
			}
			off += int64(len(buf))
			blocks = append(blocks, b)
			start = end
		}
		return nil
	})
	return blocks, err
}

// readBlock hands emit the records of b after its skipped ones whose ID
// is after (ams, aseq) (all of them when all is set), at most max of them
// (max <= 0: no limit), and returns how many it handed. The block is read
// into a buffer from buf. Called with the engine lock held.
func (e *Embedded) readBlock(b *coldBlock, ams, aseq uint64, all bool, max int, buf func(n int) []byte, emit func(ms, seq uint64, data []byte, owned bool)) (int, error) {
	bb := buf(int(b.n))
	if err := e.files.readAt(b.seg, bb, int64(b.off)); err != nil {
		return 0, fmt.Errorf("engine: embedded: reading cold log block: %w", err)
	}
	if crc32.Checksum(bb, crcTable) != b.crc {
		return 0, fmt.Errorf("engine: embedded: %s: block at %d: %w", coldName(b.seg), b.off, errCorrupt)
	}
	emitted := 0
	for i := uint32(0); i < b.count && (max <= 0 || emitted < max); i++ {
		ms, k1 := binary.Uvarint(bb)
		if k1 <= 0 {
			return emitted, fmt.Errorf("engine: embedded: %s: block at %d: %w", coldName(b.seg), b.off, errCorrupt)
		}
		seq, k2 := binary.Uvarint(bb[k1:])
		if k2 <= 0 {
			return emitted, fmt.Errorf("engine: embedded: %s: block at %d: %w", coldName(b.seg), b.off, errCorrupt)
		}
		n, k3 := binary.Uvarint(bb[k1+k2:])
		h := k1 + k2 + k3
		if k3 <= 0 || n > uint64(len(bb)-h) {
			return emitted, fmt.Errorf("engine: embedded: %s: block at %d: %w", coldName(b.seg), b.off, errCorrupt)
		}
		data := bb[h : h+int(n) : h+int(n)]
		bb = bb[h+int(n):]
		if i < b.skip || (!all && !idAfter(ms, seq, ams, aseq)) {
			continue
		}
		emit(ms, seq, data, true)
		emitted++
	}
	return emitted, nil
}
