package main

import (
	"io"

	"kefu/bench"
)

// cmdBench runs the gateway load benchmark (bench package).
func cmdBench(args []string, stdout, stderr io.Writer) int {
	return bench.Run(args, stdout, stderr)
}
