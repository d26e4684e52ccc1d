package gateway

import (
	"testing"

	"kefu/engine"
	"kefu/internal/testredis"
)

// newRedisEngine starts a real redis-server for the test.
func newRedisEngine(t testing.TB) engine.Engine {
	srv := testredis.Start(t)
	return engine.NewRedis(srv.Client(), "kefu:")
}
