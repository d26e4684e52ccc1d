package app

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"kefu/engine"
	"kefu/internal/testredis"
)

// With redis.sentinel_master the engine finds the master through Redis
// Sentinel and follows a failover: after the master dies, writes go to the
// promoted replica, and what was written before is still there.
func TestOpenEngine_FollowsSentinelFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("failover takes a few seconds")
	}
	master := testredis.Start(t)
	replica := testredis.StartReplica(t, master)
	sentinel := testredis.StartSentinel(t, master, "kefu-test")
	cfg := Config{Redis: RedisConfig{Addr: sentinel.Addr, SentinelMaster: "kefu-test", Prefix: "t:"}}
	eng, err := OpenEngine(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	ctx := context.Background()
	if err := eng.Set(ctx, "before", []byte("failover"), 0); err != nil {
		t.Fatal(err)
	}
	// Make sure the replica has it before the master goes away.
	if n, err := master.Client().Wait(ctx, 1, 5000).Result(); err != nil || n != 1 {
		t.Fatalf("WAIT: %d replicas, %v", n, err)
	}
	master.Kill()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := eng.Set(ctx, "after", []byte("promoted"), 0)
		if err == nil {
			break
		}
		if !errors.Is(err, engine.ErrUnavailable) {
			t.Fatalf("write during failover: %v (want ErrUnavailable until the replica is promoted)", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no write accepted 30 s after the master died: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for k, want := range map[string]string{"before": "failover", "after": "promoted"} {
		if v, err := eng.Get(ctx, k); err != nil || string(v) != want {
			t.Fatalf("Get(%s) = %q, %v", k, v, err)
		}
	}
	if role, err := replica.Client().Do(ctx, "ROLE").Slice(); err != nil || role[0] != "master" {
		t.Fatalf("replica role after failover: %v, %v", role, err)
	}
}
