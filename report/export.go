package report

import (
	"encoding/csv"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// countColumns are the raw counters exported next to the KPIs, so a
// spreadsheet can recompute any ratio.
var countColumns = []struct {
	name string
	get  func(*Counts) int64
}{
	{"contacts", func(c *Counts) int64 { return c.Contacts }},
	{"ended", func(c *Counts) int64 { return c.Ended }},
	{"bot_contained", func(c *Counts) int64 { return c.BotContained }},
	{"handed_off", func(c *Counts) int64 { return c.HandedOff }},
	{"picked_up", func(c *Counts) int64 { return c.Answered }},
	{"picked_up_within_sl", func(c *Counts) int64 { return c.Within }},
	{"abandoned", func(c *Counts) int64 { return c.Abandoned }},
	{"repeat", func(c *Counts) int64 { return c.Repeat }},
	{"surveys_sent", func(c *Counts) int64 { return c.SurveySent }},
	{"surveys_not_sent", func(c *Counts) int64 { return c.SurveyNot }},
	{"responses", func(c *Counts) int64 { return c.Responses }},
	{"promoters", func(c *Counts) int64 { return c.Promoters }},
	{"passives", func(c *Counts) int64 { return c.Passives }},
	{"detractors", func(c *Counts) int64 { return c.Detractors }},
	{"cases", func(c *Counts) int64 { return c.Cases }},
	{"cases_called_back_in_time", func(c *Counts) int64 { return c.CallbackIn }},
	{"cases_overdue", func(c *Counts) int64 { return c.CaseOverdue }},
	{"cases_closed", func(c *Counts) int64 { return c.CaseClosed }},
	{"resurveys_answered", func(c *Counts) int64 { return c.ReSurveys }},
	{"recovered_detractors", func(c *Counts) int64 { return c.Recovered }},
}

// cell defuses spreadsheet formulas in text that came from outside (names,
// ids, reasons): Excel runs a cell starting with = + - @ as a formula.
func cell(s string) string {
	if s == "" || !strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return s
	}
	if _, err := strconv.ParseFloat(s, 64); err == nil {
		return s
	}
	return "'" + s
}

func num(v Value) string {
	if !v.OK {
		return ""
	}
	return strconv.FormatFloat(v.Value, 'f', 2, 64)
}

// WriteTableCSV writes t as CSV: one row per group and a total row; every
// KPI as value and n; then the raw counters.
func WriteTableCSV(w io.Writer, t Table) error {
	cw := csv.NewWriter(w)
	head := []string{string(orTotal(t.By)), "label"}
	for _, d := range t.Definitions {
		head = append(head, d.Name+" ("+d.Unit+")", d.Name+"_n")
	}
	for _, c := range countColumns {
		head = append(head, c.name)
	}
	_ = cw.Write(head)
	row := func(r Row) {
		rec := []string{cell(r.Key), cell(r.Label)}
		for _, v := range r.KPIs {
			rec = append(rec, num(v), strconv.FormatInt(v.N, 10))
		}
		for _, c := range countColumns {
			rec = append(rec, strconv.FormatInt(c.get(&r.Counts), 10))
		}
		_ = cw.Write(rec)
	}
	for _, r := range t.Rows {
		row(r)
	}
	t.Total.Key = "total"
	row(t.Total)
	cw.Flush()
	return cw.Error()
}

func orTotal(d Dimension) Dimension {
	if d == DimTotal {
		return "total"
	}
	return d
}

// WriteFunnelCSV writes one row per stage with its drop-off reasons.
func WriteFunnelCSV(w io.Writer, f Funnel) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"stage", "label", "count", "parent", "conversion_pct", "drop_reason", "drop_count"})
	for _, s := range f.Stages {
		base := []string{s.Name, cell(s.Label), strconv.FormatInt(s.Count, 10), s.Parent, strconv.FormatFloat(100*s.Conversion, 'f', 2, 64)}
		if len(s.Drops) == 0 {
			_ = cw.Write(append(base, "", ""))
		}
		for _, d := range s.Drops {
			_ = cw.Write(append(append([]string(nil), base...), cell(d.Reason), strconv.FormatInt(d.Count, 10)))
		}
	}
	cw.Flush()
	return cw.Error()
}

// WriteDefinitionsCSV writes the KPI definitions with their parameters.
func WriteDefinitionsCSV(w io.Writer, defs []Definition) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"name", "version", "hash", "title", "unit", "params", "formula", "since"})
	for _, d := range defs {
		since := ""
		if !d.Since.IsZero() {
			since = d.Since.UTC().Format(time.RFC3339)
		}
		_ = cw.Write([]string{d.Name, strconv.Itoa(d.Version), d.Hash, d.Title, d.Unit, formatParams(d.Params), d.Formula, since})
	}
	cw.Flush()
	return cw.Error()
}

// WriteDrillCSV writes a drill-down list.
func WriteDrillCSV(w io.Writer, refs []ContactRef) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"conv", "customer", "store", "channel", "agent", "start", "outcome", "score"})
	for _, c := range refs {
		score := ""
		if c.Score != nil {
			score = strconv.Itoa(*c.Score)
		}
		_ = cw.Write([]string{cell(string(c.Conv)), cell(string(c.Customer)), cell(string(c.Store)), cell(c.Channel), cell(c.Agent),
			c.Start.Format(time.RFC3339), cell(c.Outcome), score})
	}
	cw.Flush()
	return cw.Error()
}

// WriteCasesCSV writes open cases.
func WriteCasesCSV(w io.Writer, cases []CaseRef) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"case", "conv", "store", "opened", "deadline", "called_back", "overdue"})
	for _, c := range cases {
		_ = cw.Write([]string{cell(c.ID), cell(string(c.Conv)), cell(string(c.Store)), c.Opened.Format(time.RFC3339),
			c.Deadline.Format(time.RFC3339), strconv.FormatBool(c.Called), strconv.FormatBool(c.Overdue)})
	}
	cw.Flush()
	return cw.Error()
}

func formatParams(p map[string]string) string {
	keys := make([]string, 0, len(p))
	for k := range p {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + p[k]
	}
	return strings.Join(parts, " ")
}

// writeTableText prints t for a terminal, followed by the definitions.
func writeTableText(w io.Writer, t Table) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := []string{string(orTotal(t.By))}
	for _, d := range t.Definitions {
		head = append(head, d.Name+"("+d.Unit+")")
	}
	fmt.Fprintln(tw, strings.Join(head, "\t")+"\t")
	line := func(r Row) {
		cells := []string{strings.Repeat("  ", r.Depth) + r.Label}
		for _, v := range r.KPIs {
			cells = append(cells, v.Format()+" n="+strconv.FormatInt(v.N, 10))
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t")
	}
	for _, r := range t.Rows {
		line(r)
	}
	line(t.Total)
	_ = tw.Flush()
	fmt.Fprintln(w)
	writeDefsText(w, t.Definitions)
}

func writeDefsText(w io.Writer, defs []Definition) {
	for _, d := range defs {
		p := formatParams(d.Params)
		if p != "" {
			p = " [" + p + "]"
		}
		fmt.Fprintf(w, "%s v%d #%s%s: %s\n", d.Name, d.Version, d.Hash, p, d.Formula)
	}
}

func writeFunnelText(w io.Writer, f Funnel) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "stage\tcount\tof parent\tdrop-offs")
	for _, s := range f.Stages {
		conv := ""
		if s.Parent != "" {
			conv = strconv.FormatFloat(100*s.Conversion, 'f', 1, 64) + "% of " + s.Parent
		}
		var drops []string
		for _, d := range s.Drops {
			drops = append(drops, d.Reason+" "+strconv.FormatInt(d.Count, 10))
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", s.Label, s.Count, conv, strings.Join(drops, ", "))
	}
	_ = tw.Flush()
}
