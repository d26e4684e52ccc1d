// Command kb runs the `kefu kb` subcommands stand-alone (development and
// benchmarks, until the app wires them into the kefu binary):
//
//	go run ./bot/kbcli/cmd/kb eval --kb FAQ.jsonl --queries Q.jsonl --json
package main

import (
	"os"

	"kefu/bot/kbcli"
)

func main() { os.Exit(kbcli.Run(os.Args[1:], os.Stdout, os.Stderr)) }
