// Package enginetest is the contract test suite every engine.Engine
// implementation must pass. Engines differ in storage, not in behaviour:
// domain packages are tested against the embedded engine and run in
// production on Redis, so every semantic they rely on is pinned here.
package enginetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"kefu/engine"
)

// Run runs the whole suite. newEngine must return a fresh engine whose
// keyspace is empty (for Redis: a unique prefix is enough) and arrange for
// it to be closed when t ends; tests may also close it themselves, so Close
// must be idempotent.
func Run(t *testing.T, newEngine func(t *testing.T) engine.Engine) {
	tests := []struct {
		name string
		fn   func(t *testing.T, e engine.Engine)
	}{
		{"NameAndPing", testNameAndPing},
		{"GetSetDel", testGetSetDel},
		{"SetMany", testSetMany},
		{"StrAppend", testStrAppend},
		{"StrAppendConcurrent", testStrAppendConcurrent},
		{"ValuesAreCopied", testValuesAreCopied},
		{"LargeAndBinaryValues", testLargeValues},
		{"TTL", testTTL},
		{"Expiry", testExpiry},
		{"SetNX", testSetNX},
		{"SetNXRace", testSetNXRace},
		{"CompareAndSwap", testCompareAndSwap},
		{"CompareAndSwapRace", testCompareAndSwapRace},
		{"CompareAndDelete", testCompareAndDelete},
		{"IncrBy", testIncrBy},
		{"IncrByConcurrent", testIncrByConcurrent},
		{"Hashes", testHashes},
		{"HIncrByConcurrent", testHIncrByConcurrent},
		{"WrongType", testWrongType},
		{"SortedSets", testSortedSets},
		{"QueueBasics", testQueueBasics},
		{"QueueLeaseExpiry", testQueueLeaseExpiry},
		{"QueueReplaceByID", testQueueReplaceByID},
		{"QueueAckClaimed", testQueueAckClaimed},
		{"QueueIsolation", testQueueIsolation},
		{"QueueConcurrentClaim", testQueueConcurrentClaim},
		{"ClaimAndEnqueue", testClaimAndEnqueue},
		{"ClaimAndEnqueueCrossSlot", testClaimAndEnqueueCrossSlot},
		{"ClaimAndEnqueueConcurrent", testClaimAndEnqueueConcurrent},
		{"Logs", testLogs},
		{"LogTrim", testLogTrim},
		{"LogConcurrentAppend", testLogConcurrentAppend},
		{"LogAppendMany", testLogAppendMany},
		{"Update", testUpdate},
		{"UpdateMisuse", testUpdateMisuse},
		{"UpdateRetriesOnConflict", testUpdateRetriesOnConflict},
		{"UpdateConcurrent", testUpdateConcurrent},
		{"PubSub", testPubSub},
		{"ContextCanceled", testContextCanceled},
		{"Closed", testClosed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newEngine(t))
		})
	}
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
}

func wantNotFound(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("%s: got error %v, want ErrNotFound", what, err)
	}
}

func wantValue(t *testing.T, e engine.Engine, key, want string) {
	t.Helper()
	got, err := e.Get(ctxFor(t), key)
	if err != nil {
		t.Fatalf("Get(%q): %v (want %q)", key, err, want)
	}
	if string(got) != want {
		t.Fatalf("Get(%q) = %q, want %q", key, got, want)
	}
}

func wantAbsent(t *testing.T, e engine.Engine, key string) {
	t.Helper()
	_, err := e.Get(ctxFor(t), key)
	wantNotFound(t, "Get("+key+")", err)
}

func wantTTL(t *testing.T, e engine.Engine, key string, lo, hi time.Duration) {
	t.Helper()
	d, err := e.TTL(ctxFor(t), key)
	must(t, err)
	if d < lo || d > hi {
		t.Fatalf("TTL(%q) = %v, want within [%v, %v]", key, d, lo, hi)
	}
}

// parallel runs fn(i) for i in [0,n) concurrently and fails on any error.
func parallel(t *testing.T, n int, fn func(i int) error) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start // maximize overlap
			if err := fn(i); err != nil {
				errs <- fmt.Errorf("worker %d: %w", i, err)
			}
		}(i)
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func testNameAndPing(t *testing.T, e engine.Engine) {
	if n := e.Name(); n != "embedded" && n != "redis" {
		t.Fatalf("Name() = %q, want embedded or redis", n)
	}
	must(t, e.Ping(ctxFor(t)))
}

func testGetSetDel(t *testing.T, e engine.Engine) {
	ctx := ctxFor(t)
	wantAbsent(t, e, "k:absent")

	bin := []byte{0, 0xff, 'x', '\n', 0}
	must(t, e.Set(ctx, "k:a", bin, 0))
	got, err := e.Get(ctx, "k:a")
	must(t, err)
	if !bytes.Equal(got, bin) {
		t.Fatalf("Get = %v, want %v", got, bin)
	}
	must(t, e.Set(ctx, "k:a", []byte("second"), 0))
	wantValue(t, e, "k:a", "second")

	must(t, e.Set(ctx, "k:empty", []byte{}, 0))
	got, err = e.Get(ctx, "k:empty")
	must(t, err)
	if len(got) != 0 {
		t.Fatalf("empty value came back as %q", got)
	}

	must(t, e.Set(ctx, "{other}:x", []byte("1"), 0))
	must(t, e.Set(ctx, "k:keep", []byte("kept"), 0))
	// Keys in different hash slots, plus keys that never existed.
	must(t, e.Del(ctx, "k:a", "k:empty", "k:never", "{other}:x"))
	wantAbsent(t, e, "k:a")
	wantAbsent(t, e, "k:empty")
	wantAbsent(t, e, "{other}:x")
	wantValue(t, e, "k:keep", "kept")
	must(t, e.Del(ctx))
	must(t, e.Del(ctx, "k:never"))
}

func testSetMany(t *testing.T, e engine.Engine) {
	ctx := ctxFor(t)
	must(t, e.SetMany(ctx))
	must(t, e.Set(ctx, "sm:gone", []byte("x"), 0))
	must(t, e.HSet(ctx, "sm:hash", map[string][]byte{"f": []byte("v")}))
	buf := []byte("a")
	must(t, e.SetMany(ctx,
		engine.Write{Key: "sm:a", Val: buf},
		engine.Write{Key: "{x}sm:b", Val: []byte("b"), TTL: time.Hour}, // another slot
		engine.Write{Key: "sm:gone", Del: true},
		engine.Write{Key: "sm:absent", Del: true},
		engine.Write{Key: "sm:hash", Val: []byte("now a string")},
		engine.Write{Key: "sm:twice", Val: []byte("1")},
		engine.Write{Key: "sm:twice", Val: []byte("2")},
	))
	buf[0] = 'z' // values are copied in
	wantValue(t, e, "sm:a", "a")
	wantValue(t, e, "{x}sm:b", "b")
	wantTTL(t, e, "{x}sm:b", 59*time.Minute, time.Hour)
	wantAbsent(t, e, "sm:gone")
	wantAbsent(t, e, "sm:absent")
	wantValue(t, e, "sm:hash", "now a string")
	wantValue(t, e, "sm:twice", "2")
	if ttl, err := e.TTL(ctx, "sm:a"); err != nil || ttl != 0 {
		t.Fatalf("TTL(sm:a) = %v, %v", ttl, err)
	}
}

func testStrAppend(t *testing.T, e engine.Engine) {
	ctx := ctxFor(t)
	n, err := e.StrAppend(ctx, "sa", []byte("ab"), 0)
	if err != nil || n != 2 {
		t.Fatalf("StrAppend(absent) = %d, %v", n, err)
	}
	buf := []byte("cd")
	if n, err = e.StrAppend(ctx, "sa", buf, time.Hour); err != nil || n != 4 {
		t.Fatalf("StrAppend = %d, %v", n, err)
	}
	buf[0] = 'z' // copied in
	wantValue(t, e, "sa", "abcd")
	wantTTL(t, e, "sa", 59*time.Minute, time.Hour)
	if _, err = e.StrAppend(ctx, "sa", []byte("e"), 0); err != nil {
		t.Fatal(err)
	}
	wantValue(t, e, "sa", "abcde")
	if ttl, err := e.TTL(ctx, "sa"); err != nil || ttl != 0 {
		t.Fatalf("TTL after StrAppend with ttl 0 = %v, %v; want none", ttl, err)
	}
	// An expired value is absent, not a prefix.
	must(t, e.Set(ctx, "sa:exp", []byte("old"), 50*time.Millisecond))
	time.Sleep(80 * time.Millisecond)
	if n, err = e.StrAppend(ctx, "sa:exp", []byte("new"), 0); err != nil || n != 3 {
		t.Fatalf("StrAppend(expired) = %d, %v", n, err)
	}
	wantValue(t, e, "sa:exp", "new")
	must(t, e.HSet(ctx, "sa:hash", map[string][]byte{"f": []byte("v")}))
	if _, err := e.StrAppend(ctx, "sa:hash", []byte("x"), 0); !errors.Is(err, engine.ErrWrongType) {
		t.Fatalf("StrAppend(hash) = %v, want ErrWrongType", err)
	}
}

func testStrAppendConcurrent(t *testing.T, e engine.Engine) {
	ctx := ctxFor(t)
	parallel(t, 10, func(i int) error {
		for j := 0; j < 20; j++ {
			if _, err := e.StrAppend(ctx, "sac", []byte(fmt.Sprintf("%d.%d;", i, j)), time.Hour); err != nil {
				return err
			}
		}
		return nil
	})
	v, err := e.Get(ctx, "sac")
	must(t, err)
	next := make([]int, 10)
	parts := strings.Split(strings.TrimSuffix(string(v), ";"), ";")
	for _, p := range parts {
		var i, j int
		if _, err := fmt.Sscanf(p, "%d.%d", &i, &j); err != nil || j != next[i] {
			t.Fatalf("part %q out of order or garbled in %q", p, v)
		}
		next[i]++
	}
	if len(parts) != 200 {
		t.Fatalf("%d appends landed, want 200", len(parts))
	}
}

func testValuesAreCopied(t *testing.T, e engine.Engine) {
	ctx := ctxFor(t)
	v := []byte("abc")
	must(t, e.Set(ctx, "copy", v, 0))
	v[0] = 'X' // caller reuses its buffer
	got, err := e.Get(ctx, "copy")
	must(t, err)
	if string(got) != "abc" {
		t.Fatalf("stored value changed with caller's buffer: %q", got)
	}
	got[1] = 'Y' // caller scribbles on the result
	wantValue(t, e, "copy", "abc")

	must(t, e.HSet(ctx, "copyh", map[string][]byte{"f": v}))
	v[0] = 'Z'
	h, err := e.HGet(ctx, "copyh", "f")
	must(t, err)
	if string(h) != "Xbc" {
		t.Fatalf("HGet = %q, want Xbc", h)
	}
}

func testLargeValues(t *testing.T, e engine.Engine) {
	ctx := ctxFor(t)
	big := make([]byte, 1<<20)
	for i := range big {
		big[i] = byte(i * 7)
	}
	key := "大 key with spaces\x00and nul"
	must(t, e.Set(ctx, key, big, 0))
	got, err := e.Get(ctx, key)
	must(t, err)
	if !bytes.Equal(got, big) {
		t.Fatal("1 MiB binary value did not round-trip")
	}
}

func testTTL(t *testing.T, e engine.Engine) {
	ctx := ctxFor(t)
	_, err := e.TTL(ctx, "t:absent")
	wantNotFound(t, "TTL(absent)", err)

	must(t, e.Set(ctx, "t:none", []byte("v"), 0))
	wantTTL(t, e, "t:none", 0, 0)

	must(t, e.Set(ctx, "t:ten", []byte("v"), 10*time.Second))
	wantTTL(t, e, "t:ten", 9*time.Second, 10*time.Second)

	// Set without TTL clears an existing one (Redis SET semantics).
	must(t, e.Set(ctx, "t:ten", []byte("v2"), 0))
	wantTTL(t, e, "t:ten", 0, 0)

	// A hash has no TTL but exists.
	must(t, e.HSet(ctx, "t:hash", map[string][]byte{"f": []byte("1")}))
	wantTTL(t, e, "t:hash", 0, 0)
}

func testExpiry(t *testing.T, e engine.Engine) {
	ctx := ctxFor(t)
	must(t, e.Set(ctx, "x:short", []byte("v"), 100*time.Millisecond))
	must(t, e.Set(ctx, "x:counter", []byte("41"), 100*time.Millisecond))
	wantValue(t, e, "x:short", "v")
	time.Sleep(250 * time.Millisecond)

	wantAbsent(t, e, "x:short")
	_, err := e.TTL(ctx, "x:short")
	wantNotFound(t, "TTL(expired)", err)

	ok, err := e.SetNX(ctx, "x:short", []byte("again"), 0)
	must(t, err)
	if !ok {
		t.Fatal("SetNX on an expired key must succeed")
	}
	wantValue(t, e, "x:short", "again")

	// An expired counter restarts from zero and loses its old TTL.
	n, err := e.IncrBy(ctx, "x:counter", 1, 0)
	must(t, err)
	if n != 1 {
		t.Fatalf("IncrBy on expired key = %d, want 1", n)
	}
	wantTTL(t, e, "x:counter", 0, 0)
}

func testSetNX(t *testing.T, e engine.Engine) {
	ctx := ctxFor(t)
	ok, err := e.SetNX(ctx, "nx", []byte("first"), 10*time.Second)
	must(t, err)
	if !ok {
		t.Fatal("SetNX on absent key returned false")
	}
	wantTTL(t, e, "nx", 9*time.Second, 10*time.Second)
	ok, err = e.SetNX(ctx, "nx", []byte("second"), 0)
	must(t, err)
	if ok {
		t.Fatal("SetNX on existing key returned true")
	}
	wantValue(t, e, "nx", "first")
	wantTTL(t, e, "nx", 9*time.Second, 10*time.Second)
}

func testSetNXRace(t *testing.T, e engine.Engine) {
	ctx := ctxFor(t)
	const n = 50
	var winners atomic.Int32
	var winner atomic.Value
	parallel(t, n, func(i int) error {
		val := "w" + strconv.Itoa(i)
		ok, err := e.SetNX(ctx, "race", []byte(val), 0)
		if ok {
			winners.Add(1)
			winner.Store(val)
		}
		return err
	})
	if w := winners.Load(); w != 1 {
		t.Fatalf("%d SetNX winners, want exactly 1", w)
	}
	wantValue(t, e, "race", winner.Load().(string))
}

func testCompareAndSwap(t *testing.T, e engine.Engine) {
	ctx := ctxFor(t)
	cas := func(old, val []byte, ttl time.Duration) bool {
		t.Helper()
		ok, err := e.CompareAndSwap(ctx, "cas", old, val, ttl)
		must(t, err)
		return ok
	}
	if cas([]byte("x"), []byte("y"), 0) {
		t.Fatal("CAS with non-nil old on absent key succeeded")
	}
	wantAbsent(t, e, "cas")
	if !cas(nil, []byte("v1"), 10*time.Second) {
		t.Fatal("CAS(nil) on absent key failed")
	}
	wantValue(t, e, "cas", "v1")
	wantTTL(t, e, "cas", 9*time.Second, 10*time.Second)
	if cas(nil, []byte("v2"), 0) {
		t.Fatal("CAS(nil) on present key succeeded")
	}
	if cas([]byte("wrong"), []byte("v2"), 0) {
		t.Fatal("CAS with mismatched old succeeded")
	}
	if cas([]byte{}, []byte("v2"), 0) {
		t.Fatal("CAS with empty old matched a non-empty value")
	}
	wantValue(t, e, "cas", "v1")
	if !cas([]byte("v1"), []byte("v2"), 0) {
		t.Fatal("CAS with matching old failed")
	}
	wantValue(t, e, "cas", "v2")
	wantTTL(t, e, "cas", 0, 0) // ttl 0 replaced the old TTL

	// Empty value vs absent: old = []byte{} matches "" but nil does not.
	must(t, e.Set(ctx, "cas:empty", []byte{}, 0))
	ok, err := e.CompareAndSwap(ctx, "cas:empty", nil, []byte("x"), 0)
	must(t, err)
	if ok {
		t.Fatal("CAS(nil) matched an existing empty value")
	}
	ok, err = e.CompareAndSwap(ctx, "cas:empty", []byte{}, []byte("x"), 0)
	must(t, err)
	if !ok {
		t.Fatal("CAS([]byte{}) did not match an empty value")
	}
	wantValue(t, e, "cas:empty", "x")
}

func testCompareAndSwapRace(t *testing.T, e engine.Engine) {
	ctx := ctxFor(t)
	must(t, e.Set(ctx, "casctr", []byte("0"), 0))
	const workers, each = 10, 10
	parallel(t, workers, func(int) error {
		for done := 0; done < each; {
			cur, err := e.Get(ctx, "casctr")
			if err != nil {
				return err
			}
			n, _ := strconv.Atoi(string(cur))
			ok, err := e.CompareAndSwap(ctx, "casctr", cur, []byte(strconv.Itoa(n+1)), 0)
			if err != nil {
				return err
			}
			if ok {
				done++
			}
		}
		return nil
	})
	wantValue(t, e, "casctr", strconv.Itoa(workers*each))
}

func testCompareAndDelete(t *testing.T, e engine.Engine) {
	ctx := ctxFor(t)
	ok, err := e.CompareAndDelete(ctx, "cad", []byte("v"))
	must(t, err)
	if ok {
		t.Fatal("CompareAndDelete on absent key returned true")
	}
	must(t, e.Set(ctx, "cad", []byte("v"), 0))
	ok, err = e.CompareAndDelete(ctx, "cad", []byte("other"))
	must(t, err)
	if ok {
		t.Fatal("CompareAndDelete with mismatched value returned true")
	}
	wantValue(t, e, "cad", "v")
	ok, err = e.CompareAndDelete(ctx, "cad", []byte("v"))
	must(t, err)
	if !ok {
		t.Fatal("CompareAndDelete with matching value returned false")
	}
	wantAbsent(t, e, "cad")
}

func testIncrBy(t *testing.T, e engine.Engine) {
	ctx := ctxFor(t)
	incr := func(key string, d int64, ttl time.Duration) int64 {
		t.Helper()
		n, err := e.IncrBy(ctx, key, d, ttl)
		must(t, err)
		return n
	}
	if n := incr("c", 5, 0); n != 5 {
		t.Fatalf("IncrBy(absent, 5) = %d", n)
	}
	if n := incr("c", -7, 0); n != -2 {
		t.Fatalf("IncrBy(5, -7) = %d", n)
	}
	wantValue(t, e, "c", "-2") // stored as decimal text, like Redis
	wantTTL(t, e, "c", 0, 0)

	// TTL only applies when the key is created.
	incr("c:ttl", 1, 10*time.Second)
	incr("c:ttl", 1, time.Hour)
	wantTTL(t, e, "c:ttl", 9*time.Second, 10*time.Second)
	wantValue(t, e, "c:ttl", "2")

	// An existing plain value keeps its TTL when incremented.
	must(t, e.Set(ctx, "c:set", []byte("10"), 20*time.Second))
	if n := incr("c:set", 5, 0); n != 15 {
		t.Fatalf("IncrBy on \"10\" = %d", n)
	}
	wantTTL(t, e, "c:set", 19*time.Second, 20*time.Second)

	must(t, e.Set(ctx, "c:text", []byte("abc"), 0))
	if _, err := e.IncrBy(ctx, "c:text", 1, 0); !errors.Is(err, engine.ErrWrongType) {
		t.Fatalf("IncrBy on non-integer: %v, want ErrWrongType", err)
	}
	wantValue(t, e, "c:text", "abc")

	must(t, e.Set(ctx, "c:max", []byte(strconv.FormatInt(math.MaxInt64, 10)), 0))
	if _, err := e.IncrBy(ctx, "c:max", 1, 0); err == nil {
		t.Fatal("IncrBy overflow did not fail")
	}
}

func testIncrByConcurrent(t *testing.T, e engine.Engine) {
	ctx := ctxFor(t)
	const workers, each = 20, 25
	parallel(t, workers, func(int) error {
		for j := 0; j < each; j++ {
			if _, err := e.IncrBy(ctx, "ci", 1, 0); err != nil {
				return err
			}
		}
		return nil
	})
	wantValue(t, e, "ci", strconv.Itoa(workers*each))
}

func testHashes(t *testing.T, e engine.Engine) {
	ctx := ctxFor(t)
	_, err := e.HGet(ctx, "h", "a")
	wantNotFound(t, "HGet(absent key)", err)
	_, err = e.HGetAll(ctx, "h")
	wantNotFound(t, "HGetAll(absent key)", err)
	must(t, e.HDel(ctx, "h", "a"))
	must(t, e.HSet(ctx, "h", nil))

	must(t, e.HSet(ctx, "h", map[string][]byte{"a": []byte("1"), "b": []byte("2")}))
	v, err := e.HGet(ctx, "h", "a")
	must(t, err)
	if string(v) != "1" {
		t.Fatalf("HGet(a) = %q", v)
	}
	_, err = e.HGet(ctx, "h", "missing")
	wantNotFound(t, "HGet(absent field)", err)

	must(t, e.HSet(ctx, "h", map[string][]byte{"b": []byte("3"), "c": {}}))
	wantHash(t, e, "h", map[string]string{"a": "1", "b": "3", "c": ""})

	must(t, e.HDel(ctx, "h", "b", "nope"))
	wantHash(t, e, "h", map[string]string{"a": "1", "c": ""})

	n, err := e.HIncrBy(ctx, "h", "n", 5)
	must(t, err)
	if n != 5 {
		t.Fatalf("HIncrBy(new field) = %d", n)
	}
	n, err = e.HIncrBy(ctx, "h", "n", -2)
	must(t, err)
	if n != 3 {
		t.Fatalf("HIncrBy = %d, want 3", n)
	}
	wantHash(t, e, "h", map[string]string{"a": "1", "c": "", "n": "3"})
	if _, err := e.HIncrBy(ctx, "h", "a", 1); err != nil {
		t.Fatalf("HIncrBy on numeric text field: %v", err)
	}
	if _, err := e.HIncrBy(ctx, "h", "c", 1); !errors.Is(err, engine.ErrWrongType) {
		t.Fatalf("HIncrBy on non-integer field: %v, want ErrWrongType", err)
	}

	// HIncrBy creates the hash.
	n, err = e.HIncrBy(ctx, "h2", "x", 7)
	must(t, err)
	if n != 7 {
		t.Fatalf("HIncrBy(absent key) = %d", n)
	}

	// Removing the last field removes the key.
	must(t, e.HDel(ctx, "h", "a", "c", "n"))
	_, err = e.HGetAll(ctx, "h")
	wantNotFound(t, "HGetAll after deleting every field", err)
	_, err = e.TTL(ctx, "h")
	wantNotFound(t, "TTL after deleting every field", err)

	must(t, e.Del(ctx, "h2"))
	_, err = e.HGet(ctx, "h2", "x")
	wantNotFound(t, "HGet after Del", err)
}

func wantHash(t *testing.T, e engine.Engine, key string, want map[string]string) {
	t.Helper()
	got, err := e.HGetAll(ctxFor(t), key)
	must(t, err)
	if len(got) != len(want) {
		t.Fatalf("HGetAll(%q) has %d fields %q, want %v", key, len(got), got, want)
	}
	for k, v := range want {
		g, ok := got[k]
		if !ok || string(g) != v {
			t.Fatalf("HGetAll(%q)[%q] = %q (present %v), want %q", key, k, g, ok, v)
		}
	}
}

func testHIncrByConcurrent(t *testing.T, e engine.Engine) {
	ctx := ctxFor(t)
	const workers, each = 20, 10
	parallel(t, workers, func(i int) error {
		for j := 0; j < each; j++ {
			if _, err := e.HIncrBy(ctx, "hc", "total", 1); err != nil {
				return err
			}
			if _, err := e.HIncrBy(ctx, "hc", "w"+strconv.Itoa(i), 1); err != nil {
				return err
			}
		}
		return nil
	})
	all, err := e.HGetAll(ctx, "hc")
	must(t, err)
	if string(all["total"]) != strconv.Itoa(workers*each) || len(all) != workers+1 {
		t.Fatalf("after concurrent HIncrBy: total=%q fields=%d", all["total"], len(all))
	}
}

func testWrongType(t *testing.T, e engine.Engine) {
	ctx := ctxFor(t)
	must(t, e.Set(ctx, "wt:str", []byte("v"), 0))
	must(t, e.HSet(ctx, "wt:hash", map[string][]byte{"f": []byte("v")}))
	if _, err := e.HGet(ctx, "wt:str", "f"); !errors.Is(err, engine.ErrWrongType) {
		t.Fatalf("HGet on a string: %v, want ErrWrongType", err)
	}
	if _, err := e.Get(ctx, "wt:hash"); !errors.Is(err, engine.ErrWrongType) {
		t.Fatalf("Get on a hash: %v, want ErrWrongType", err)
	}
	if err := e.ZAdd(ctx, "wt:str", engine.ZItem{Member: "m", Score: 1}); !errors.Is(err, engine.ErrWrongType) {
		t.Fatalf("ZAdd on a string: %v, want ErrWrongType", err)
	}
	if errors.Is(func() error { _, err := e.Get(ctx, "wt:hash"); return err }(), engine.ErrUnavailable) {
		t.Fatal("a type error must not look like an outage")
	}
	// Set replaces a value of any type.
	must(t, e.Set(ctx, "wt:hash", []byte("now a string"), 0))
	wantValue(t, e, "wt:hash", "now a string")
}

func testSortedSets(t *testing.T, e engine.Engine) {
	ctx := ctxFor(t)
	n, err := e.ZCard(ctx, "z")
	must(t, err)
	if n != 0 {
		t.Fatalf("ZCard(absent) = %d", n)
	}
	items, err := e.ZRangeByScore(ctx, "z", math.Inf(-1), math.Inf(1), 0)
	must(t, err)
	if len(items) != 0 {
		t.Fatalf("ZRangeByScore(absent) = %v", items)
	}
	_, err = e.ZScore(ctx, "z", "a")
	wantNotFound(t, "ZScore(absent key)", err)

	ts := float64(time.Date(2030, 1, 2, 3, 4, 5, 6e6, time.UTC).UnixMilli())
	must(t, e.ZAdd(ctx, "z",
		engine.ZItem{Member: "a", Score: 1},
		engine.ZItem{Member: "b", Score: 2},
		engine.ZItem{Member: "d", Score: 3},
		engine.ZItem{Member: "c", Score: 3},
		engine.ZItem{Member: "e", Score: -1.5},
		engine.ZItem{Member: "ts", Score: ts},
	))
	must(t, e.ZAdd(ctx, "z", engine.ZItem{Member: "a", Score: 10})) // update
	must(t, e.ZAdd(ctx, "z"))

	sc, err := e.ZScore(ctx, "z", "a")
	must(t, err)
	if sc != 10 {
		t.Fatalf("ZScore(a) = %v after update", sc)
	}
	sc, err = e.ZScore(ctx, "z", "ts")
	must(t, err)
	if sc != ts {
		t.Fatalf("ZScore(ts) = %v, want exactly %v", sc, ts)
	}
	_, err = e.ZScore(ctx, "z", "nope")
	wantNotFound(t, "ZScore(absent member)", err)

	wantZ := func(min, max float64, limit int, want ...string) {
		t.Helper()
		got, err := e.ZRangeByScore(ctx, "z", min, max, limit)
		must(t, err)
		var names []string
		for _, it := range got {
			names = append(names, it.Member)
		}
		if fmt.Sprint(names) != fmt.Sprint(want) {
			t.Fatalf("ZRangeByScore(%v, %v, %d) = %v, want %v", min, max, limit, names, want)
		}
	}
	// Ties order by member, like Redis.
	wantZ(math.Inf(-1), math.Inf(1), 0, "e", "b", "c", "d", "a", "ts")
	wantZ(2, 3, 0, "b", "c", "d") // inclusive bounds
	wantZ(2, 3, 2, "b", "c")
	wantZ(3.5, 9.99, 0)
	wantZ(5, 1, 0) // min > max
	got, err := e.ZRangeByScore(ctx, "z", -2, -1, 0)
	must(t, err)
	if len(got) != 1 || got[0] != (engine.ZItem{Member: "e", Score: -1.5}) {
		t.Fatalf("ZRangeByScore scores: %v", got)
	}

	removed, err := e.ZRem(ctx, "z", "b", "nope", "b")
	must(t, err)
	if removed != 1 {
		t.Fatalf("ZRem = %d, want 1", removed)
	}
	if n, _ := e.ZCard(ctx, "z"); n != 5 {
		t.Fatalf("ZCard = %d, want 5", n)
	}
	removed, err = e.ZRem(ctx, "z", "a", "c", "d", "e", "ts")
	must(t, err)
	if removed != 5 {
		t.Fatalf("ZRem = %d, want 5", removed)
	}
	if n, _ := e.ZCard(ctx, "z"); n != 0 {
		t.Fatalf("ZCard after removing all = %d", n)
	}
	if removed, _ := e.ZRem(ctx, "z:absent", "x"); removed != 0 {
		t.Fatalf("ZRem on absent key = %d", removed)
	}
	if err := e.ZAdd(ctx, "z", engine.ZItem{Member: "nan", Score: math.NaN()}); err == nil {
		t.Fatal("ZAdd with NaN score succeeded")
	}
}

// ms truncates to the engines' Due precision.
func ms(t time.Time) time.Time { return t.Truncate(time.Millisecond) }

func wantJobs(t *testing.T, got []engine.Job, want ...engine.Job) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d jobs %+v, want %d %+v", len(got), got, len(want), want)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.ID != w.ID || !bytes.Equal(g.Data, w.Data) || !g.Due.Equal(w.Due) || g.Attempts != w.Attempts {
			t.Fatalf("job %d = {%s %q %v %d}, want {%s %q %v %d}", i,
				g.ID, g.Data, g.Due, g.Attempts, w.ID, w.Data, w.Due, w.Attempts)
		}
	}
}

func testQueueBasics(t *testing.T, e engine.Engine) {
	ctx := ctxFor(t)
	q := "q:{basic}"
	if n, err := e.QueueLen(ctx, q); err != nil || n != 0 {
		t.Fatalf("QueueLen(empty) = %d, %v", n, err)
	}
	if o, err := e.QueueOldest(ctx, q); err != nil || !o.IsZero() {
		t.Fatalf("QueueOldest(empty) = %v, %v", o, err)
	}
	now := ms(time.Now())
	jobs, err := e.Claim(ctx, q, now, time.Minute, 10)
	must(t, err)
	if len(jobs) != 0 {
		t.Fatalf("Claim(empty) = %v", jobs)
	}
	if err := e.Enqueue(ctx, q, engine.Job{ID: "", Data: []byte("x"), Due: now}); err == nil {
		t.Fatal("Enqueue without ID succeeded")
	}

	must(t, e.Enqueue(ctx, q, engine.Job{ID: "j3", Data: []byte("three"), Due: now.Add(time.Hour)}))
	must(t, e.Enqueue(ctx, q, engine.Job{ID: "j2", Data: []byte("two"), Due: now.Add(-time.Second)}))
	must(t, e.Enqueue(ctx, q, engine.Job{ID: "j1", Data: []byte{0, 1, 2}, Due: now.Add(-2 * time.Second)}))
	if n, _ := e.QueueLen(ctx, q); n != 3 {
		t.Fatalf("QueueLen = %d, want 3", n)
	}
	if o, _ := e.QueueOldest(ctx, q); !o.Equal(now.Add(-2 * time.Second)) {
		t.Fatalf("QueueOldest = %v, want %v", o, now.Add(-2*time.Second))
	}

	lease := 30 * time.Second
	jobs, err = e.Claim(ctx, q, now, lease, 10)
	must(t, err)
	wantJobs(t, jobs,
		engine.Job{ID: "j1", Data: []byte{0, 1, 2}, Due: now.Add(lease), Attempts: 1},
		engine.Job{ID: "j2", Data: []byte("two"), Due: now.Add(lease), Attempts: 1})

	// Leased jobs are invisible until the lease ends, but still counted.
	jobs, err = e.Claim(ctx, q, now, lease, 10)
	must(t, err)
	wantJobs(t, jobs)
	if n, _ := e.QueueLen(ctx, q); n != 3 {
		t.Fatalf("QueueLen after claim = %d, want 3", n)
	}
	if o, _ := e.QueueOldest(ctx, q); !o.Equal(now.Add(lease)) {
		t.Fatalf("QueueOldest after claim = %v, want lease end %v", o, now.Add(lease))
	}

	must(t, e.Ack(ctx, q, "j1"))
	must(t, e.Ack(ctx, q, "j1"))            // absent job
	must(t, e.Ack(ctx, "q:{nothing}", "x")) // absent queue
	if n, _ := e.QueueLen(ctx, q); n != 2 {
		t.Fatalf("QueueLen after ack = %d, want 2", n)
	}

	// max bounds the batch; earliest Due first.
	later := now.Add(2 * time.Hour)
	jobs, err = e.Claim(ctx, q, later, time.Minute, 1)
	must(t, err)
	wantJobs(t, jobs, engine.Job{ID: "j2", Data: []byte("two"), Due: later.Add(time.Minute), Attempts: 2})
	jobs, err = e.Claim(ctx, q, later, time.Minute, 1)
	must(t, err)
	wantJobs(t, jobs, engine.Job{ID: "j3", Data: []byte("three"), Due: later.Add(time.Minute), Attempts: 1})
	jobs, err = e.Claim(ctx, q, later.Add(time.Hour), time.Minute, 0)
	must(t, err)
	wantJobs(t, jobs)
}

func testQueueLeaseExpiry(t *testing.T, e engine.Engine) {
	ctx := ctxFor(t)
	q := "q:{lease}"
	now := ms(time.Now())
	must(t, e.Enqueue(ctx, q, engine.Job{ID: "job", Data: []byte("d"), Due: now}))
	jobs, err := e.Claim(ctx, q, now, time.Minute, 5)
	must(t, err)
	wantJobs(t, jobs, engine.Job{ID: "job", Data: []byte("d"), Due: now.Add(time.Minute), Attempts: 1})

	// Worker "crashes": no Ack. Before the lease ends nothing is claimable…
	jobs, err = e.Claim(ctx, q, now.Add(30*time.Second), time.Minute, 5)
	must(t, err)
	wantJobs(t, jobs)
	// …after it the job comes back with Attempts=2.
	t2 := now.Add(61 * time.Second)
	jobs, err = e.Claim(ctx, q, t2, time.Minute, 5)
	must(t, err)
	wantJobs(t, jobs, engine.Job{ID: "job", Data: []byte("d"), Due: t2.Add(time.Minute), Attempts: 2})

	// Same with the real clock and a short lease.
	must(t, e.Enqueue(ctx, q, engine.Job{ID: "rt", Data: []byte("r"), Due: time.Now()}))
	jobs, err = e.Claim(ctx, q, time.Now(), 50*time.Millisecond, 5)
	must(t, err)
	if len(jobs) != 1 || jobs[0].ID != "rt" {
		t.Fatalf("first claim = %+v", jobs)
	}
	time.Sleep(120 * time.Millisecond)
	jobs, err = e.Claim(ctx, q, time.Now(), time.Minute, 5)
	must(t, err)
	if len(jobs) != 1 || jobs[0].ID != "rt" || jobs[0].Attempts != 2 {
		t.Fatalf("reclaim after lease = %+v, want rt with Attempts 2", jobs)
	}
}

func testQueueReplaceByID(t *testing.T, e engine.Engine) {
	ctx := ctxFor(t)
	q := "q:{replace}"
	now := ms(time.Now())
	must(t, e.Enqueue(ctx, q, engine.Job{ID: "a", Data: []byte("v1"), Due: now.Add(time.Hour)}))
	must(t, e.Enqueue(ctx, q, engine.Job{ID: "a", Data: []byte("v2"), Due: now.Add(-time.Second)}))
	if n, _ := e.QueueLen(ctx, q); n != 1 {
		t.Fatalf("QueueLen after replace = %d, want 1", n)
	}
	if o, _ := e.QueueOldest(ctx, q); !o.Equal(now.Add(-time.Second)) {
		t.Fatalf("replace did not move Due: oldest %v", o)
	}
	jobs, err := e.Claim(ctx, q, now, time.Minute, 10)
	must(t, err)
	wantJobs(t, jobs, engine.Job{ID: "a", Data: []byte("v2"), Due: now.Add(time.Minute), Attempts: 1})

	// Re-scheduling a claimed job (retry with backoff) keeps its Attempts.
	must(t, e.Enqueue(ctx, q, engine.Job{ID: "a", Data: []byte("v3"), Due: now.Add(time.Second)}))
	jobs, err = e.Claim(ctx, q, now.Add(time.Second), time.Minute, 10)
	must(t, err)
	wantJobs(t, jobs, engine.Job{ID: "a", Data: []byte("v3"), Due: now.Add(time.Second + time.Minute), Attempts: 2})

	// After Ack the ID is fresh again.
	must(t, e.Ack(ctx, q, "a"))
	must(t, e.Enqueue(ctx, q, engine.Job{ID: "a", Data: []byte("v4"), Due: now}))
	jobs, err = e.Claim(ctx, q, now, time.Minute, 10)
	must(t, err)
	wantJobs(t, jobs, engine.Job{ID: "a", Data: []byte("v4"), Due: now.Add(time.Minute), Attempts: 1})
}

// AckClaimed removes a job only as it was claimed: a re-enqueue (new work
// under the same ID) or a re-claim after the lease keeps it.
func testQueueAckClaimed(t *testing.T, e engine.Engine) {
	ctx := ctxFor(t)
	q := "q:{ackc}"
	now := ms(time.Now())
	must(t, e.Enqueue(ctx, q, engine.Job{ID: "k", Data: []byte("v1"), Due: now}))
	jobs, err := e.Claim(ctx, q, now, time.Minute, 1)
	must(t, err)
	wantJobs(t, jobs, engine.Job{ID: "k", Data: []byte("v1"), Due: now.Add(time.Minute), Attempts: 1})
	claimed := jobs[0]

	// New work arrives under the same ID while the worker runs.
	must(t, e.Enqueue(ctx, q, engine.Job{ID: "k", Data: []byte("v2"), Due: now.Add(time.Millisecond)}))
	if ok, err := e.AckClaimed(ctx, q, claimed); err != nil || ok {
		t.Fatalf("AckClaimed after a re-enqueue = %v, %v; want false", ok, err)
	}
	jobs, err = e.Claim(ctx, q, now.Add(time.Millisecond), time.Minute, 1)
	must(t, err)
	wantJobs(t, jobs, engine.Job{ID: "k", Data: []byte("v2"), Due: now.Add(time.Millisecond + time.Minute), Attempts: 2})
	// Nothing changed since this claim: the ack removes it.
	if ok, err := e.AckClaimed(ctx, q, jobs[0]); err != nil || !ok {
		t.Fatalf("AckClaimed of an untouched claim = %v, %v; want true", ok, err)
	}
	if n, _ := e.QueueLen(ctx, q); n != 0 {
		t.Fatalf("QueueLen after AckClaimed = %d", n)
	}
	// A stale claim (its lease ended and another worker claimed the job)
	// does not remove the newer claim; an absent job is no error.
	must(t, e.Enqueue(ctx, q, engine.Job{ID: "s", Data: []byte("x"), Due: now}))
	first, err := e.Claim(ctx, q, now, time.Second, 1)
	must(t, err)
	second, err := e.Claim(ctx, q, now.Add(2*time.Second), time.Minute, 1)
	must(t, err)
	if len(first) != 1 || len(second) != 1 {
		t.Fatalf("claims = %+v, %+v", first, second)
	}
	if ok, err := e.AckClaimed(ctx, q, first[0]); err != nil || ok {
		t.Fatalf("AckClaimed of a stale claim = %v, %v; want false", ok, err)
	}
	if ok, err := e.AckClaimed(ctx, q, second[0]); err != nil || !ok {
		t.Fatalf("AckClaimed of the current claim = %v, %v; want true", ok, err)
	}
	if ok, err := e.AckClaimed(ctx, q, second[0]); err != nil || ok {
		t.Fatalf("AckClaimed of an absent job = %v, %v; want false", ok, err)
	}
}

func testQueueIsolation(t *testing.T, e engine.Engine) {
	ctx := ctxFor(t)
	now := ms(time.Now())
	must(t, e.Enqueue(ctx, "plainq", engine.Job{ID: "x", Data: []byte("plain"), Due: now}))
	must(t, e.Enqueue(ctx, "q:{iso}", engine.Job{ID: "x", Data: []byte("tagged"), Due: now}))
	must(t, e.Ack(ctx, "plainq", "x"))
	if n, _ := e.QueueLen(ctx, "plainq"); n != 0 {
		t.Fatalf("QueueLen(plainq) = %d", n)
	}
	jobs, err := e.Claim(ctx, "q:{iso}", now, time.Minute, 10)
	must(t, err)
	wantJobs(t, jobs, engine.Job{ID: "x", Data: []byte("tagged"), Due: now.Add(time.Minute), Attempts: 1})
}

func testQueueConcurrentClaim(t *testing.T, e engine.Engine) {
	ctx := ctxFor(t)
	q := "q:{cc}"
	now := ms(time.Now())
	const jobsN = 100
	for i := 0; i < jobsN; i++ {
		must(t, e.Enqueue(ctx, q, engine.Job{ID: strconv.Itoa(i), Data: []byte("d"), Due: now}))
	}
	var mu sync.Mutex
	seen := map[string]int{}
	parallel(t, 10, func(int) error {
		for {
			jobs, err := e.Claim(ctx, q, now, time.Hour, 3)
			if err != nil {
				return err
			}
			if len(jobs) == 0 {
				return nil
			}
			mu.Lock()
			for _, j := range jobs {
				seen[j.ID]++
			}
			mu.Unlock()
		}
	})
	if len(seen) != jobsN {
		t.Fatalf("claimed %d distinct jobs, want %d", len(seen), jobsN)
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("job %s claimed %d times within one lease", id, n)
		}
	}
}

func testClaimAndEnqueue(t *testing.T, e engine.Engine) {
	ctx := ctxFor(t)
	q, key := "in:{c1}", "in:{c1}:d:m1"
	now := ms(time.Now())
	claimed, cur, err := e.ClaimAndEnqueue(ctx, key, []byte("owner-1"), 10*time.Second, q,
		engine.Job{ID: "m1", Data: []byte("payload-1"), Due: now})
	must(t, err)
	if !claimed || cur != nil {
		t.Fatalf("first ClaimAndEnqueue = %v, %q; want true, nil", claimed, cur)
	}
	wantValue(t, e, key, "owner-1")
	wantTTL(t, e, key, 9*time.Second, 10*time.Second)

	claimed, cur, err = e.ClaimAndEnqueue(ctx, key, []byte("owner-2"), time.Minute, q,
		engine.Job{ID: "m1-dup", Data: []byte("payload-2"), Due: now})
	must(t, err)
	if claimed || string(cur) != "owner-1" {
		t.Fatalf("duplicate ClaimAndEnqueue = %v, %q; want false, owner-1", claimed, cur)
	}
	wantValue(t, e, key, "owner-1")
	wantTTL(t, e, key, 9*time.Second, 10*time.Second)
	if n, _ := e.QueueLen(ctx, q); n != 1 {
		t.Fatalf("QueueLen = %d, want 1 (duplicate must not enqueue)", n)
	}
	jobs, err := e.Claim(ctx, q, now, time.Minute, 10)
	must(t, err)
	wantJobs(t, jobs, engine.Job{ID: "m1", Data: []byte("payload-1"), Due: now.Add(time.Minute), Attempts: 1})

	// Once the claim expires the key can be claimed again.
	key2 := "in:{c1}:d:m2"
	claimed, _, err = e.ClaimAndEnqueue(ctx, key2, []byte("a"), 100*time.Millisecond, q, engine.Job{ID: "m2", Due: now})
	must(t, err)
	if !claimed {
		t.Fatal("claim of fresh key failed")
	}
	time.Sleep(250 * time.Millisecond)
	claimed, _, err = e.ClaimAndEnqueue(ctx, key2, []byte("b"), 0, q, engine.Job{ID: "m2b", Due: now})
	must(t, err)
	if !claimed {
		t.Fatal("claim after expiry failed")
	}
	wantValue(t, e, key2, "b")
	if n, _ := e.QueueLen(ctx, q); n != 3 {
		t.Fatalf("QueueLen = %d, want 3", n)
	}
	if _, _, err := e.ClaimAndEnqueue(ctx, "in:{c1}:d:x", nil, 0, q, engine.Job{}); err == nil {
		t.Fatal("ClaimAndEnqueue without job ID succeeded")
	}
	wantAbsent(t, e, "in:{c1}:d:x")
}

func testClaimAndEnqueueCrossSlot(t *testing.T, e engine.Engine) {
	ctx := ctxFor(t)
	for _, c := range []struct{ key, queue string }{
		{"in:{x}:d:1", "in:{y}"},
		{"plainkey", "plainqueue"},
		{"in:{x}:d:1", "plainqueue"},
	} {
		_, _, err := e.ClaimAndEnqueue(ctx, c.key, []byte("v"), 0, c.queue, engine.Job{ID: "1", Due: time.Now()})
		if !errors.Is(err, engine.ErrCrossSlot) {
			t.Fatalf("ClaimAndEnqueue(%q, %q): %v, want ErrCrossSlot", c.key, c.queue, err)
		}
		wantAbsent(t, e, c.key)
		if n, _ := e.QueueLen(ctx, c.queue); n != 0 {
			t.Fatalf("QueueLen(%q) = %d after rejected call", c.queue, n)
		}
	}
}

func testClaimAndEnqueueConcurrent(t *testing.T, e engine.Engine) {
	ctx := ctxFor(t)
	q, key := "in:{cc}", "in:{cc}:d:msg"
	now := ms(time.Now())
	const n = 50
	var winners atomic.Int32
	results := make([]struct {
		claimed bool
		cur     []byte
	}, n)
	parallel(t, n, func(i int) error {
		claimed, cur, err := e.ClaimAndEnqueue(ctx, key, []byte("g"+strconv.Itoa(i)), time.Minute, q,
			engine.Job{ID: "job-" + strconv.Itoa(i), Data: []byte(strconv.Itoa(i)), Due: now})
		results[i].claimed, results[i].cur = claimed, cur
		if claimed {
			winners.Add(1)
		}
		return err
	})
	if w := winners.Load(); w != 1 {
		t.Fatalf("%d goroutines claimed, want exactly 1", w)
	}
	var win int
	for i, r := range results {
		if r.claimed {
			win = i
		}
	}
	for i, r := range results {
		if !r.claimed && string(r.cur) != "g"+strconv.Itoa(win) {
			t.Fatalf("loser %d saw current %q, want winner's g%d", i, r.cur, win)
		}
	}
	wantValue(t, e, key, "g"+strconv.Itoa(win))
	jobs, err := e.Claim(ctx, q, now, time.Minute, 100)
	must(t, err)
	wantJobs(t, jobs, engine.Job{ID: "job-" + strconv.Itoa(win), Data: []byte(strconv.Itoa(win)), Due: now.Add(time.Minute), Attempts: 1})

	// Many distinct messages at once: every one is accepted exactly once.
	q2 := "in:{many}"
	parallel(t, n, func(i int) error {
		for j := 0; j < 4; j++ {
			id := strconv.Itoa(i*4 + j)
			claimed, _, err := e.ClaimAndEnqueue(ctx, "in:{many}:d:"+id, []byte("x"), time.Minute, q2, engine.Job{ID: id, Due: now})
			if err != nil {
				return err
			}
			if !claimed {
				return fmt.Errorf("fresh key %s not claimed", id)
			}
		}
		return nil
	})
	if l, _ := e.QueueLen(ctx, q2); l != n*4 {
		t.Fatalf("QueueLen = %d, want %d", l, n*4)
	}
}

var idRE = regexp.MustCompile(`^[0-9]+-[0-9]+$`)

func testLogs(t *testing.T, e engine.Engine) {
	ctx := ctxFor(t)
	recs, err := e.ReadLog(ctx, "log", "", 10)
	must(t, err)
	if len(recs) != 0 {
		t.Fatalf("ReadLog(absent) = %v", recs)
	}
	if n, err := e.LogLen(ctx, "log"); err != nil || n != 0 {
		t.Fatalf("LogLen(absent) = %d, %v", n, err)
	}
	must(t, e.TrimLog(ctx, "log", time.Now()))

	var ids []string
	before := time.Now().UnixMilli()
	for i := 0; i < 5; i++ {
		id, err := e.Append(ctx, "log", []byte("r"+strconv.Itoa(i)))
		must(t, err)
		if !idRE.MatchString(id) {
			t.Fatalf("ID %q is not <unixms>-<seq>", id)
		}
		if len(ids) > 0 && engine.CompareIDs(ids[len(ids)-1], id) >= 0 {
			t.Fatalf("IDs not increasing: %s then %s", ids[len(ids)-1], id)
		}
		ids = append(ids, id)
	}
	msPart, _ := strconv.ParseInt(ids[0][:len(ids[0])-len("-0")], 10, 64)
	if first := ids[0]; msPart < before-5000 || msPart > time.Now().UnixMilli()+5000 {
		t.Fatalf("ID %s is not a current unix-ms time", first)
	}

	all, err := e.ReadLog(ctx, "log", "", 0)
	must(t, err)
	if len(all) != 5 {
		t.Fatalf("ReadLog(all) returned %d records", len(all))
	}
	for i, r := range all {
		if r.ID != ids[i] || string(r.Data) != "r"+strconv.Itoa(i) {
			t.Fatalf("record %d = %s %q, want %s r%d", i, r.ID, r.Data, ids[i], i)
		}
	}

	// Page through with afterID.
	var paged []string
	after := ""
	for page := 0; ; page++ {
		recs, err := e.ReadLog(ctx, "log", after, 2)
		must(t, err)
		if len(recs) == 0 {
			break
		}
		if page > 5 || len(recs) > 2 {
			t.Fatalf("paging misbehaves: page %d has %d records", page, len(recs))
		}
		for _, r := range recs {
			paged = append(paged, r.ID)
		}
		after = recs[len(recs)-1].ID
	}
	if fmt.Sprint(paged) != fmt.Sprint(ids) {
		t.Fatalf("paged IDs %v, want %v", paged, ids)
	}
	recs, err = e.ReadLog(ctx, "log", ids[2], 0)
	must(t, err)
	if len(recs) != 2 || recs[0].ID != ids[3] {
		t.Fatalf("ReadLog(after %s) = %v", ids[2], recs)
	}
	if n, _ := e.LogLen(ctx, "log"); n != 5 {
		t.Fatalf("LogLen = %d", n)
	}
	if _, err := e.ReadLog(ctx, "log", "not-an-id", 1); err == nil {
		t.Fatal("ReadLog with a malformed afterID succeeded")
	}
	CheckLogPages(t, e, "log")
	CheckLogPages(t, e, "absent-log")
}

func testLogTrim(t *testing.T, e engine.Engine) {
	ctx := ctxFor(t)
	old, err := e.Append(ctx, "tl", []byte("old"))
	must(t, err)
	time.Sleep(5 * time.Millisecond)
	cut := time.Now()
	time.Sleep(5 * time.Millisecond)
	var fresh []string
	for i := 0; i < 3; i++ {
		id, err := e.Append(ctx, "tl", []byte("new"))
		must(t, err)
		fresh = append(fresh, id)
	}
	must(t, e.TrimLog(ctx, "tl", cut.Add(-time.Hour)))
	if n, _ := e.LogLen(ctx, "tl"); n != 4 {
		t.Fatalf("LogLen after no-op trim = %d", n)
	}
	must(t, e.TrimLog(ctx, "tl", cut))
	recs, err := e.ReadLog(ctx, "tl", "", 0)
	must(t, err)
	if len(recs) != 3 || recs[0].ID != fresh[0] {
		t.Fatalf("after trim at cut: %v (old was %s)", recs, old)
	}
	must(t, e.TrimLog(ctx, "tl", time.Now().Add(time.Minute)))
	if n, _ := e.LogLen(ctx, "tl"); n != 0 {
		t.Fatalf("LogLen after trimming everything = %d", n)
	}
	// IDs stay monotonic after the log was emptied by trimming.
	id, err := e.Append(ctx, "tl", []byte("again"))
	must(t, err)
	if engine.CompareIDs(id, fresh[2]) <= 0 {
		t.Fatalf("ID after trim %s is not greater than %s", id, fresh[2])
	}
	recs, err = e.ReadLog(ctx, "tl", fresh[2], 0)
	must(t, err)
	if len(recs) != 1 || recs[0].ID != id {
		t.Fatalf("ReadLog after trim = %v", recs)
	}
	CheckLogPages(t, e, "tl")
}

func testLogConcurrentAppend(t *testing.T, e engine.Engine) {
	ctx := ctxFor(t)
	const workers, each = 20, 10
	var mu sync.Mutex
	var ids []string
	parallel(t, workers, func(i int) error {
		for j := 0; j < each; j++ {
			id, err := e.Append(ctx, "cl", []byte(fmt.Sprintf("%d/%d", i, j)))
			if err != nil {
				return err
			}
			mu.Lock()
			ids = append(ids, id)
			mu.Unlock()
		}
		return nil
	})
	recs, err := e.ReadLog(ctx, "cl", "", 0)
	must(t, err)
	if len(recs) != workers*each {
		t.Fatalf("ReadLog returned %d records, want %d", len(recs), workers*each)
	}
	for i := 1; i < len(recs); i++ {
		if engine.CompareIDs(recs[i-1].ID, recs[i].ID) >= 0 {
			t.Fatalf("log out of order at %d: %s, %s", i, recs[i-1].ID, recs[i].ID)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return engine.CompareIDs(ids[i], ids[j]) < 0 })
	for i := range ids {
		if ids[i] != recs[i].ID {
			t.Fatalf("returned IDs and stored IDs differ at %d: %s vs %s", i, ids[i], recs[i].ID)
		}
	}
}

func testLogAppendMany(t *testing.T, e engine.Engine) {
	ctx := ctxFor(t)
	if ids, err := e.AppendMany(ctx, "am"); err != nil || len(ids) != 0 {
		t.Fatalf("AppendMany() = %v, %v", ids, err)
	}
	if n, _ := e.LogLen(ctx, "am"); n != 0 {
		t.Fatalf("empty AppendMany wrote %d records", n)
	}
	first, err := e.Append(ctx, "am", []byte("single"))
	must(t, err)
	// Batches racing with each other and with single appends keep each
	// batch's order, and IDs keep increasing across both.
	var mu sync.Mutex
	returned := map[string]string{}
	parallel(t, 8, func(i int) error {
		for j := 0; j < 5; j++ {
			data := [][]byte{[]byte(fmt.Sprintf("%d/%d/a", i, j)), []byte(fmt.Sprintf("%d/%d/b", i, j)), []byte(fmt.Sprintf("%d/%d/c", i, j))}
			ids, err := e.AppendMany(ctx, "am", data...)
			if err != nil {
				return err
			}
			if len(ids) != 3 {
				return fmt.Errorf("AppendMany returned %d IDs", len(ids))
			}
			id, err := e.Append(ctx, "am", []byte(fmt.Sprintf("%d/%d/single", i, j)))
			if err != nil {
				return err
			}
			mu.Lock()
			for k, d := range data {
				returned[ids[k]] = string(d)
			}
			returned[id] = fmt.Sprintf("%d/%d/single", i, j)
			mu.Unlock()
		}
		return nil
	})
	recs, err := e.ReadLog(ctx, "am", first, 0)
	must(t, err)
	if len(recs) != 8*5*4 {
		t.Fatalf("ReadLog returned %d records, want %d", len(recs), 8*5*4)
	}
	for i, r := range recs {
		if i > 0 && engine.CompareIDs(recs[i-1].ID, r.ID) >= 0 {
			t.Fatalf("log out of order at %d: %s, %s", i, recs[i-1].ID, r.ID)
		}
		if returned[r.ID] != string(r.Data) {
			t.Fatalf("record %s = %q, AppendMany/Append returned it for %q", r.ID, r.Data, returned[r.ID])
		}
		if strings.HasSuffix(string(r.Data), "/a") {
			// A batch is contiguous: nothing lands between its records.
			stem := strings.TrimSuffix(string(r.Data), "a")
			if i+2 >= len(recs) || string(recs[i+1].Data) != stem+"b" || string(recs[i+2].Data) != stem+"c" {
				t.Fatalf("batch %s split or reordered at %d", stem, i)
			}
		}
	}
}

func testUpdate(t *testing.T, e engine.Engine) {
	ctx := ctxFor(t)
	a, b := "acct:{u1}:a", "acct:{u1}:b"
	must(t, e.Set(ctx, a, []byte("10"), 0))
	must(t, e.Update(ctx, []string{a, b}, func(tx engine.Tx) error {
		v, err := tx.Get(a)
		if err != nil || string(v) != "10" {
			return fmt.Errorf("tx.Get(a) = %q, %v", v, err)
		}
		if _, err := tx.Get(b); !errors.Is(err, engine.ErrNotFound) {
			return fmt.Errorf("tx.Get(absent) = %v, want ErrNotFound", err)
		}
		tx.Set(a, []byte("7"), 0)
		if v, _ := tx.Get(a); string(v) != "7" {
			return fmt.Errorf("tx does not read its own write: %q", v)
		}
		tx.Set(b, []byte("3"), 10*time.Second)
		return nil
	}))
	wantValue(t, e, a, "7")
	wantValue(t, e, b, "3")
	wantTTL(t, e, b, 9*time.Second, 10*time.Second)

	must(t, e.Update(ctx, []string{a}, func(tx engine.Tx) error {
		tx.Del(a)
		if _, err := tx.Get(a); !errors.Is(err, engine.ErrNotFound) {
			return fmt.Errorf("tx.Get after tx.Del = %v", err)
		}
		return nil
	}))
	wantAbsent(t, e, a)

	// An error from fn aborts without writing anything.
	boom := errors.New("boom")
	err := e.Update(ctx, []string{a, b}, func(tx engine.Tx) error {
		tx.Set(a, []byte("x"), 0)
		tx.Del(b)
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update returned %v, want fn's error", err)
	}
	wantAbsent(t, e, a)
	wantValue(t, e, b, "3")

	// Read-only transactions are fine.
	must(t, e.Update(ctx, []string{b}, func(tx engine.Tx) error {
		_, err := tx.Get(b)
		return err
	}))
}

func testUpdateMisuse(t *testing.T, e engine.Engine) {
	ctx := ctxFor(t)
	called := false
	err := e.Update(ctx, []string{"m:{1}", "m:{2}"}, func(engine.Tx) error { called = true; return nil })
	if !errors.Is(err, engine.ErrCrossSlot) || called {
		t.Fatalf("Update across tags: %v (fn called %v), want ErrCrossSlot before fn", err, called)
	}
	// Keys not declared up front are refused (they are neither watched nor
	// guaranteed to be in the slot).
	err = e.Update(ctx, []string{"m:{1}:a"}, func(tx engine.Tx) error {
		tx.Set("m:{1}:a", []byte("1"), 0)
		tx.Set("m:{1}:undeclared", []byte("1"), 0)
		return nil
	})
	if err == nil {
		t.Fatal("Update writing an undeclared key succeeded")
	}
	wantAbsent(t, e, "m:{1}:a")
	wantAbsent(t, e, "m:{1}:undeclared")
	err = e.Update(ctx, []string{"m:{1}:a"}, func(tx engine.Tx) error {
		_, err := tx.Get("m:{1}:other")
		if err == nil {
			return errors.New("undeclared read succeeded")
		}
		return nil
	})
	if err == nil {
		t.Fatal("Update reading an undeclared key succeeded")
	}
}

func testUpdateRetriesOnConflict(t *testing.T, e engine.Engine) {
	ctx := ctxFor(t)
	k := "r:{1}:n"
	must(t, e.Set(ctx, k, []byte("1"), 0))
	attempts := 0
	must(t, e.Update(ctx, []string{k}, func(tx engine.Tx) error {
		attempts++
		v, err := tx.Get(k)
		if err != nil {
			return err
		}
		if attempts == 1 {
			// A concurrent writer changes the key mid-transaction.
			if err := e.Set(ctx, k, []byte("100"), 0); err != nil {
				return err
			}
		}
		n, _ := strconv.Atoi(string(v))
		tx.Set(k, []byte(strconv.Itoa(n+1)), 0)
		return nil
	}))
	if attempts != 2 {
		t.Fatalf("fn ran %d times, want 2 (retry after conflict)", attempts)
	}
	wantValue(t, e, k, "101")
}

func testUpdateConcurrent(t *testing.T, e engine.Engine) {
	ctx := ctxFor(t)
	total, audit := "ctr:{u2}:n", "ctr:{u2}:last"
	const workers, each = 8, 25
	var calls atomic.Int64
	parallel(t, workers, func(i int) error {
		for j := 0; j < each; j++ {
			err := e.Update(ctx, []string{total, audit}, func(tx engine.Tx) error {
				calls.Add(1)
				n := 0
				if v, err := tx.Get(total); err == nil {
					n, _ = strconv.Atoi(string(v))
				} else if !errors.Is(err, engine.ErrNotFound) {
					return err
				}
				tx.Set(total, []byte(strconv.Itoa(n+1)), 0)
				tx.Set(audit, []byte(strconv.Itoa(i)), 0)
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	wantValue(t, e, total, strconv.Itoa(workers*each))
	if c := calls.Load(); c < workers*each {
		t.Fatalf("fn ran %d times for %d commits", c, workers*each)
	}
}

func recv(t *testing.T, ch <-chan []byte, within time.Duration) ([]byte, bool) {
	t.Helper()
	select {
	case m, ok := <-ch:
		return m, ok
	case <-time.After(within):
		t.Fatalf("no message within %v", within)
		return nil, false
	}
}

func testPubSub(t *testing.T, e engine.Engine) {
	ctx := ctxFor(t)
	must(t, e.Publish(ctx, "nobody", []byte("into the void")))

	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	a, err := e.Subscribe(sctx, "news")
	must(t, err)
	b, err := e.Subscribe(sctx, "news")
	must(t, err)
	other, err := e.Subscribe(sctx, "sports")
	must(t, err)

	for i := 0; i < 10; i++ {
		must(t, e.Publish(ctx, "news", []byte("m"+strconv.Itoa(i))))
	}
	for name, ch := range map[string]<-chan []byte{"a": a, "b": b} {
		for i := 0; i < 10; i++ {
			m, ok := recv(t, ch, 5*time.Second)
			if !ok || string(m) != "m"+strconv.Itoa(i) {
				t.Fatalf("subscriber %s got %q (open %v), want m%d in order", name, m, ok, i)
			}
		}
	}
	select {
	case m := <-other:
		t.Fatalf("subscriber of another channel received %q", m)
	case <-time.After(100 * time.Millisecond):
	}

	cancel()
	for _, ch := range []<-chan []byte{a, b, other} {
		deadline := time.After(5 * time.Second)
	drain:
		for {
			select {
			case _, ok := <-ch:
				if !ok {
					break drain
				}
			case <-deadline:
				t.Fatal("subscription channel not closed after ctx was canceled")
			}
		}
	}
}

func testContextCanceled(t *testing.T, e engine.Engine) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.Get(ctx, "k"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Get with canceled ctx: %v, want context.Canceled", err)
	}
	if err := e.Set(ctx, "k", []byte("v"), 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("Set with canceled ctx: %v, want context.Canceled", err)
	}
	wantAbsent(t, e, "k")
}

func testClosed(t *testing.T, e engine.Engine) {
	ctx := ctxFor(t)
	must(t, e.Set(ctx, "k", []byte("v"), 0))
	must(t, e.Close())
	if err := e.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := e.Get(ctx, "k"); !errors.Is(err, engine.ErrClosed) {
		t.Fatalf("Get after Close: %v, want ErrClosed", err)
	}
	if err := e.Set(ctx, "k", []byte("v"), 0); !errors.Is(err, engine.ErrClosed) {
		t.Fatalf("Set after Close: %v, want ErrClosed", err)
	}
	if err := e.Ping(ctx); err == nil {
		t.Fatal("Ping after Close succeeded")
	}
}

// CheckLogPages pages through log with engine.ReadLogPage, one LogPage
// reused for every read, at several page sizes and from every starting
// point, and fails unless each page holds exactly what ReadLog returns for
// the same arguments. A page left from a longer read must not leak into a
// shorter one, nor an earlier page's data into a later one.
func CheckLogPages(t *testing.T, e engine.Engine, log string) {
	t.Helper()
	ctx := ctxFor(t)
	all, err := e.ReadLog(ctx, log, "", 0)
	must(t, err)
	var p engine.LogPage
	same := func(what string, want []engine.Record) {
		t.Helper()
		if p.Len() != len(want) {
			t.Fatalf("%s: ReadLogPage has %d records, ReadLog %d", what, p.Len(), len(want))
		}
		for i, r := range want {
			if p.ID(i) != r.ID || !bytes.Equal(p.Data(i), r.Data) {
				t.Fatalf("%s: record %d = %s %q, ReadLog has %s %q", what, i, p.ID(i), p.Data(i), r.ID, r.Data)
			}
			if ms, _ := strconv.ParseInt(r.ID[:strings.IndexByte(r.ID, '-')], 10, 64); p.Millis(i) != ms {
				t.Fatalf("%s: record %d: Millis = %d, ID %s", what, i, p.Millis(i), r.ID)
			}
		}
	}
	for _, size := range []int{0, 1, 2, 7, 100} {
		starts := []string{""}
		for _, r := range all {
			starts = append(starts, r.ID)
		}
		for _, after := range starts {
			want, err := e.ReadLog(ctx, log, after, size)
			must(t, err)
			must(t, engine.ReadLogPage(ctx, e, log, after, size, &p))
			same(fmt.Sprintf("after %q, count %d", after, size), want)
		}
	}
	if err := engine.ReadLogPage(ctx, e, log, "not-an-id", 1, &p); err == nil {
		t.Fatal("ReadLogPage with a malformed afterID succeeded")
	}
	if p.Len() != 0 {
		t.Fatalf("ReadLogPage failed but left %d records on the page", p.Len())
	}
}
