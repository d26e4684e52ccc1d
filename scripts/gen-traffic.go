//go:build ignore

// gen-traffic records one day of synthetic kefu traffic — bot answers,
// handoffs with waits and abandonment, transfers, closes, repeat contacts,
// surveys (with not-sent reasons), scores, detractor cases and callbacks —
// as domain events (conv.Event JSON), fully determined by -seed. Replaying
// the same day on the embedded engine and on Redis yields the same KPIs
// (report.TestReporter_ReplayDaySameOnBothEngines).
//
// Usage:
//
//	go run scripts/gen-traffic.go -jsonl day.jsonl                 # JSON lines, no engine
//	go run scripts/gen-traffic.go -data ./data/engine              # append to an embedded engine (kefu stopped)
//	go run scripts/gen-traffic.go -redis 127.0.0.1:6379 -prefix kefu:   # append to a Redis engine
//
// Then: kefu report kpi --by store, or open the dashboard.
package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"

	"github.com/redis/go-redis/v9"

	"kefu/engine"
	"kefu/report"
)

func main() {
	seed := flag.Uint64("seed", 1, "random seed (same seed, same day)")
	day := flag.String("day", "2026-11-02", "day to generate, YYYY-MM-DD in the report zone")
	contacts := flag.Int("contacts", 2000, "contacts started during the day")
	jsonl := flag.String("jsonl", "", "write JSON lines here instead of appending to an engine")
	data := flag.String("data", "", "embedded engine directory to append to")
	addr := flag.String("redis", "", "Redis address to append to")
	prefix := flag.String("prefix", "kefu:", "Redis key prefix (redis.prefix in the config)")
	flag.Parse()

	args := []string{"gen", "--seed", strconv.FormatUint(*seed, 10), "--day", *day, "--contacts", strconv.Itoa(*contacts)}
	var e engine.Engine
	switch {
	case *jsonl != "":
		args = append(args, "--jsonl", *jsonl)
	case *data != "":
		emb, err := engine.OpenEmbedded(*data, engine.EmbeddedOptions{})
		if err != nil {
			fmt.Fprintln(os.Stderr, "gen-traffic:", err)
			os.Exit(1)
		}
		e = emb
	case *addr != "":
		e = engine.NewRedis(redis.NewClient(&redis.Options{Addr: *addr}), *prefix)
	default:
		fmt.Fprintln(os.Stderr, "gen-traffic: pass -jsonl FILE, -data DIR or -redis ADDR")
		os.Exit(2)
	}
	code := report.RunCLI(args, os.Stdout, os.Stderr, e, report.SampleTree())
	if e != nil {
		e.Close()
	}
	os.Exit(code)
}
