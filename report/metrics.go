package report

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"kefu/conv"
)

// lagProbe caps how many unfolded records a scrape counts: past it the
// number only says "far behind", and lag seconds tells how far.
const lagProbe = 10000

var (
	lagRecordsDesc = prometheus.NewDesc("kefu_report_lag_records", "Event-log records not folded into the report yet (capped at 10000).", nil, nil)
	lagSecondsDesc = prometheus.NewDesc("kefu_report_lag_seconds", "Age of the oldest event-log record not folded yet (0 when caught up).", nil, nil)
	foldedDesc     = prometheus.NewDesc("kefu_report_folded_events_total", "Event-log records folded by this instance.", nil, nil)
	refreshErrDesc = prometheus.NewDesc("kefu_report_refresh_errors_total", "Failed report refreshes.", nil, nil)
	lastOKDesc     = prometheus.NewDesc("kefu_report_last_refresh_timestamp_seconds", "Time of the last successful refresh.", nil, nil)
	leaderDesc     = prometheus.NewDesc("kefu_report_leader", "1 when this instance holds the report lease and persists the aggregates.", nil, nil)
	surveysDesc    = prometheus.NewDesc("kefu_report_surveys_today", "Surveys today (contacts started today) by store and state.", []string{"store", "state"}, nil)
	npsDesc        = prometheus.NewDesc("kefu_report_nps_today", "NPS (−100..100) of today's contacts by store; absent without answers.", []string{"store"}, nil)
	slDesc         = prometheus.NewDesc("kefu_report_service_level_today", "Share (0..1) of today's handoffs picked up within the service-level threshold, by store.", []string{"store"}, nil)
	casesOpenDesc  = prometheus.NewDesc("kefu_report_cases_open", "Open detractor cases by store.", []string{"store"}, nil)
	casesLateDesc  = prometheus.NewDesc("kefu_report_cases_overdue", "Open detractor cases past their callback deadline without a callback, by store.", []string{"store"}, nil)
)

// Collector returns the report's Prometheus collector: event-log lag,
// refresh health, and today's survey, NPS, service-level and case series.
// It reads the engine at scrape time (lag) with a 2 s budget.
func (r *Reporter) Collector() prometheus.Collector { return collector{r} }

type collector struct{ r *Reporter }

// Describe sends every series' descriptor.
func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{lagRecordsDesc, lagSecondsDesc, foldedDesc, refreshErrDesc, lastOKDesc, leaderDesc,
		surveysDesc, npsDesc, slDesc, casesOpenDesc, casesLateDesc} {
		ch <- d
	}
}

// Collect reads lag from the engine and today's figures from memory.
func (c collector) Collect(ch chan<- prometheus.Metric) {
	r := c.r
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if n, age, err := r.Lag(ctx, lagProbe); err == nil {
		ch <- prometheus.MustNewConstMetric(lagRecordsDesc, prometheus.GaugeValue, float64(n))
		ch <- prometheus.MustNewConstMetric(lagSecondsDesc, prometheus.GaugeValue, age.Seconds())
	}
	ch <- prometheus.MustNewConstMetric(foldedDesc, prometheus.CounterValue, float64(r.folded.Load()))
	ch <- prometheus.MustNewConstMetric(refreshErrDesc, prometheus.CounterValue, float64(r.refreshErr.Load()))
	ch <- prometheus.MustNewConstMetric(lastOKDesc, prometheus.GaugeValue, float64(r.lastOK.Load())/1000)
	leader := 0.0
	if r.isLeader.Load() {
		leader = 1
	}
	ch <- prometheus.MustNewConstMetric(leaderDesc, prometheus.GaugeValue, leader)

	now := r.now()
	today := now.In(r.loc).Format(time.DateOnly)
	r.mu.RLock()
	defer r.mu.RUnlock()
	byStore := map[conv.StoreID]*Counts{}
	for _, k := range r.f.days[today] {
		acc := byStore[k.Store]
		if acc == nil {
			acc = &Counts{}
			byStore[k.Store] = acc
		}
		acc.Add(r.f.buckets[k])
	}
	for s, cn := range byStore {
		st := string(s)
		for state, v := range map[string]int64{"scheduled": cn.SurveySched, "sent": cn.SurveySent, "not_sent": cn.SurveyNot, "answered": cn.Responses} {
			ch <- prometheus.MustNewConstMetric(surveysDesc, prometheus.GaugeValue, float64(v), st, state)
		}
		if v := cn.Get(KPINPS); v.OK {
			ch <- prometheus.MustNewConstMetric(npsDesc, prometheus.GaugeValue, v.Value, st)
		}
		if v := cn.Get(KPIServiceLevel); v.OK {
			ch <- prometheus.MustNewConstMetric(slDesc, prometheus.GaugeValue, v.Value/100, st)
		}
	}
	open, late := map[conv.StoreID]int{}, map[conv.StoreID]int{}
	for id := range r.f.openCases {
		cs := r.f.cases[id]
		open[cs.Key.Store]++
		if cs.Called == 0 && now.UnixMilli() > cs.Deadline {
			late[cs.Key.Store]++
		}
	}
	for s, n := range open {
		ch <- prometheus.MustNewConstMetric(casesOpenDesc, prometheus.GaugeValue, float64(n), string(s))
		ch <- prometheus.MustNewConstMetric(casesLateDesc, prometheus.GaugeValue, float64(late[s]), string(s))
	}
}
