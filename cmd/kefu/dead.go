package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
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
	path := "/admin/deadletters"
	method := http.MethodGet
	if verb == "replay" {
		q := url.Values{}
		for _, id := range fs.Args() {
			q.Add("id", id)
		}
		path += "/replay?" + q.Encode()
		method = http.MethodPost
	}
	b, err := adminCall(cfg.Listen, cfg.Admin.Token, method, path)
	if err != nil {
		fmt.Fprintln(stderr, "kefu dead:", err)
		return 1
	}
	fmt.Fprintln(stdout, string(b))
	return 0
}
