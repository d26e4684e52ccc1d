package testredis

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

func TestStandaloneKillRestart(t *testing.T) {
	s := Start(t)
	c := s.Client()
	ctx := context.Background()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	s.Kill()
	if err := c.Ping(ctx).Err(); err == nil {
		t.Fatal("PING succeeded on a killed server")
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	// appendonly yes: the acknowledged write survived the SIGKILL.
	if v, err := c.Get(ctx, "k").Result(); err != nil || v != "v" {
		t.Fatalf("after restart Get = %q, %v", v, err)
	}
}

func TestCluster(t *testing.T) {
	c := StartCluster(t)
	if len(c.Addrs) != 3 {
		t.Fatalf("cluster has %d nodes", len(c.Addrs))
	}
	cc := c.Client()
	ctx := context.Background()
	for i := 0; i < 30; i++ {
		k := fmt.Sprintf("key-%d", i)
		if err := cc.Set(ctx, k, i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	// Keys spread over several masters.
	used := 0
	for _, s := range c.Servers {
		n, err := s.Client().DBSize(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			used++
		}
	}
	if used < 2 {
		t.Fatalf("keys landed on %d masters, want a real cluster", used)
	}
}

// Two test processes can pick the same port at once. The one whose
// redis-server loses the bind must not take the winner's server for its
// own: start refuses an answer from another process's server.
func TestStartRefusesAnotherServersAnswer(t *testing.T) {
	first := Start(t)
	clash := &Server{Addr: first.Addr, dir: t.TempDir(), port: first.port}
	err := clash.start()
	if err == nil {
		clash.Stop()
		t.Fatal("start succeeded on a port another redis-server holds")
	}
	if !strings.Contains(err.Error(), "another redis-server") && !strings.Contains(err.Error(), "exited") {
		t.Fatalf("start on a taken port: %v", err)
	}
	t.Log(err)
	if err := first.Client().Ping(context.Background()).Err(); err != nil {
		t.Fatalf("the first server is hurt: %v", err)
	}
}
