package app

import (
	"os"
	"runtime/debug"
)

// ApplyRuntime applies cfg.Runtime to this process (kefu serve calls it once
// at start). GOMEMLIMIT in the environment takes precedence, as the Go
// runtime documents. It returns the limit in force in bytes (0: none set
// here).
func ApplyRuntime(cfg Config) int64 {
	if _, set := os.LookupEnv("GOMEMLIMIT"); set || cfg.Runtime.MemoryLimitMiB <= 0 {
		return 0
	}
	limit := int64(cfg.Runtime.MemoryLimitMiB) << 20
	debug.SetMemoryLimit(limit)
	return limit
}
