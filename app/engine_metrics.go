package app

import (
	"github.com/prometheus/client_golang/prometheus"

	"kefu/engine"
)

// embeddedCollector exports the embedded engine's counters: group commit
// (frames per sync), snapshots, and how much moved to cold files, so an
// operator can tell what the engine's memory and disk are doing.
type embeddedCollector struct{ e *engine.Embedded }

var embeddedDescs = struct {
	frames, syncs, walBytes, snapshots, spills, coldStrings, coldRewrites, coldKeys, commits *prometheus.Desc
}{
	frames:       prometheus.NewDesc("kefu_engine_wal_records_total", "Records appended to the embedded engine's write-ahead log.", nil, nil),
	syncs:        prometheus.NewDesc("kefu_engine_wal_syncs_total", "fsyncs of the write-ahead log (records ÷ syncs = group commit size).", nil, nil),
	walBytes:     prometheus.NewDesc("kefu_engine_wal_bytes_total", "Bytes written to the write-ahead log.", nil, nil),
	snapshots:    prometheus.NewDesc("kefu_engine_snapshots_total", "Snapshots (compactions) completed.", nil, nil),
	spills:       prometheus.NewDesc("kefu_engine_spills_total", "Moves of old log records or unused strings to cold files.", nil, nil),
	coldStrings:  prometheus.NewDesc("kefu_engine_cold_strings_total", "String values (or appended tails) moved to cold files.", nil, nil),
	coldRewrites: prometheus.NewDesc("kefu_engine_cold_rewrites_total", "Mostly-dead cold string files rewritten.", nil, nil),
	coldKeys:     prometheus.NewDesc("kefu_engine_cold_keys", "Strings held wholly on disk, known in memory only by a hash of their key (mostly dedupe records).", nil, nil),
	commits:      prometheus.NewDesc("kefu_engine_wal_commit_seconds", "Duration of the write-ahead log's group commits (write + fsync); every passive reply waits for one.", nil, nil),
}

func (c embeddedCollector) Describe(ch chan<- *prometheus.Desc) {
	d := embeddedDescs
	for _, x := range []*prometheus.Desc{d.frames, d.syncs, d.walBytes, d.snapshots, d.spills, d.coldStrings, d.coldRewrites, d.coldKeys, d.commits} {
		ch <- x
	}
}

func (c embeddedCollector) Collect(ch chan<- prometheus.Metric) {
	s, d := c.e.Stats(), embeddedDescs
	for _, m := range []struct {
		desc *prometheus.Desc
		v    uint64
	}{{d.frames, s.Frames}, {d.syncs, s.Syncs}, {d.walBytes, s.WALBytes}, {d.snapshots, s.Snapshots}, {d.spills, s.Spills}, {d.coldStrings, s.ColdStrings}, {d.coldRewrites, s.ColdRewrites}} {
		ch <- prometheus.MustNewConstMetric(m.desc, prometheus.CounterValue, float64(m.v))
	}
	ch <- prometheus.MustNewConstMetric(d.coldKeys, prometheus.GaugeValue, float64(s.ColdKeys))
	buckets := make(map[float64]uint64, len(engine.CommitBounds))
	var n uint64
	for i, b := range engine.CommitBounds {
		n += s.Commits[i]
		buckets[b.Seconds()] = n
	}
	n += s.Commits[len(engine.CommitBounds)]
	ch <- prometheus.MustNewConstHistogram(d.commits, n, s.CommitTime.Seconds(), buckets)
}
