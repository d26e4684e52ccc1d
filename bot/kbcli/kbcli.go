// Package kbcli implements the `kefu kb …` subcommands: import, export,
// list, show, publish, misses, tune and eval. The application calls Run with
// the arguments after "kb".
package kbcli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"kefu/bot"
	"kefu/bot/evaluate"
	"kefu/bot/kb"
	"kefu/conv"
)

const usage = `usage: kefu kb <command> [flags]

commands:
  import  --kb KB FILE [--replace]   validate FILE (.xlsx/.csv/.jsonl/.yaml) and merge it into KB
  export  --kb KB OUT                write KB to OUT (format from its extension)
  list    --kb KB [--status S] [--category C]
  show    --kb KB ID
  publish --kb KB --data DIR         (re)build the embedded index, re-indexing only changed entries
  misses  --kb KB --data DIR [--since 168h] [--json]
  tune    --kb KB --data DIR [--precision 0.9] [--json]
  search  --kb KB [--store S] [--agent] TEXT   what the bot would retrieve, with scores and decision
  eval    --kb FAQ.jsonl --queries Q.jsonl [--paraphrases P.jsonl] [--withhold 0.2 --seed N]
          [--half all|dev|test] [--answer T] [--curve] [--json]
          [--paraphrase-splits N]   N random halvings of Q: one half added as similar questions,
                                    the other evaluated; R@1 pooled against the baseline
`

// Run executes one kb subcommand and returns the process exit code.
func Run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmds := map[string]func([]string, io.Writer, io.Writer) error{
		"import": cmdImport, "export": cmdExport, "list": cmdList, "show": cmdShow,
		"publish": cmdPublish, "misses": cmdMisses, "tune": cmdTune, "eval": cmdEval, "search": cmdSearch,
	}
	fn, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "kefu kb: unknown command %q\n%s", args[0], usage)
		return 2
	}
	if err := fn(args[1:], stdout, stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 2
		}
		fmt.Fprintln(stderr, "kefu kb "+args[0]+":", err)
		return 1
	}
	return 0
}

func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("kefu kb "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func readKB(path string, stderr io.Writer) ([]kb.Entry, error) {
	if path == "" {
		return nil, errors.New("--kb is required")
	}
	bar := kb.NewBar(stderr, "reading "+filepath.Base(path))
	return kb.ReadFile(path, kb.ImportOptions{Progress: bar.Update})
}

func cmdImport(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("import", stderr)
	kbPath := fs.String("kb", "", "knowledge base file to update")
	replace := fs.Bool("replace", false, "replace the KB instead of merging by id")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 || *kbPath == "" {
		return errors.New("want --kb KB and one FILE")
	}
	bar := kb.NewBar(stderr, "validating")
	in, err := kb.ReadFile(fs.Arg(0), kb.ImportOptions{Progress: bar.Update})
	if err != nil {
		var ie *kb.ImportError
		if errors.As(err, &ie) {
			for _, fe := range ie.Errors {
				fmt.Fprintln(stderr, fe.Error())
			}
			return fmt.Errorf("%d error(s); nothing imported", len(ie.Errors))
		}
		return err
	}
	var cur []kb.Entry
	if !*replace {
		if _, err := os.Stat(*kbPath); err == nil {
			if cur, err = kb.ReadFile(*kbPath, kb.ImportOptions{}); err != nil {
				return err
			}
		}
	}
	merged, added, updated := merge(cur, in)
	if err := kb.WriteFile(*kbPath, merged); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "imported %d entries (%d new, %d updated) into %s\n", len(in), added, updated, *kbPath)
	return nil
}

// merge overlays in on cur by id, bumping the version of changed entries.
func merge(cur, in []kb.Entry) ([]kb.Entry, int, int) {
	idx := map[string]int{}
	for i, e := range cur {
		idx[e.ID] = i
	}
	out := slices.Clone(cur)
	added, updated := 0, 0
	for _, e := range in {
		i, ok := idx[e.ID]
		if !ok {
			idx[e.ID] = len(out)
			out = append(out, e)
			added++
			continue
		}
		if out[i].Hash() != e.Hash() {
			e.Version = max(e.Version, out[i].Version+1)
			out[i] = e
			updated++
		}
	}
	return out, added, updated
}

func cmdExport(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("export", stderr)
	kbPath := fs.String("kb", "", "knowledge base file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("want one output file")
	}
	entries, err := readKB(*kbPath, stderr)
	if err != nil {
		return err
	}
	if err := kb.WriteFile(fs.Arg(0), entries); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "exported %d entries to %s\n", len(entries), fs.Arg(0))
	return nil
}

func cmdList(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("list", stderr)
	kbPath := fs.String("kb", "", "knowledge base file")
	status := fs.String("status", "", "only this status")
	category := fs.String("category", "", "only this category")
	if err := fs.Parse(args); err != nil {
		return err
	}
	entries, err := readKB(*kbPath, stderr)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATUS\tVISIBILITY\tCATEGORY\tSTORES\tSIMILAR\tQUESTION")
	for _, e := range entries {
		if (*status != "" && string(e.Status) != *status) || (*category != "" && e.Category != *category) {
			continue
		}
		stores := "all"
		if len(e.Stores) > 0 {
			stores = strings.Join(e.Stores, ",")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", e.ID, e.Status, e.Visibility, e.Category, stores, len(e.Similar), e.Question)
	}
	return tw.Flush()
}

func cmdShow(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("show", stderr)
	kbPath := fs.String("kb", "", "knowledge base file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("want one entry id")
	}
	entries, err := readKB(*kbPath, stderr)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.ID == fs.Arg(0) {
			return kb.Export(stdout, kb.YAML, []kb.Entry{e})
		}
	}
	return fmt.Errorf("no entry %q", fs.Arg(0))
}

func openBot(kbPath, dataDir string, stderr io.Writer) (*bot.Bot, error) {
	cfg := bot.DefaultConfig()
	cfg.KB, cfg.DataDir = kbPath, dataDir
	entries, err := readKB(kbPath, stderr)
	if err != nil {
		return nil, err
	}
	b, err := bot.NewWithEntries(cfg, nil, nil, nil)
	if err != nil {
		return nil, err
	}
	bar := kb.NewBar(stderr, "indexing")
	if err := b.Publish(context.Background(), entries, bar.Update); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

func cmdPublish(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("publish", stderr)
	kbPath := fs.String("kb", "", "knowledge base file")
	dataDir := fs.String("data", "", "data directory holding the index")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dataDir == "" {
		return errors.New("--data is required")
	}
	start := time.Now()
	cfg := bot.DefaultConfig()
	cfg.KB, cfg.DataDir = *kbPath, *dataDir
	cfg.Progress = kb.NewBar(stderr, "indexing").Update
	b, err := bot.New(cfg, nil, nil)
	if err != nil {
		return err
	}
	defer b.Close()
	fmt.Fprintf(stdout, "published %d entries to %s in %v\n", len(b.Entries()), *dataDir, time.Since(start).Round(time.Millisecond))
	return nil
}

func cmdMisses(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("misses", stderr)
	kbPath := fs.String("kb", "", "knowledge base file")
	dataDir := fs.String("data", "", "data directory holding the journal")
	since := fs.Duration("since", 7*24*time.Hour, "look back this far")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	b, err := openBot(*kbPath, *dataDir, stderr)
	if err != nil {
		return err
	}
	defer b.Close()
	groups, err := b.Misses(context.Background(), time.Now().Add(-*since))
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(groups)
	}
	PrintMisses(stdout, groups)
	return nil
}

// PrintMisses prints missed-question groups as `kefu kb misses` does: the
// group's size and first questions, then its best candidate entries.
func PrintMisses(w io.Writer, groups []bot.MissGroup) {
	for i, g := range groups {
		fmt.Fprintf(w, "%d. ×%d  %s\n", i+1, g.Count, strings.Join(g.Questions[:min(3, len(g.Questions))], " | "))
		for _, c := range g.Candidates[:min(3, len(g.Candidates))] {
			fmt.Fprintf(w, "     %.2f %s %s\n", c.Score, c.EntryID, c.Question)
		}
	}
}

func cmdTune(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("tune", stderr)
	kbPath := fs.String("kb", "", "knowledge base file")
	dataDir := fs.String("data", "", "data directory holding the journal")
	prec := fs.Float64("precision", 0.9, "target precision of direct answers")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	b, err := openBot(*kbPath, *dataDir, stderr)
	if err != nil {
		return err
	}
	defer b.Close()
	recs, err := b.Journal().Records(context.Background())
	if err != nil {
		return err
	}
	p := bot.Tune(b.Rescore(context.Background(), bot.Labels(recs)), bot.DefaultConfig().Thresholds, *prec)
	if *asJSON {
		return json.NewEncoder(stdout).Encode(p)
	}
	PrintProposal(stdout, p)
	return nil
}

// PrintProposal prints a threshold proposal as `kefu kb tune` does.
func PrintProposal(w io.Writer, p bot.Proposal) {
	if p.Labels < 20 {
		fmt.Fprintf(w, "only %d labels (need 20): keeping answer=%.2f clarify=%.2f\n", p.Labels, p.Answer, p.Clarify)
		return
	}
	fmt.Fprintf(w, "from %d labels: answer=%.2f clarify=%.2f margin=%.2f (precision %.2f, coverage %.2f)\n", p.Labels, p.Answer, p.Clarify, p.Margin, p.Precision, p.Coverage)
}

func cmdEval(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("eval", stderr)
	faq := fs.String("kb", "", "FAQ file (JSONL rows {id, question, answer})")
	queries := fs.String("queries", "", "queries file (JSONL rows {query, faq_id})")
	paras := fs.String("paraphrases", "", "queries to add to the KB as similar questions")
	splits := fs.Int("paraphrase-splits", 0, "repeat N random halvings of --queries: one half added as similar questions, the other evaluated; prints pooled R@1 against the baseline")
	withhold := fs.Float64("withhold", 0, "fraction of entries removed to measure false answers")
	seed := fs.Int64("seed", 1, "seed of the withheld entries")
	half := fs.String("half", "all", "evaluate all queries, or the dev or test half (fixed hash split)")
	answer := fs.Float64("answer", 0, "answer threshold (default: the bot's)")
	curve := fs.Bool("curve", false, "print the precision/coverage curve")
	asJSON := fs.Bool("json", false, "print one JSON object")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *faq == "" || *queries == "" {
		return errors.New("--kb and --queries are required")
	}
	entries, err := evaluate.LoadFAQ(*faq)
	if err != nil {
		return err
	}
	qs, err := evaluate.LoadQueries(*queries)
	if err != nil {
		return err
	}
	opt := evaluate.Options{Withhold: *withhold, Seed: *seed, Config: bot.DefaultConfig()}
	if *answer > 0 {
		opt.Config.Answer = *answer
		opt.Config.Clarify = min(opt.Config.Clarify, *answer)
	}
	switch *half {
	case "all":
		opt.Half = -1
	case "dev":
		opt.Half = 0
	case "test":
		opt.Half = 1
	default:
		return fmt.Errorf("--half must be all, dev or test")
	}
	if *splits != 0 {
		if *paras != "" || *withhold != 0 || *curve {
			return errors.New("--paraphrase-splits chooses the paraphrases itself: it cannot be combined with --paraphrases, --withhold or --curve")
		}
		return evalSplits(stdout, entries, qs, *splits, opt, *half, *asJSON)
	}
	if *paras != "" {
		if opt.Paraphrases, err = evaluate.LoadQueries(*paras); err != nil {
			return err
		}
	}
	res, err := evaluate.Run(context.Background(), entries, qs, opt)
	if err != nil {
		return err
	}
	if *asJSON {
		out := map[string]any{
			"r1": res.R1, "r5": res.R5, "mrr10": res.MRR10, "n": res.N,
			"answer_precision": res.AnswerPrecision, "answer_coverage": res.AnswerCoverage,
			"false_answer_rate": res.FalseAnswerRate, "p50_ms": res.P50ms, "p99_ms": res.P99ms,
			"baseline": res.Baseline, "withheld": res.Withheld, "suggested_answer": res.Suggested,
		}
		if *curve {
			out["curve"] = res.Curve
		}
		return json.NewEncoder(stdout).Encode(out)
	}
	fmt.Fprintf(stdout, "queries evaluated: %d answerable, %d withheld (half=%s)\n", res.N, res.Withheld, *half)
	fmt.Fprintf(stdout, "bot:      R@1 %.3f  R@5 %.3f  MRR@10 %.3f  n=%d\n", res.R1, res.R5, res.MRR10, res.N)
	fmt.Fprintf(stdout, "baseline: R@1 %.3f  R@5 %.3f  MRR@10 %.3f  (char 1+2-gram TF-IDF cosine)\n", res.Baseline.R1, res.Baseline.R5, res.Baseline.MRR10)
	if res.Baseline.R1 > 0 {
		fmt.Fprintf(stdout, "R@1 ratio: %.2f×\n", res.R1/res.Baseline.R1)
	}
	fmt.Fprintf(stdout, "decisions at answer=%.2f: precision %.3f  coverage %.3f  false-answer rate %.3f\n", opt.Config.Answer, res.AnswerPrecision, res.AnswerCoverage, res.FalseAnswerRate)
	fmt.Fprintf(stdout, "latency per query: p50 %.3f ms  p99 %.3f ms\n", res.P50ms, res.P99ms)
	if *curve {
		fmt.Fprintln(stdout, "answer  precision  coverage  false_answer_rate")
		for _, p := range res.Curve {
			fmt.Fprintf(stdout, "%.2f    %.3f      %.3f     %.3f\n", p.Answer, p.Precision, p.Coverage, p.FalseAnswerRate)
		}
		fmt.Fprintf(stdout, "lowest threshold with false-answer rate ≤ 10%%: %.2f\n", res.Suggested)
	}
	return nil
}

// evalSplits prints evaluate.RunSplits.
func evalSplits(w io.Writer, entries []kb.Entry, qs []evaluate.QueryRow, k int, opt evaluate.Options, half string, asJSON bool) error {
	if k < 0 {
		return fmt.Errorf("--paraphrase-splits must be positive, got %d", k)
	}
	res, err := evaluate.RunSplits(context.Background(), entries, qs, k, opt)
	if err != nil {
		return err
	}
	if asJSON {
		return json.NewEncoder(w).Encode(res)
	}
	fmt.Fprintf(w, "%d paraphrase splits (half=%s): %d query evaluations\n", res.Splits, half, res.N)
	fmt.Fprintf(w, "pooled R@1: bot %.3f  baseline %.3f  ratio %.2f×\n", res.R1, res.BaselineR1, res.Ratio)
	fmt.Fprintf(w, "per split ratio: mean %.2f  sd %.2f  min %.2f  max %.2f\n", res.RatioMean, res.RatioSD, res.RatioMin, res.RatioMax)
	return nil
}

func cmdSearch(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("search", stderr)
	kbPath := fs.String("kb", "", "knowledge base file")
	store := fs.String("store", "", "customer's store")
	agent := fs.Bool("agent", false, "search as an agent (every store, agent-only entries too)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("want a question")
	}
	text := strings.Join(fs.Args(), " ")
	b, err := openBot(*kbPath, "", stderr)
	if err != nil {
		return err
	}
	defer b.Close()
	ctx := context.Background()
	if *agent {
		for _, c := range b.Search(ctx, text, conv.StoreID(*store), true, 5) {
			fmt.Fprintf(stdout, "%.3f  %s  %s\n", c.Score, c.EntryID, c.Question)
		}
		return nil
	}
	d, err := b.Respond(ctx, bot.Query{Text: text, Store: conv.StoreID(*store), Customer: "kbcli"})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "decision: %s (%s) score %.3f\n", d.Action, d.Reason, d.Score)
	for _, c := range d.Candidates {
		fmt.Fprintf(stdout, "%.3f  %s  %s\n", c.Score, c.EntryID, c.Question)
	}
	fmt.Fprintf(stdout, "reply: %s\n", d.Reply.Text)
	return nil
}
