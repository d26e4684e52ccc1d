package engine_test

import (
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"kefu/engine"
	"kefu/engine/enginetest"
	"kefu/internal/testredis"
)

// One standalone server and one cluster serve the whole test binary (a
// cluster takes ~1 s to form); tests are isolated by a unique key prefix.
var (
	sharedOnce    sync.Once
	sharedServer  *testredis.Server
	sharedErr     error
	clusterOnce   sync.Once
	sharedCluster *testredis.Cluster
	clusterErr    error
	prefixSeq     atomic.Int64
)

func TestMain(m *testing.M) {
	code := m.Run()
	if sharedServer != nil {
		sharedServer.Stop()
	}
	if sharedCluster != nil {
		sharedCluster.Stop()
	}
	os.Exit(code)
}

func standalone(t testing.TB) *testredis.Server {
	t.Helper()
	sharedOnce.Do(func() { sharedServer, sharedErr = testredis.Launch() })
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return sharedServer
}

func cluster(t testing.TB) *testredis.Cluster {
	t.Helper()
	clusterOnce.Do(func() { sharedCluster, clusterErr = testredis.LaunchCluster() })
	if clusterErr != nil {
		t.Fatal(clusterErr)
	}
	return sharedCluster
}

// uniquePrefix keeps tests sharing a server apart. It contains no hash tag,
// so the keys' own tags decide the slot, as in production ("kefu:").
func uniquePrefix() string {
	return "kefu" + strconv.FormatInt(prefixSeq.Add(1), 10) + ":"
}

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

func newStandaloneRedis(t testing.TB) *engine.Redis {
	t.Helper()
	e := engine.NewRedis(standalone(t).Client(), uniquePrefix())
	t.Cleanup(func() { e.Close() })
	return e
}

func newClusterRedis(t testing.TB) *engine.Redis {
	t.Helper()
	e := engine.NewRedis(cluster(t).Client(), uniquePrefix())
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
		// Every log record moves to a cold segment almost at once and the
		// WAL compacts every few KiB: the same contract must hold whatever
		// is on disk at the moment of a read.
		{"embedded-cold", func(t *testing.T) engine.Engine {
			return newEmbedded(t, engine.EmbeddedOptions{LogMemoryBytes: 16, CompactBytes: 4 << 10})
		}},
		{"redis", func(t *testing.T) engine.Engine { return newStandaloneRedis(t) }},
		{"redis-cluster", func(t *testing.T) engine.Engine { return newClusterRedis(t) }},
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
