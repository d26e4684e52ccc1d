package app

import (
	"os"
	"runtime/debug"
)

// ApplyRuntime applies cfg.Runtime to this process (kefu serve calls it once
// at start). GOGC and GOMEMLIMIT in the environment take precedence, as the
// Go runtime documents. It returns the memory limit in force in bytes (0:
// none set here).
func ApplyRuntime(cfg Config) int64 {
	if _, set := os.LookupEnv("GOGC"); !set && cfg.Runtime.GCPercent > 0 {
		debug.SetGCPercent(cfg.Runtime.GCPercent)
	}
	if _, set := os.LookupEnv("GOMEMLIMIT"); set || cfg.Runtime.MemoryLimitMiB <= 0 {
		return 0
	}
	limit := int64(cfg.Runtime.MemoryLimitMiB) << 20
	debug.SetMemoryLimit(limit)
	return limit
}
