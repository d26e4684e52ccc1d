package testnet

import (
	"net"
	"testing"
)

func TestFreeAddr_NeverTwiceAndBindable(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		a := FreeAddr(t)
		if seen[a] {
			t.Fatalf("address %s handed out twice", a)
		}
		seen[a] = true
	}
	a := FreeAddr(t)
	ln, err := net.Listen("tcp4", a)
	if err != nil {
		t.Fatalf("cannot bind the address handed out: %v", err)
	}
	ln.Close()
}
