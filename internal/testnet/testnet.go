// Package testnet gives tests loopback addresses for servers they start.
package testnet

import (
	"net"
	"sync"
	"testing"
)

var (
	mu     sync.Mutex
	handed = map[string]bool{}
)

// FreeAddr returns a free 127.0.0.1 address (host:port) for a server the
// test starts later. The port is found by listening on port 0 and closing
// the listener, so the kernel may offer the same port again to the next
// caller before anyone binds it: an app test that picked its gateway,
// simulator and console ports one after another once got the same port
// twice ("bind: address already in use"). FreeAddr never returns an
// address twice in one test process.
func FreeAddr(t testing.TB) string {
	t.Helper()
	for range 100 {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		mu.Lock()
		dup := handed[addr]
		handed[addr] = true
		mu.Unlock()
		if !dup {
			return addr
		}
	}
	t.Fatal("testnet: no fresh loopback port in 100 tries")
	return ""
}
