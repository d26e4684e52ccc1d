//go:build !unix

package engine

// lockDir is a no-op where flock is unavailable; run one process per dir.
func lockDir(string) (func(), error) { return func() {}, nil }
