package gateway

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"kefu/engine"
)

// Metrics are the gateway's Prometheus series.
type Metrics struct {
	requests     *prometheus.CounterVec
	ackSeconds   *prometheus.HistogramVec
	dedupeHits   *prometheus.CounterVec
	outbound     *prometheus.CounterVec
	tokenRefresh *prometheus.CounterVec
	recovered    prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, g *Gateway) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kefu_requests_total", Help: "Callbacks by channel and outcome.",
		}, []string{"channel", "outcome"}),
		ackSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "kefu_ack_seconds", Help: "Time from request to response (the ack WeChat waits for).",
			Buckets: []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 2, 3, 4, 5},
		}, []string{"channel"}),
		dedupeHits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kefu_dedupe_hits_total", Help: "Deliveries recognised as retries of accepted messages.",
		}, []string{"channel"}),
		outbound: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kefu_outbound_total", Help: "Outbound sends by channel, result (sent, retry, dead) and errcode.",
		}, []string{"channel", "result", "errcode"}),
		tokenRefresh: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kefu_token_refresh_total", Help: "Access-token refreshes by kind and result.",
		}, []string{"kind", "result"}),
		recovered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kefu_recovered_messages_total", Help: "Accepted messages taken over by recovery after their worker died.",
		}),
	}
	reg.MustRegister(m.requests, m.ackSeconds, m.dedupeHits, m.outbound, m.tokenRefresh, m.recovered, &queueCollector{g: g})
	return m
}

// queueCollector reports queue depths and oldest due times at scrape time.
type queueCollector struct{ g *Gateway }

var (
	queueDepthDesc  = prometheus.NewDesc("kefu_queue_depth", "Jobs in a durable queue.", []string{"queue"}, nil)
	queueOldestDesc = prometheus.NewDesc("kefu_queue_oldest_seconds", "Age of the earliest due job (0 when none is overdue).", []string{"queue"}, nil)
	deadDesc        = prometheus.NewDesc("kefu_dead_letters", "Outbound messages in the dead-letter list.", nil, nil)
)

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- queueDepthDesc
	ch <- queueOldestDesc
	ch <- deadDesc
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	queues := map[string][]string{"outbox": {outQueue}, "kf_sync": {kfQueue}}
	for i := 0; i < c.g.cfg.Shards; i++ {
		queues["inbox"] = append(queues["inbox"], inboxQueueOf(i))
	}
	for name, qs := range queues {
		var depth int64
		var oldest time.Time
		for _, q := range qs {
			n, err := c.g.eng.QueueLen(ctx, q)
			if err != nil {
				continue
			}
			depth += n
			if o, err := c.g.eng.QueueOldest(ctx, q); err == nil && !o.IsZero() && (oldest.IsZero() || o.Before(oldest)) {
				oldest = o
			}
		}
		ch <- prometheus.MustNewConstMetric(queueDepthDesc, prometheus.GaugeValue, float64(depth), name)
		age := 0.0
		if !oldest.IsZero() && c.g.now().After(oldest) {
			age = c.g.now().Sub(oldest).Seconds()
		}
		ch <- prometheus.MustNewConstMetric(queueOldestDesc, prometheus.GaugeValue, age, name)
	}
	if m, err := c.g.eng.HGetAll(ctx, outDead); err == nil || errors.Is(err, engine.ErrNotFound) {
		ch <- prometheus.MustNewConstMetric(deadDesc, prometheus.GaugeValue, float64(len(m)))
	}
}
