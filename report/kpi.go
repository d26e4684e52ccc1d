package report

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"time"
)

// Counts are the additive counters of one bucket. Every KPI is a ratio or
// mean of these, so buckets roll up (store tree, weeks, months, totals) by
// plain addition.
type Counts struct {
	Contacts     int64 `json:"co,omitempty"` // contacts started
	Ended        int64 `json:"en,omitempty"` // contacts ended (any outcome)
	BotAnswered  int64 `json:"ba,omitempty"` // contacts with at least one bot answer
	BotContained int64 `json:"bc,omitempty"` // ended with a bot answer and no handoff
	HandedOff    int64 `json:"ho,omitempty"` // contacts handed to humans
	Repeat       int64 `json:"rp,omitempty"` // ended contacts followed by a repeat within the window
	Answered     int64 `json:"an,omitempty"` // handoffs picked up
	Within       int64 `json:"wi,omitempty"` // … within the service-level threshold
	WaitMs       int64 `json:"wm,omitempty"` // sum of queue entry → pickup
	Abandoned    int64 `json:"ab,omitempty"` // handoffs ended before pickup
	Handled      int64 `json:"hd,omitempty"` // picked-up contacts that ended
	HandleMs     int64 `json:"hm,omitempty"` // sum of pickup → end
	Transfers    int64 `json:"tr,omitempty"` // transfers away from the agent
	Resolved     int64 `json:"rs,omitempty"` // closed with resolved=true
	Unresolved   int64 `json:"ur,omitempty"` // closed by an agent with resolved=false
	FRTn         int64 `json:"fn,omitempty"` // contacts with a first response
	FRTMs        int64 `json:"fm,omitempty"` // sum of first customer message → first reply
	AFRn         int64 `json:"af,omitempty"` // picked-up contacts with an agent reply
	AFRMs        int64 `json:"ag,omitempty"` // sum of pickup → first agent reply
	SurveySched  int64 `json:"ss,omitempty"` // surveys scheduled
	SurveySent   int64 `json:"st,omitempty"` // surveys sent
	SurveyNot    int64 `json:"sn,omitempty"` // surveys not sent
	Responses    int64 `json:"sa,omitempty"` // surveys answered
	Promoters    int64 `json:"pr,omitempty"` // scores >= PromoterMin
	Passives     int64 `json:"pa,omitempty"` // scores in between
	Detractors   int64 `json:"de,omitempty"` // scores <= DetractorMax
	ScoreSum     int64 `json:"sc,omitempty"` // sum of scores
	CSATn        int64 `json:"cn,omitempty"` // CSAT answers
	CSATSat      int64 `json:"cs,omitempty"` // … satisfied
	Cases        int64 `json:"ca,omitempty"` // detractor cases opened
	CaseCalled   int64 `json:"cc,omitempty"` // cases called back
	CallbackMs   int64 `json:"cm,omitempty"` // sum of case open → first callback
	CallbackIn   int64 `json:"ci,omitempty"` // callbacks within the deadline
	CaseOverdue  int64 `json:"od,omitempty"` // cases whose deadline passed without callback
	CaseEscal    int64 `json:"ce,omitempty"` // escalations
	CaseClosed   int64 `json:"cl,omitempty"` // cases closed
	CloseMs      int64 `json:"cx,omitempty"` // sum of case open → close
	ReSurveys    int64 `json:"rv,omitempty"` // re-surveys answered after a resolved case
	Recovered    int64 `json:"rc,omitempty"` // … scoring above DetractorMax (recovered detractors)
	// AbandonReasons and NotSentReasons are the funnel's drop-off reasons.
	AbandonReasons map[string]int64 `json:"ar,omitempty"`
	NotSentReasons map[string]int64 `json:"nr,omitempty"`
}

// Add adds o into c.
func (c *Counts) Add(o *Counts) {
	c.Contacts += o.Contacts
	c.Ended += o.Ended
	c.BotAnswered += o.BotAnswered
	c.BotContained += o.BotContained
	c.HandedOff += o.HandedOff
	c.Repeat += o.Repeat
	c.Answered += o.Answered
	c.Within += o.Within
	c.WaitMs += o.WaitMs
	c.Abandoned += o.Abandoned
	c.Handled += o.Handled
	c.HandleMs += o.HandleMs
	c.Transfers += o.Transfers
	c.Resolved += o.Resolved
	c.Unresolved += o.Unresolved
	c.FRTn += o.FRTn
	c.FRTMs += o.FRTMs
	c.AFRn += o.AFRn
	c.AFRMs += o.AFRMs
	c.SurveySched += o.SurveySched
	c.SurveySent += o.SurveySent
	c.SurveyNot += o.SurveyNot
	c.Responses += o.Responses
	c.Promoters += o.Promoters
	c.Passives += o.Passives
	c.Detractors += o.Detractors
	c.ScoreSum += o.ScoreSum
	c.CSATn += o.CSATn
	c.CSATSat += o.CSATSat
	c.Cases += o.Cases
	c.CaseCalled += o.CaseCalled
	c.CallbackMs += o.CallbackMs
	c.CallbackIn += o.CallbackIn
	c.CaseOverdue += o.CaseOverdue
	c.CaseEscal += o.CaseEscal
	c.CaseClosed += o.CaseClosed
	c.CloseMs += o.CloseMs
	c.ReSurveys += o.ReSurveys
	c.Recovered += o.Recovered
	c.AbandonReasons = addReasons(c.AbandonReasons, o.AbandonReasons)
	c.NotSentReasons = addReasons(c.NotSentReasons, o.NotSentReasons)
}

func addReasons(dst, src map[string]int64) map[string]int64 {
	if len(src) == 0 {
		return dst
	}
	if dst == nil {
		dst = make(map[string]int64, len(src))
	}
	for k, v := range src {
		dst[k] += v
	}
	return dst
}

// KPI names, in the order reports show them.
const (
	KPIServiceLevel   = "service_level"
	KPIASA            = "asa"
	KPIAHT            = "aht"
	KPIAbandonment    = "abandonment"
	KPIFCR            = "fcr"
	KPIContainment    = "bot_containment"
	KPIFRT            = "first_response"
	KPIAgentFirst     = "agent_first_reply"
	KPINPS            = "nps"
	KPICSAT           = "csat"
	KPIResponseRate   = "response_rate"
	KPICallbackTime   = "case_time_to_callback"
	KPICallbackWithin = "case_callback_within_deadline"
	KPICloseTime      = "case_time_to_close"
)

// Units of KPI values.
const (
	UnitPercent = "%"
	UnitSeconds = "s"
	UnitHours   = "h"
	UnitNPS     = "nps"
)

// Definition is the stored, versioned definition of one KPI: what it
// measures, from which counters, with which parameters. Reports show it next
// to the number; a change of parameters makes a new Hash.
type Definition struct {
	Name    string            `json:"name"`
	Version int               `json:"version"`
	Title   string            `json:"title"`
	Formula string            `json:"formula"`
	Unit    string            `json:"unit"`
	Params  map[string]string `json:"params,omitempty"`
	// Hash identifies name, version and parameters (first 12 hex of SHA-256).
	Hash string `json:"hash"`
	// Since is when this exact definition was first stored.
	Since time.Time `json:"since,omitzero"`
}

// Definitions returns the KPI definitions for cfg, in report order.
func Definitions(cfg Config) []Definition {
	sl := strconv.Itoa(cfg.ServiceLevelSeconds)
	defs := []Definition{
		{Name: KPIServiceLevel, Version: 1, Title: "Service level", Unit: UnitPercent,
			Formula: "handoffs picked up within threshold_s of queue entry ÷ (handoffs picked up + abandoned before pickup)",
			Params:  map[string]string{"threshold_s": sl, "target": strconv.FormatFloat(cfg.ServiceLevelTarget*100, 'f', -1, 64) + "%"}},
		{Name: KPIASA, Version: 1, Title: "ASA", Unit: UnitSeconds,
			Formula: "mean(first queue entry → first pickup (accepted, or first agent reply)) over picked-up handoffs; transfers do not restart it"},
		{Name: KPIAHT, Version: 1, Title: "AHT", Unit: UnitSeconds,
			Formula: "mean(first pickup → contact end) over picked-up contacts, attributed to the closing agent"},
		{Name: KPIAbandonment, Version: 1, Title: "Abandonment", Unit: UnitPercent,
			Formula: "handoffs ended before pickup (customer left, timeout) ÷ (picked up + abandoned)"},
		{Name: KPIFCR, Version: 1, Title: "FCR", Unit: UnitPercent,
			Formula: "ended contacts with no new contact from the same customer within repeat_window of their end ÷ ended contacts (provisional until the window has passed)",
			Params:  map[string]string{"repeat_window": fmtDur(cfg.RepeatWindow)}},
		{Name: KPIContainment, Version: 1, Title: "Bot containment", Unit: UnitPercent,
			Formula: "ended contacts with a bot answer and no handoff ÷ ended contacts",
			Params:  map[string]string{"contact_idle": fmtDur(cfg.ContactIdle)}},
		{Name: KPIFRT, Version: 1, Title: "First response", Unit: UnitSeconds,
			Formula: "mean(first customer message → first bot answer/clarify/fallback, handoff notice or agent reply)"},
		{Name: KPIAgentFirst, Version: 1, Title: "Agent first reply", Unit: UnitSeconds,
			Formula: "mean(pickup → the picking agent's first reply) over picked-up contacts with an agent reply"},
		{Name: KPINPS, Version: 1, Title: "NPS", Unit: UnitNPS,
			Formula: "%promoters − %detractors of survey answers, −100..+100",
			Params:  map[string]string{"promoter_min": strconv.Itoa(cfg.PromoterMin), "detractor_max": strconv.Itoa(cfg.DetractorMax)}},
		{Name: KPICSAT, Version: 1, Title: "CSAT", Unit: UnitPercent,
			Formula: "satisfied ÷ answers; satisfied = CSAT answer 4–5 when asked, else NPS score ≥ csat_min_score",
			Params:  map[string]string{"csat_min_score": strconv.Itoa(cfg.CSATMinScore)}},
		{Name: KPIResponseRate, Version: 1, Title: "Response rate", Unit: UnitPercent,
			Formula: "surveys answered ÷ surveys sent"},
		{Name: KPICallbackTime, Version: 1, Title: "Case time to callback", Unit: UnitHours,
			Formula: "mean(case opened → first callback) over called-back cases"},
		{Name: KPICallbackWithin, Version: 1, Title: "Callback within deadline", Unit: UnitPercent,
			Formula: "cases called back by their deadline ÷ cases that were called back or are past their deadline",
			Params:  map[string]string{"default_deadline": fmtDur(cfg.CaseDeadline)}},
		{Name: KPICloseTime, Version: 1, Title: "Case time to close", Unit: UnitHours,
			Formula: "mean(case opened → case closed) over closed cases"},
	}
	for i := range defs {
		defs[i].Hash = defHash(defs[i])
	}
	return defs
}

// fmtDur prints whole hours or minutes the way people write them ("24h", "30m").
func fmtDur(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	}
	return d.String()
}

func defHash(d Definition) string {
	keys := make([]string, 0, len(d.Params))
	for k := range d.Params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := sha256.New()
	fmt.Fprintf(h, "%s@%d", d.Name, d.Version)
	for _, k := range keys {
		fmt.Fprintf(h, ";%s=%s", k, d.Params[k])
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// paramsFingerprint identifies every parameter the counters depend on; a
// change forces a rebuild.
func paramsFingerprint(cfg Config) string {
	b, _ := json.Marshal([]any{aggVersion, cfg.Location, cfg.ServiceLevelSeconds, cfg.RepeatWindow, cfg.ContactIdle,
		cfg.StaleAfter, cfg.CaseDeadline, cfg.PromoterMin, cfg.DetractorMax, cfg.CSATMinScore})
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:8])
}

// aggVersion is bumped when the fold itself changes meaning.
const aggVersion = 4

// Value is one KPI computed over some counters. OK is false when the
// denominator is zero (shown as "—").
type Value struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	// N is the denominator (number of samples).
	N  int64 `json:"n"`
	OK bool  `json:"ok"`
}

// Compute returns every KPI of c, in Definitions order.
func (c *Counts) Compute() []Value {
	ratio := func(name string, num, den int64) Value {
		if den <= 0 {
			return Value{Name: name}
		}
		return Value{Name: name, Value: 100 * float64(num) / float64(den), N: den, OK: true}
	}
	mean := func(name string, sum, n int64, div float64) Value {
		if n <= 0 {
			return Value{Name: name}
		}
		return Value{Name: name, Value: float64(sum) / float64(n) / div, N: n, OK: true}
	}
	offered := c.Answered + c.Abandoned
	nps := Value{Name: KPINPS}
	if c.Responses > 0 {
		nps = Value{Name: KPINPS, Value: 100 * float64(c.Promoters-c.Detractors) / float64(c.Responses), N: c.Responses, OK: true}
	}
	return []Value{
		ratio(KPIServiceLevel, c.Within, offered),
		mean(KPIASA, c.WaitMs, c.Answered, 1000),
		mean(KPIAHT, c.HandleMs, c.Handled, 1000),
		ratio(KPIAbandonment, c.Abandoned, offered),
		ratio(KPIFCR, c.Ended-c.Repeat, c.Ended),
		ratio(KPIContainment, c.BotContained, c.Ended),
		mean(KPIFRT, c.FRTMs, c.FRTn, 1000),
		mean(KPIAgentFirst, c.AFRMs, c.AFRn, 1000),
		nps,
		ratio(KPICSAT, c.CSATSat, c.CSATn),
		ratio(KPIResponseRate, c.Responses, c.SurveySent),
		mean(KPICallbackTime, c.CallbackMs, c.CaseCalled, 3600e3),
		ratio(KPICallbackWithin, c.CallbackIn, c.CallbackIn+c.CaseOverdue),
		mean(KPICloseTime, c.CloseMs, c.CaseClosed, 3600e3),
	}
}

// Get returns the KPI name of c.
func (c *Counts) Get(name string) Value {
	for _, v := range c.Compute() {
		if v.Name == name {
			return v
		}
	}
	return Value{Name: name}
}

// Format renders v for tables: "—" without data, one decimal otherwise.
func (v Value) Format() string {
	if !v.OK {
		return "—"
	}
	return strconv.FormatFloat(v.Value, 'f', 1, 64)
}
