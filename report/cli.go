package report

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"kefu/conv"
	"kefu/engine"
)

const cliUsage = `usage: kefu report <command> [flags]

commands:
  kpi          KPI table   [--from D --to D --by store|agent|channel|day|week|month --store S --agent A --channel C --csv|--json]
  funnel       the funnel  [--from D --to D --store S --agent A --channel C --csv|--json]
  drill        conversations behind a row or stage [--by X --key K --filter F ... --limit N --csv]
  definitions  the KPI definitions with their parameters and history [--csv]
  gen          append a synthetic day of traffic to the event log [--seed N --day D --contacts N] or write it [--jsonl FILE]

Days (D) are YYYY-MM-DD in the report zone, inclusive. The CLI folds new events
in memory and never takes the report lease, so it is safe next to running gateways.
`

// RunCLI runs `kefu report …` with the default report configuration; it
// returns the process exit code (0 ok, 1 failure, 2 usage).
func RunCLI(args []string, stdout, stderr io.Writer, e engine.Engine, tree *conv.StoreTree) int {
	return RunCLIConfig(args, stdout, stderr, e, tree, DefaultConfig())
}

// RunCLIConfig is RunCLI with the report configuration the server uses
// (pass it so the CLI computes with the same KPI parameters).
func RunCLIConfig(args []string, stdout, stderr io.Writer, e engine.Engine, tree *conv.StoreTree, cfg Config) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, cliUsage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, rest := args[0], args[1:]
	fs := flag.NewFlagSet("kefu report "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	from := fs.String("from", "", "first day (YYYY-MM-DD)")
	to := fs.String("to", "", "last day (YYYY-MM-DD)")
	by := fs.String("by", "", "group by store|agent|channel|day|week|month")
	storeF := fs.String("store", "", "only this store-tree node and below")
	agentF := fs.String("agent", "", "only this agent")
	channelF := fs.String("channel", "", "only this channel")
	asCSV := fs.Bool("csv", false, "write CSV")
	asJSON := fs.Bool("json", false, "write JSON")
	key := fs.String("key", "", "drill: the row key (store id, agent, channel, period)")
	filter := fs.String("filter", "", "drill: contained|handed_off|picked_up|abandoned|resolved|unresolved|repeat|no_repeat|surveyed|not_sent|answered|promoter|passive|detractor|called_back|case_closed|open")
	limit := fs.Int("limit", 1000, "drill: at most this many conversations")
	seed := fs.Uint64("seed", 1, "gen: random seed")
	dayF := fs.String("day", "", "gen: the day to generate (default today)")
	contacts := fs.Int("contacts", 2000, "gen: contacts in the day")
	jsonl := fs.String("jsonl", "", "gen: write JSON lines to this file instead of the event log")
	if err := fs.Parse(rest); err != nil {
		return 2
	}
	for _, d := range []string{*from, *to, *dayF} {
		if d != "" {
			if _, err := time.Parse(time.DateOnly, d); err != nil {
				fmt.Fprintf(stderr, "kefu report: bad day %q: want YYYY-MM-DD\n", d)
				return 2
			}
		}
	}
	dim, err := ParseDimension(*by)
	if err != nil {
		fmt.Fprintln(stderr, "kefu report:", err)
		return 2
	}
	ctx := context.Background()
	if cmd == "gen" {
		return cliGen(ctx, stdout, stderr, e, cfg, *seed, *dayF, *contacts, *jsonl)
	}
	if e == nil {
		fmt.Fprintln(stderr, "kefu report: no engine to read the event log from")
		return 1
	}
	r, err := New(ctx, e, tree, cfg, Options{ReadOnly: true})
	if err != nil {
		fmt.Fprintln(stderr, "kefu report:", err)
		return 1
	}
	if _, err := r.Refresh(ctx); err != nil {
		fmt.Fprintln(stderr, "kefu report:", err)
		return 1
	}
	q := Query{From: *from, To: *to, By: dim, Store: conv.StoreID(*storeF), Agent: *agentF, Channel: *channelF}
	out := bufio.NewWriter(stdout)
	defer out.Flush()
	switch cmd {
	case "kpi":
		t := r.KPIs(q)
		switch {
		case *asCSV:
			err = WriteTableCSV(out, t)
		case *asJSON:
			err = json.NewEncoder(out).Encode(t)
		default:
			writeTableText(out, t)
		}
	case "funnel":
		f := r.Funnel(q)
		switch {
		case *asCSV:
			err = WriteFunnelCSV(out, f)
		case *asJSON:
			err = json.NewEncoder(out).Encode(f)
		default:
			writeFunnelText(out, f)
		}
	case "drill":
		var refs []ContactRef
		refs, err = r.Drill(q, *key, *filter, *limit)
		if err == nil {
			if *asJSON {
				err = json.NewEncoder(out).Encode(refs)
			} else {
				err = WriteDrillCSV(out, refs)
			}
		}
	case "definitions":
		var defs []Definition
		defs, err = r.DefinitionHistory(ctx)
		if err == nil {
			switch {
			case *asCSV:
				err = WriteDefinitionsCSV(out, defs)
			case *asJSON:
				err = json.NewEncoder(out).Encode(defs)
			default:
				writeDefsText(out, defs)
			}
		}
	default:
		fmt.Fprintf(stderr, "kefu report: unknown command %q\n\n%s", cmd, cliUsage)
		return 2
	}
	if err != nil {
		fmt.Fprintln(stderr, "kefu report:", err)
		if errors.Is(err, conv.ErrBadInput) {
			return 2
		}
		return 1
	}
	return 0
}

func cliGen(ctx context.Context, stdout, stderr io.Writer, e engine.Engine, cfg Config, seed uint64, day string, contacts int, jsonl string) int {
	loc := cfg.location()
	d := time.Now().In(loc)
	if day != "" {
		d, _ = time.ParseInLocation(time.DateOnly, day, loc)
	}
	evs := GenerateDay(seed, d, loc, GenOptions{Contacts: contacts})
	if jsonl != "" {
		f, err := os.Create(jsonl)
		if err != nil {
			fmt.Fprintln(stderr, "kefu report gen:", err)
			return 1
		}
		w := bufio.NewWriter(f)
		enc := json.NewEncoder(w)
		for i := range evs {
			_ = enc.Encode(evs[i])
		}
		if err := errors.Join(w.Flush(), f.Close()); err != nil {
			fmt.Fprintln(stderr, "kefu report gen:", err)
			return 1
		}
		fmt.Fprintf(stdout, "wrote %d events (%d contacts, seed %d, %s) to %s\n", len(evs), contacts, seed, d.Format(time.DateOnly), jsonl)
		return 0
	}
	if e == nil {
		fmt.Fprintln(stderr, "kefu report gen: no engine: pass --jsonl FILE")
		return 1
	}
	for i := range evs {
		b, _ := json.Marshal(evs[i])
		if _, err := e.Append(ctx, EventLog, b); err != nil {
			fmt.Fprintln(stderr, "kefu report gen:", err)
			return 1
		}
	}
	fmt.Fprintf(stdout, "appended %d events (%d contacts, seed %d, %s) to the %q log\n", len(evs), contacts, seed, d.Format(time.DateOnly), EventLog)
	return 0
}
