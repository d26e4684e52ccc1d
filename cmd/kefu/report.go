package main

import (
	"fmt"
	"io"
	"log/slog"

	"kefu/app"
	"kefu/conv"
	"kefu/report"
	"kefu/surveys"
)

// cmdReport prints KPIs, the funnel (report package) and NPS (surveys
// package) from the engine the config names. With the embedded engine the
// data directory is locked by a running server: stop it first, or read the
// same numbers in the dashboard.
func cmdReport(args []string, stdout, stderr io.Writer) int {
	cfgPath := "configs/kefu.yaml"
	var rest []string
	for i := 0; i < len(args); i++ {
		if args[i] == "-c" && i+1 < len(args) {
			cfgPath = args[i+1]
			i++
			continue
		}
		rest = append(rest, args[i])
	}
	if len(rest) == 0 {
		return report.RunCLI(rest, stdout, stderr, nil, nil)
	}
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, "kefu report:", err)
		return 1
	}
	eng, err := app.OpenEngine(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		fmt.Fprintln(stderr, "kefu report:", err, "(is the server running on this data_dir? use the dashboard, or stop it)")
		return 1
	}
	defer eng.Close()
	tree, err := conv.NewStoreTree(cfg.Stores)
	if err != nil {
		fmt.Fprintln(stderr, "kefu report:", err)
		return 1
	}
	if rest[0] == "nps" {
		sv := cfg.Surveys
		if sv.Stores.ID == "" {
			sv.Stores = cfg.Stores
		}
		return surveys.ReportNPS(rest[1:], stdout, stderr, eng, sv)
	}
	return report.RunCLIConfig(rest, stdout, stderr, eng, tree, cfg.Report)
}
