package engine_test

import (
	"testing"

	"kefu/engine"
	"kefu/engine/enginetest"
)

// newEmbedded opens an embedded engine in a fresh temp dir with fsync on
// (the production setting), closed when t ends.
func newEmbedded(t testing.TB, opts engine.EmbeddedOptions) *engine.Embedded {
	t.Helper()
	opts.Logf = t.Logf
	e, err := engine.OpenEmbedded(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// engineFactory builds a fresh, empty engine for one test.
type engineFactory struct {
	name string
	new  func(t *testing.T) engine.Engine
}

func engines() []engineFactory {
	return []engineFactory{
		{"embedded", func(t *testing.T) engine.Engine { return newEmbedded(t, engine.EmbeddedOptions{}) }},
	}
}

// forEachEngine runs fn as a subtest per engine implementation.
func forEachEngine(t *testing.T, fn func(t *testing.T, newEngine func(t *testing.T) engine.Engine)) {
	for _, f := range engines() {
		t.Run(f.name, func(t *testing.T) { fn(t, f.new) })
	}
}

func TestContract(t *testing.T) {
	forEachEngine(t, func(t *testing.T, newEngine func(t *testing.T) engine.Engine) {
		enginetest.Run(t, newEngine)
	})
}
