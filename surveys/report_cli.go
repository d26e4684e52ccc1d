package surveys

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"kefu/conv"
	"kefu/engine"
)

// ReportNPS is `kefu report nps`: it reads the survey log from eng and
// prints NPS with n, the three shares and the response rate per group.
//
//	kefu report nps [--from 2026-11-01] [--to 2026-11-30] [--by store|agent|channel|handoff|day|week|month] [--store ID] [--csv|--json]
//
// Dates are inclusive days in cfg.Timezone; the store tree comes from
// cfg.Stores. It returns the process exit code (0 ok, 2 usage, 1 failure).
func ReportNPS(args []string, stdout, stderr io.Writer, eng engine.Engine, cfg Config) int {
	fs := flag.NewFlagSet("report nps", flag.ContinueOnError)
	fs.SetOutput(stderr)
	from := fs.String("from", "", "first day (YYYY-MM-DD, inclusive)")
	to := fs.String("to", "", "last day (YYYY-MM-DD, inclusive)")
	by := fs.String("by", "", "group by store|agent|channel|handoff|day|week|month (default: one total)")
	store := fs.String("store", "", "limit to a store or region and its stores")
	asCSV := fs.Bool("csv", false, "write CSV")
	asJSON := fs.Bool("json", false, "write JSON")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	loc, err := time.LoadLocation(cfg.Timezone)
	if err != nil {
		loc = time.UTC
	}
	q := Query{By: *by, Store: conv.StoreID(*store), Location: loc}
	if *from != "" {
		if q.From, err = time.ParseInLocation("2006-01-02", *from, loc); err != nil {
			fmt.Fprintf(stderr, "--from: want YYYY-MM-DD, got %q\n", *from)
			return 2
		}
	}
	if *to != "" {
		t, err := time.ParseInLocation("2006-01-02", *to, loc)
		if err != nil {
			fmt.Fprintf(stderr, "--to: want YYYY-MM-DD, got %q\n", *to)
			return 2
		}
		q.To = t.AddDate(0, 0, 1)
	}
	tree, err := conv.NewStoreTree(cfg.Stores)
	if err != nil {
		fmt.Fprintln(stderr, "stores:", err)
		return 1
	}
	if q.Store != "" && cfg.Stores.ID != "" {
		if _, ok := tree.Node(q.Store); !ok {
			fmt.Fprintf(stderr, "--store: unknown store %q\n", q.Store)
			return 2
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	resps, err := LoadResponses(ctx, eng)
	if err != nil {
		fmt.Fprintln(stderr, "read survey log:", err)
		return 1
	}
	rows, err := BuildReport(resps, tree, q)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	switch {
	case *asCSV:
		err = WriteCSV(stdout, q.By, rows)
	case *asJSON:
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(map[string]any{"definition": NPSDefinition(cfg), "by": q.By, "rows": rows})
	default:
		err = writeTable(stdout, q, rows)
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}

// NPSDefinition is the versioned KPI definition reports show beside NPS.
func NPSDefinition(cfg Config) map[string]any {
	return map[string]any{"kpi": "nps", "version": 1, "formula": "%promoters(9-10) - %detractors(0-6) of respondents",
		"promoter_min": PromoterMin, "detractor_max": DetractorMax, "question_version": cfg.Question.Version,
		"response_rate": "respondents / surveys sent", "period_by": "survey send time"}
}

func writeTable(w io.Writer, q Query, rows []Row) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "group\tNPS\tn\tpromoters%\tpassives%\tdetractors%\tsent\tresponse%\t")
	for _, r := range rows {
		label := r.Label
		for range r.Depth {
			label = "  " + label
		}
		nps := "-"
		if r.NPS.Defined {
			nps = fmt.Sprintf("%+.1f", r.NPS.Score)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.1f\t%.1f\t%.1f\t%d\t%.1f\t\n", label, nps, r.NPS.N, r.NPS.Promoters, r.NPS.Passives, r.NPS.Detractors, r.Tally.Sent, r.NPS.ResponseRate)
	}
	if len(rows) == 0 {
		fmt.Fprintln(tw, "(no surveys sent in the period)\t\t\t\t\t\t\t\t")
	}
	return tw.Flush()
}
