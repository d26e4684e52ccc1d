package engine_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"kefu/engine"
	"kefu/internal/testredis"
)

func TestRedisUnavailableWhenServerDown(t *testing.T) {
	s := testredis.Start(t)
	e := engine.NewRedis(s.Client(), "kefu:")
	t.Cleanup(func() { e.Close() })
	ctx := context.Background()
	check(t, e.Set(ctx, "durable", []byte("yes"), 0))
	check(t, e.Enqueue(ctx, "out", engine.Job{ID: "j", Data: []byte("d"), Due: time.Now()}))

	s.Kill()
	calls := map[string]func() error{
		"Ping": func() error { return e.Ping(ctx) },
		"Get":  func() error { _, err := e.Get(ctx, "durable"); return err },
		"Set":  func() error { return e.Set(ctx, "k", []byte("v"), time.Minute) },
		"SetNX": func() error {
			_, err := e.SetNX(ctx, "k", []byte("v"), 0)
			return err
		},
		"Del": func() error { return e.Del(ctx, "a", "{b}c") },
		"CompareAndSwap": func() error {
			_, err := e.CompareAndSwap(ctx, "k", nil, []byte("v"), 0)
			return err
		},
		"IncrBy":  func() error { _, err := e.IncrBy(ctx, "n", 1, time.Minute); return err },
		"TTL":     func() error { _, err := e.TTL(ctx, "durable"); return err },
		"HGetAll": func() error { _, err := e.HGetAll(ctx, "h"); return err },
		"ZAdd":    func() error { return e.ZAdd(ctx, "z", engine.ZItem{Member: "m", Score: 1}) },
		"Enqueue": func() error { return e.Enqueue(ctx, "out", engine.Job{ID: "x", Due: time.Now()}) },
		"Claim": func() error {
			_, err := e.Claim(ctx, "out", time.Now(), time.Minute, 10)
			return err
		},
		"QueueLen": func() error { _, err := e.QueueLen(ctx, "out"); return err },
		"ClaimAndEnqueue": func() error {
			_, _, err := e.ClaimAndEnqueue(ctx, "in:{1}:d", []byte("v"), 0, "in:{1}", engine.Job{ID: "m"})
			return err
		},
		"Append":  func() error { _, err := e.Append(ctx, "log", []byte("r")); return err },
		"ReadLog": func() error { _, err := e.ReadLog(ctx, "log", "", 10); return err },
		"Update": func() error {
			return e.Update(ctx, []string{"u"}, func(tx engine.Tx) error {
				tx.Set("u", []byte("1"), 0)
				return nil
			})
		},
		"Publish":   func() error { return e.Publish(ctx, "ch", []byte("m")) },
		"Subscribe": func() error { _, err := e.Subscribe(ctx, "ch"); return err },
	}
	for name, call := range calls {
		err := call()
		if !errors.Is(err, engine.ErrUnavailable) {
			t.Errorf("%s with Redis down: %v, want ErrUnavailable", name, err)
		}
	}

	// Once Redis is back (AOF reloaded), acknowledged writes are there.
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for e.Ping(ctx) != nil && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	v, err := e.Get(ctx, "durable")
	if err != nil || string(v) != "yes" {
		t.Fatalf("after restart Get = %q, %v", v, err)
	}
	if n, err := e.QueueLen(ctx, "out"); err != nil || n != 1 {
		t.Fatalf("after restart QueueLen = %d, %v", n, err)
	}
}

func TestRedisKeyLayout(t *testing.T) {
	s := standalone(t)
	e := engine.NewRedis(s.Client(), "lay:")
	t.Cleanup(func() { e.Close() })
	raw := s.Client()
	ctx := context.Background()
	check(t, e.Enqueue(ctx, "out", engine.Job{ID: "j", Data: []byte("d"), Due: time.UnixMilli(1234)}))
	check(t, e.Enqueue(ctx, "in:{3}", engine.Job{ID: "j", Data: []byte("d"), Due: time.UnixMilli(1234)}))
	_, err := e.Append(ctx, "events", []byte("x"))
	check(t, err)
	check(t, e.Set(ctx, "in:{3}:d:abc", []byte("v"), 0))

	wantType := map[string]string{
		"{lay:out}:z":      "zset", // untagged queue: whole name becomes the tag
		"{lay:out}:j":      "hash",
		"lay:in:{3}:z":     "zset", // tagged queue keeps its tag
		"lay:in:{3}:j":     "hash",
		"lay:events":       "stream",
		"lay:in:{3}:d:abc": "string",
	}
	for key, typ := range wantType {
		got, err := raw.Type(ctx, key).Result()
		check(t, err)
		if got != typ {
			t.Errorf("TYPE %s = %s, want %s", key, got, typ)
		}
	}
	if sc, err := raw.ZScore(ctx, "{lay:out}:z", "j").Result(); err != nil || sc != 1234 {
		t.Errorf("due score = %v, %v; want unix ms 1234", sc, err)
	}
	if d, err := raw.HGet(ctx, "{lay:out}:j", "d:j").Result(); err != nil || d != "d" {
		t.Errorf("job data field = %q, %v", d, err)
	}
}

func TestRedisPrefixIsolation(t *testing.T) {
	s := standalone(t)
	a := engine.NewRedis(s.Client(), "isoA:")
	b := engine.NewRedis(s.Client(), "isoB:")
	t.Cleanup(func() { a.Close(); b.Close() })
	ctx := context.Background()
	check(t, a.Set(ctx, "k", []byte("a"), 0))
	if _, err := b.Get(ctx, "k"); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("prefix B sees prefix A's key: %v", err)
	}
}
