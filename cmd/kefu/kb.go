package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"kefu/bot"
	"kefu/bot/kbcli"
)

// cmdKB hands the knowledge-base subcommands to the bot's CLI, except the
// curation verbs, which work on the running server's journal (it lives in
// the server's engine): `misses` and `tune` without --kb, and `link`,
// `draft`, `suggestions`, `approve`, `reject`.
func cmdKB(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		if _, ok := curationArgs[args[0]]; ok && !(isJournalVerb(args[0]) && hasFlag(args[1:], "kb")) {
			return kbCurate(args[0], args[1:], stdout, stderr)
		}
	}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		defer fmt.Fprint(stderr, curationUsage)
	}
	return kbcli.Run(args, stdout, stderr)
}

// curationArgs are the server-side verbs and their positional arguments.
var curationArgs = map[string][]string{
	"misses": nil, "tune": nil, "suggestions": nil,
	"link": {"question", "entry"}, "draft": {"question", "answer"},
	"approve": {"id"}, "reject": {"id"},
}

// isJournalVerb: misses and tune can also read a journal file (--kb).
func isJournalVerb(verb string) bool { return verb == "misses" || verb == "tune" }

const curationUsage = `
curation (against the running server of -c FILE, default configs/kefu.yaml; needs admin.token):
  misses      [--since 168h] [--json]        missed questions, grouped
  tune        [--precision 0.9] [--json]     thresholds proposed from picks, ratings and links
  link        QUESTION ENTRY-ID [--agent A]  propose QUESTION as a similar question of the entry
  draft       QUESTION ANSWER [--agent A]    propose a new entry from an agent's reply
  suggestions [--json]                       proposals waiting for approval
  approve     ID [--agent A]                 apply a proposal (re-publishes the KB, rewrites the file)
  reject      ID [--agent A]                 drop a proposal
With --kb KB --data DIR, misses and tune read a journal file instead (a bot without an engine).
`

// kbCurate runs a curation verb against the running server through its
// /admin/kb/* endpoints.
func kbCurate(verb string, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kb "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("c", "configs/kefu.yaml", "config file of the running server")
	agent := fs.String("agent", "", "link/draft/approve/reject: who proposes or decides (kept in the journal)")
	since := fs.Duration("since", 7*24*time.Hour, "misses: look back this far")
	prec := fs.Float64("precision", 0.9, "tune: target precision of direct answers")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(reorder(args)); err != nil {
		return 2
	}
	names := curationArgs[verb]
	if fs.NArg() != len(names) {
		fmt.Fprintf(stderr, "kefu kb %s: want %d arguments, got %d\n%s", verb, len(names), fs.NArg(), curationUsage)
		return 2
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, "kefu kb:", err)
		return 1
	}
	q := url.Values{}
	for i, name := range names {
		q.Set(name, fs.Arg(i))
	}
	method := http.MethodPost
	switch verb {
	case "misses":
		q.Set("since", since.String())
		method = http.MethodGet
	case "tune":
		q.Set("precision", strconv.FormatFloat(*prec, 'f', -1, 64))
		method = http.MethodGet
	case "suggestions":
		method = http.MethodGet
	default:
		if *agent != "" {
			q.Set("agent", *agent)
		}
	}
	body, err := adminCall(cfg.Listen, cfg.Admin.Token, method, "/admin/kb/"+verb+"?"+q.Encode())
	if err != nil {
		fmt.Fprintln(stderr, "kefu kb:", err)
		return 1
	}
	if *asJSON || method == http.MethodPost {
		fmt.Fprintln(stdout, strings.TrimSpace(string(body)))
		return 0
	}
	if err := printCuration(stdout, verb, body); err != nil {
		fmt.Fprintln(stderr, "kefu kb: bad answer from the server:", err)
		return 1
	}
	return 0
}

// printCuration prints a GET verb's answer for people.
func printCuration(w io.Writer, verb string, body []byte) error {
	switch verb {
	case "misses":
		var groups []bot.MissGroup
		if err := json.Unmarshal(body, &groups); err != nil {
			return err
		}
		if len(groups) == 0 {
			fmt.Fprintln(w, "no missed questions in that period")
		}
		kbcli.PrintMisses(w, groups)
	case "tune":
		var p bot.Proposal
		if err := json.Unmarshal(body, &p); err != nil {
			return err
		}
		kbcli.PrintProposal(w, p)
	case "suggestions":
		var recs []bot.Record
		if err := json.Unmarshal(body, &recs); err != nil {
			return err
		}
		if len(recs) == 0 {
			fmt.Fprintln(w, "no proposals waiting")
		}
		for _, r := range recs {
			if r.Kind == bot.RecLink {
				fmt.Fprintf(w, "%s  link   %q → %s  (%s)\n", r.ID, r.Question, r.Entry, r.Agent)
			} else {
				fmt.Fprintf(w, "%s  draft  %q: %q  (%s)\n", r.ID, r.Question, r.Answer, r.Agent)
			}
		}
	}
	return nil
}

// hasFlag reports whether args set flag name (-name or --name, with or
// without =value).
func hasFlag(args []string, name string) bool {
	for _, a := range args {
		a = strings.TrimLeft(a, "-")
		if a == name || strings.HasPrefix(a, name+"=") {
			return true
		}
	}
	return false
}

// adminCall calls an /admin endpoint of the server listening on listen.
func adminCall(listen, token, method, path string) ([]byte, error) {
	if token == "" {
		return nil, fmt.Errorf("admin.token is not set in the config; the admin endpoints are disabled")
	}
	req, err := http.NewRequest(method, "http://"+listen+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("is the server running? %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	return b, nil
}
