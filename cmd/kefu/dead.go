package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// cmdDead lists or replays dead-lettered outbound messages through the
// running gateway's admin endpoints (the embedded engine is owned by the
// serving process, so the CLI does not open it).
func cmdDead(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("dead", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("c", "configs/kefu.yaml", "config file (YAML)")
	if len(args) == 0 || (args[0] != "list" && args[0] != "replay") {
		fmt.Fprintln(stderr, "usage: kefu dead list|replay [ID…] [-c FILE]")
		return 2
	}
	verb := args[0]
	if err := fs.Parse(reorder(args[1:])); err != nil {
		return 2
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, "kefu dead:", err)
		return 1
	}
	if cfg.Admin.Token == "" {
		fmt.Fprintln(stderr, "kefu dead: admin.token is not set in the config; the admin endpoints are disabled")
		return 1
	}
	u := "http://" + cfg.Listen + "/admin/deadletters"
	method := http.MethodGet
	if verb == "replay" {
		q := url.Values{}
		for _, id := range fs.Args() {
			q.Add("id", id)
		}
		u += "/replay?" + q.Encode()
		method = http.MethodPost
	}
	req, _ := http.NewRequest(method, u, nil)
	req.Header.Set("Authorization", "Bearer "+cfg.Admin.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintln(stderr, "kefu dead:", err)
		return 1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		fmt.Fprintf(stderr, "kefu dead: %s: %s\n", resp.Status, strings.TrimSpace(string(b)))
		return 1
	}
	fmt.Fprintln(stdout, string(b))
	return 0
}
