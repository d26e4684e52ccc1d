package app

import (
	"os"
	"runtime/debug"

	"kefu/internal/gctune"
)

// ApplyRuntime applies cfg.Runtime to this process (kefu serve calls it once
// at start). GOGC and GOMEMLIMIT in the environment take precedence, as the
// Go runtime documents. It returns the memory limit in force in bytes (0:
// none set here).
func ApplyRuntime(cfg Config) int64 {
	if _, set := os.LookupEnv("GOGC"); !set {
		percent := cfg.Runtime.GCPercent
		if percent <= 0 {
			percent = 100
		}
		gctune.Stop() // an earlier ApplyRuntime's (tests apply several configs)
		debug.SetGCPercent(percent)
		if cfg.Runtime.GCMinHeapMiB > 0 {
			gctune.Start(percent, int64(cfg.Runtime.GCMinHeapMiB)<<20)
		}
	}
	if _, set := os.LookupEnv("GOMEMLIMIT"); set || cfg.Runtime.MemoryLimitMiB <= 0 {
		return 0
	}
	limit := int64(cfg.Runtime.MemoryLimitMiB) << 20
	debug.SetMemoryLimit(limit)
	return limit
}
