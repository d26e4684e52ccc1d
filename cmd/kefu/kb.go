package main

import (
	"io"

	"kefu/bot/kbcli"
)

// cmdKB hands the knowledge-base subcommands to the bot's CLI.
func cmdKB(args []string, stdout, stderr io.Writer) int {
	return kbcli.Run(args, stdout, stderr)
}
