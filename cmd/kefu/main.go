// Command kefu is the WeChat customer-service gateway: one binary with
// subcommands to serve, check a config, chat through the built-in WeChat
// simulator, manage the knowledge base, inspect dead letters and run the
// load benchmark.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"kefu/app"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

const usage = `kefu — WeChat customer-service gateway

Usage:
  kefu serve       [-c FILE] [--listen ADDR]   run the gateway
  kefu checkconfig -c FILE                     validate a config, explaining every error
  kefu chat        [-c FILE] --channel NAME [--user ID] TEXT
                                               talk to a running gateway as a WeChat customer
  kefu kb          SUBCOMMAND …                knowledge base: import, export, list, show, publish, misses, tune, eval
  kefu dead        list|replay [ID…] [-c FILE] list or replay dead-lettered outbound messages
  kefu report      kpi|funnel|nps [flags]      KPIs, the funnel and NPS from the event log
  kefu console     hash-password               bcrypt hash of a password (stdin) for console.users
  kefu bench       [flags]                     load benchmark (see docs/BENCHMARKS.md)
  kefu version
`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return cmdServe(rest, stdout, stderr)
	case "checkconfig":
		return cmdCheckConfig(rest, stdout, stderr)
	case "chat":
		return cmdChat(rest, stdout, stderr)
	case "kb":
		return cmdKB(rest, stdout, stderr)
	case "dead":
		return cmdDead(rest, stdout, stderr)
	case "console":
		return cmdConsole(rest, stdout, stderr)
	case "report":
		return cmdReport(rest, stdout, stderr)
	case "bench":
		return cmdBench(rest, stdout, stderr)
	case "version", "--version", "-v":
		v := version
		if bi, ok := debug.ReadBuildInfo(); ok && v == "dev" {
			v = "dev (" + bi.GoVersion + ")"
		}
		fmt.Fprintln(stdout, "kefu", v)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "kefu: unknown command %q\n\n%s", cmd, usage)
	return 2
}

// loadConfig reads FILE plus KEFU_* overrides.
func loadConfig(path string) (app.Config, error) {
	return app.Load(path, os.Environ())
}

func cmdServe(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("c", "", "config file (YAML)")
	listen := fs.String("listen", "", "listen address (overrides the config)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, "kefu:", err)
		return 1
	}
	if *listen != "" {
		cfg.Listen = *listen
	}
	app.ApplyRuntime(cfg)
	log := app.NewLogger(cfg.Log, os.Stderr)
	a, err := app.Build(cfg, log)
	if err != nil {
		fmt.Fprintln(stderr, "kefu:", err)
		return 1
	}
	defer a.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := a.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(stderr, "kefu:", err)
		return 1
	}
	return 0
}

func cmdCheckConfig(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("checkconfig", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("c", "", "config file (YAML)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *cfgPath == "" {
		fmt.Fprintln(stderr, "kefu checkconfig: -c FILE is required")
		return 2
	}
	cfg, err := loadConfig(*cfgPath)
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: invalid configuration:\n", *cfgPath)
		for _, line := range app.ErrorLines(err) {
			fmt.Fprintln(stderr, "  -", line)
		}
		return 1
	}
	fmt.Fprintf(stdout, "%s: OK (%d channels, engine %s)\n", *cfgPath, len(cfg.Channels), engineName(cfg))
	return 0
}

func engineName(cfg app.Config) string {
	if cfg.Redis.Addr == "" {
		return "embedded in " + cfg.DataDir
	}
	return "redis at " + cfg.Redis.Addr
}
