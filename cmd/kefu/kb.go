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
		switch args[0] {
		case "misses", "tune":
			if !hasFlag(args[1:], "kb") {
				return kbFromServer(args[0], args[1:], stdout, stderr)
			}
		case "link", "draft", "suggestions", "approve", "reject":
			return kbCurate(args[0], args[1:], stdout, stderr)
		}
	}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		defer fmt.Fprint(stderr, curationUsage)
	}
	return kbcli.Run(args, stdout, stderr)
}

const curationUsage = `
curation (against the running server of -c FILE, default configs/kefu.yaml; needs admin.token):
  misses      [--since 168h] [--json]        missed questions, grouped
  tune        [--precision 0.9] [--json]     thresholds proposed from picks, ratings and links
  link        QUESTION ENTRY-ID [--agent A]  propose QUESTION as a similar question of the entry
  draft       QUESTION ANSWER [--agent A]    propose a new entry from an agent's reply
  suggestions [--json]                       proposals waiting for approval
  approve     ID [--agent A]                 apply a proposal (re-publishes the KB, rewrites the file)
  reject      ID [--agent A]                 drop a proposal
`

// kbCurate runs a curation verb against the running server.
func kbCurate(verb string, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kb "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("c", "configs/kefu.yaml", "config file of the running server")
	agent := fs.String("agent", "", "who proposes or decides (kept in the journal)")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(reorder(args)); err != nil {
		return 2
	}
	want := map[string]int{"link": 2, "draft": 2, "suggestions": 0, "approve": 1, "reject": 1}[verb]
	if fs.NArg() != want {
		fmt.Fprintf(stderr, "kefu kb %s: want %d arguments, got %d\n%s", verb, want, fs.NArg(), curationUsage)
		return 2
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, "kefu kb:", err)
		return 1
	}
	q := url.Values{}
	if *agent != "" {
		q.Set("agent", *agent)
	}
	method := http.MethodPost
	a := fs.Args()
	switch verb {
	case "link":
		q.Set("question", a[0])
		q.Set("entry", a[1])
	case "draft":
		q.Set("question", a[0])
		q.Set("answer", a[1])
	case "approve", "reject":
		q.Set("id", a[0])
	case "suggestions":
		method = http.MethodGet
	}
	body, err := adminCall(cfg.Listen, cfg.Admin.Token, method, "/admin/kb/"+verb+"?"+q.Encode())
	if err != nil {
		fmt.Fprintln(stderr, "kefu kb:", err)
		return 1
	}
	if *asJSON || verb != "suggestions" {
		fmt.Fprintln(stdout, strings.TrimSpace(string(body)))
		return 0
	}
	var recs []bot.Record
	if err := json.Unmarshal(body, &recs); err != nil {
		fmt.Fprintln(stderr, "kefu kb: bad answer from the server:", err)
		return 1
	}
	if len(recs) == 0 {
		fmt.Fprintln(stdout, "no proposals waiting")
	}
	for _, r := range recs {
		if r.Kind == bot.RecLink {
			fmt.Fprintf(stdout, "%s  link   %q → %s  (%s)\n", r.ID, r.Question, r.Entry, r.Agent)
		} else {
			fmt.Fprintf(stdout, "%s  draft  %q: %q  (%s)\n", r.ID, r.Question, r.Answer, r.Agent)
		}
	}
	return 0
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

// kbFromServer runs `kefu kb misses|tune` against the server of config -c
// through its admin endpoints.
func kbFromServer(verb string, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kb "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("c", "configs/kefu.yaml", "config file of the running server")
	since := fs.Duration("since", 7*24*time.Hour, "misses: look back this far")
	prec := fs.Float64("precision", 0.9, "tune: target precision of direct answers")
	asJSON := fs.Bool("json", false, "print JSON")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: kefu kb %s [-c FILE] [--since 168h | --precision 0.9] [--json]\n"+
			"  asks the running server (its admin endpoint; admin.token must be set).\n"+
			"  With --kb KB --data DIR it reads a journal file instead (a bot without an engine).\n", verb)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, "kefu kb:", err)
		return 1
	}
	q := url.Values{}
	if verb == "misses" {
		q.Set("since", since.String())
	} else {
		q.Set("precision", strconv.FormatFloat(*prec, 'f', -1, 64))
	}
	body, err := adminCall(cfg.Listen, cfg.Admin.Token, http.MethodGet, "/admin/kb/"+verb+"?"+q.Encode())
	if err != nil {
		fmt.Fprintln(stderr, "kefu kb:", err)
		return 1
	}
	if *asJSON {
		fmt.Fprintln(stdout, strings.TrimSpace(string(body)))
		return 0
	}
	if verb == "misses" {
		var groups []bot.MissGroup
		if err := json.Unmarshal(body, &groups); err != nil {
			fmt.Fprintln(stderr, "kefu kb: bad answer from the server:", err)
			return 1
		}
		if len(groups) == 0 {
			fmt.Fprintln(stdout, "no missed questions in that period")
		}
		kbcli.PrintMisses(stdout, groups)
		return 0
	}
	var p bot.Proposal
	if err := json.Unmarshal(body, &p); err != nil {
		fmt.Fprintln(stderr, "kefu kb: bad answer from the server:", err)
		return 1
	}
	kbcli.PrintProposal(stdout, p)
	return 0
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
