// Package testredis starts throwaway redis-server processes for tests: a
// standalone server (Start) or a three-master Redis Cluster (StartCluster).
// Every package's Redis tests use it so they exercise a real server rather
// than a fake. The binaries come from scripts/install-test-deps.sh.
package testredis

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

const installHint = "redis-server/redis-cli not found on PATH: run scripts/install-test-deps.sh (installs the Debian packages redis-server and redis-tools)"

// Server is one redis-server process with its own data directory.
type Server struct {
	// Addr is "127.0.0.1:<port>".
	Addr string

	dir     string
	port    int
	extra   []string
	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	log     *bytes.Buffer
	clients []*redis.Client
}

// Start launches a standalone redis-server (appendonly yes) on a free
// loopback port and kills it when t ends. It fails the test (never skips)
// if redis-server is missing.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := Launch()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Launch is Start without a testing.TB, for servers shared across a test
// binary (start in TestMain or a sync.Once, call Stop when done).
func Launch() (*Server, error) {
	if err := checkBinaries(); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "testredis-")
	if err != nil {
		return nil, err
	}
	return launchIn(dir, nil)
}

func checkBinaries() error {
	for _, b := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(b); err != nil {
			return errors.New(installHint)
		}
	}
	return nil
}

// launchIn starts a server in dir, retrying with another port if the one
// picked was taken in the meantime.
func launchIn(dir string, extra []string) (*Server, error) {
	var lastErr error
	for try := 0; try < 5; try++ {
		port, err := freePort(len(extra) > 0) // cluster nodes also need port+10000
		if err != nil {
			return nil, err
		}
		s := &Server{Addr: "127.0.0.1:" + strconv.Itoa(port), dir: dir, port: port, extra: extra}
		if lastErr = s.start(); lastErr == nil {
			return s, nil
		}
	}
	os.RemoveAll(dir)
	return nil, lastErr
}

// freePort asks the kernel for an unused loopback port. With bus set, the
// Redis Cluster bus port (port+10000) must be free too.
func freePort(bus bool) (int, error) {
	for i := 0; i < 50; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !bus {
			return port, nil
		}
		if port+10000 > 65535 {
			continue
		}
		lb, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port+10000))
		if err != nil {
			continue
		}
		lb.Close()
		return port, nil
	}
	return 0, errors.New("testredis: no free port")
}

func (s *Server) start() error {
	args := []string{
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--dir", s.dir,
		"--appendonly", "yes",
		// "always": the AOF is written and fsynced before replies go out.
		// With the default "everysec" Redis may postpone the write while a
		// background fsync runs, so a SIGKILL (Kill) could drop
		// acknowledged writes and make durability tests flaky.
		"--appendfsync", "always",
		"--save", "",
		"--protected-mode", "no",
		"--daemonize", "no",
	}
	args = append(args, s.extra...)
	cmd := exec.Command("redis-server", args...)
	log := &bytes.Buffer{}
	cmd.Stdout = &lockedWriter{w: log, mu: &s.mu}
	cmd.Stderr = cmd.Stdout
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("testredis: starting redis-server: %w", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	s.mu.Lock()
	s.cmd, s.exited, s.log = cmd, exited, log
	s.mu.Unlock()

	c := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1, DialTimeout: time.Second})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		// The answer must come from this redis-server: another test
		// process may have picked the same port a moment earlier, and then
		// its server answers while ours fails to bind and exits.
		info, err := c.InfoMap(ctx, "server").Result()
		cancel()
		if err == nil {
			if pid := info["Server"]["process_id"]; pid == strconv.Itoa(cmd.Process.Pid) {
				return nil
			}
			s.Kill() // launchIn tries another port
			return fmt.Errorf("testredis: another redis-server (pid %s) answers on %s", info["Server"]["process_id"], s.Addr)
		}
		select {
		case <-exited:
			return fmt.Errorf("testredis: redis-server on %s exited: %s", s.Addr, s.Log())
		default:
		}
		if time.Now().After(deadline) {
			s.Kill()
			return fmt.Errorf("testredis: redis-server on %s not answering PING: %v\n%s", s.Addr, err, s.Log())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// Log returns the server's output so far (for failure messages).
func (s *Server) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.log == nil {
		return ""
	}
	return s.log.String()
}

// Client returns a new client for the server, closed by Stop. Retries are
// short so tests against a killed server fail fast.
func (s *Server) Client() *redis.Client {
	c := redis.NewClient(&redis.Options{
		Addr:            s.Addr,
		DialTimeout:     2 * time.Second,
		ReadTimeout:     5 * time.Second,
		WriteTimeout:    5 * time.Second,
		MaxRetries:      1,
		MinRetryBackoff: 10 * time.Millisecond,
		MaxRetryBackoff: 50 * time.Millisecond,
		// Refused dials fail fast instead of 5 x 100 ms per command.
		DialerRetries:      1,
		DialerRetryTimeout: 10 * time.Millisecond,
	})
	s.mu.Lock()
	s.clients = append(s.clients, c)
	s.mu.Unlock()
	return c
}

// Kill stops the server with SIGKILL (a crash: no final AOF rewrite) and
// waits for it to exit. The data directory is kept for Restart.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Kill()
	<-exited
}

// Restart starts the server again on the same address and data directory
// (after Kill), reloading its append-only file.
func (s *Server) Restart() error {
	s.Kill()
	var err error
	for try := 0; try < 50; try++ { // the port may linger briefly after a kill
		if err = s.start(); err == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return err
}

// Stop kills the server, closes clients made by Client and removes its data.
func (s *Server) Stop() {
	s.Kill()
	s.mu.Lock()
	clients := s.clients
	s.clients = nil
	s.mu.Unlock()
	for _, c := range clients {
		c.Close()
	}
	os.RemoveAll(s.dir)
}

// Cluster is a three-master Redis Cluster without replicas.
type Cluster struct {
	// Addrs are the masters' "127.0.0.1:<port>" addresses.
	Addrs   []string
	Servers []*Server

	mu      sync.Mutex
	clients []*redis.ClusterClient
	root    string
}

// StartCluster launches a three-master cluster and stops it when t ends.
// Startup takes about a second; share one per test binary (LaunchCluster)
// when many tests need it.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	c, err := LaunchCluster()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	return c
}

// LaunchCluster is StartCluster without a testing.TB; call Stop when done.
func LaunchCluster() (*Cluster, error) {
	if err := checkBinaries(); err != nil {
		return nil, err
	}
	root, err := os.MkdirTemp("", "testredis-cluster-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{root: root}
	for i := 0; i < 3; i++ {
		dir := filepath.Join(root, strconv.Itoa(i))
		if err := os.Mkdir(dir, 0o755); err != nil {
			c.Stop()
			return nil, err
		}
		s, err := launchIn(dir, []string{
			"--cluster-enabled", "yes",
			"--cluster-config-file", filepath.Join(dir, "nodes.conf"),
			"--cluster-node-timeout", "5000",
		})
		if err != nil {
			c.Stop()
			return nil, err
		}
		c.Servers = append(c.Servers, s)
		c.Addrs = append(c.Addrs, s.Addr)
	}
	args := append([]string{"--cluster", "create"}, c.Addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	out, err := exec.Command("redis-cli", args...).CombinedOutput()
	if err != nil {
		c.Stop()
		return nil, fmt.Errorf("testredis: redis-cli --cluster create: %v\n%s", err, out)
	}
	if err := c.waitReady(); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// waitReady waits until every node reports cluster_state:ok and knows the
// owner of all 16384 slots, so the first command cannot hit CLUSTERDOWN.
func (c *Cluster) waitReady() error {
	deadline := time.Now().Add(30 * time.Second)
	for _, addr := range c.Addrs {
		cl := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
		for {
			info, err := cl.ClusterInfo(context.Background()).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") && strings.Contains(info, "cluster_slots_assigned:16384") {
				break
			}
			if time.Now().After(deadline) {
				cl.Close()
				return fmt.Errorf("testredis: cluster node %s not ready: %v\n%s", addr, err, info)
			}
			time.Sleep(50 * time.Millisecond)
		}
		cl.Close()
	}
	// cluster_state:ok can precede agreement on the slot map; probe a key per
	// node through a cluster client until no MOVED/CLUSTERDOWN surfaces.
	cc := c.Client()
	defer cc.Close()
	for i := 0; ; i++ {
		err := cc.ForEachMaster(context.Background(), func(ctx context.Context, n *redis.Client) error {
			return n.Ping(ctx).Err()
		})
		if err == nil {
			err = cc.Set(context.Background(), "testredis:probe:{"+strconv.Itoa(i)+"}", "1", time.Second).Err()
		}
		if err == nil && i >= 16 {
			return nil
		}
		if err != nil && time.Now().After(deadline) {
			return fmt.Errorf("testredis: cluster not serving: %w", err)
		}
		if err != nil {
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// Client returns a new cluster client, closed by Stop.
func (c *Cluster) Client() *redis.ClusterClient {
	cc := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs:        c.Addrs,
		DialTimeout:  2 * time.Second,
		ReadTimeout:  5 * time.Second,
		WriteTimeout: 5 * time.Second,
	})
	c.mu.Lock()
	c.clients = append(c.clients, cc)
	c.mu.Unlock()
	return cc
}

// Stop kills every node, closes clients and removes the data.
func (c *Cluster) Stop() {
	c.mu.Lock()
	clients := c.clients
	c.clients = nil
	c.mu.Unlock()
	for _, cc := range clients {
		cc.Close()
	}
	for _, s := range c.Servers {
		s.Stop()
	}
	os.RemoveAll(c.root)
}

// Sentinel is one redis-server in sentinel mode monitoring one master.
type Sentinel struct {
	// Addr is "127.0.0.1:<port>".
	Addr string
	cmd  *exec.Cmd
	dir  string
	log  *bytes.Buffer
	mu   sync.Mutex
}

// StartSentinel starts a sentinel monitoring master under name with a
// quorum of one and short timeouts (the master is considered down after
// one second), so a test can watch a failover. It stops with the test.
func StartSentinel(t testing.TB, master *Server, name string) *Sentinel {
	t.Helper()
	if err := checkBinaries(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	port, err := freePort(false)
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "sentinel.conf")
	body := fmt.Sprintf("port %d\nbind 127.0.0.1\nprotected-mode no\ndir %s\n"+
		"sentinel monitor %s 127.0.0.1 %d 1\n"+
		"sentinel down-after-milliseconds %s 1000\n"+
		"sentinel failover-timeout %s 5000\n"+
		"sentinel parallel-syncs %s 1\n", port, dir, name, master.port, name, name, name)
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	s := &Sentinel{Addr: "127.0.0.1:" + strconv.Itoa(port), dir: dir, log: &bytes.Buffer{}}
	s.cmd = exec.Command("redis-server", conf, "--sentinel")
	s.cmd.Stdout = &lockedWriter{w: s.log, mu: &s.mu}
	s.cmd.Stderr = s.cmd.Stdout
	s.cmd.SysProcAttr = procAttr()
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("testredis: starting sentinel: %v", err)
	}
	t.Cleanup(func() { _ = s.cmd.Process.Kill(); _ = s.cmd.Wait() })
	c := redis.NewSentinelClient(&redis.Options{Addr: s.Addr, MaxRetries: -1, DialTimeout: time.Second})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := c.GetMasterAddrByName(ctx, name).Result()
		cancel()
		if err == nil {
			return s
		}
		if time.Now().After(deadline) {
			s.mu.Lock()
			defer s.mu.Unlock()
			t.Fatalf("testredis: sentinel on %s not ready: %v\n%s", s.Addr, err, s.log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// StartReplica starts a redis-server replicating master.
func StartReplica(t testing.TB, master *Server) *Server {
	t.Helper()
	if err := checkBinaries(); err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "testredis-")
	if err != nil {
		t.Fatal(err)
	}
	s, err := launchIn(dir, []string{"--replicaof", "127.0.0.1", strconv.Itoa(master.port)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}
