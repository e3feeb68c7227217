package testenv

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"testing"
)

// FreePorts returns a TCP port p on 127.0.0.1 such that p … p+n-1 are free
// now (an embedded etcd takes its client port and the next one for peers).
//
// The ports are picked below the kernel's ephemeral range, not by listening
// on port 0: a test picks a port and a plugin binds it later, sometimes
// minutes later, and in between every outgoing connection on the machine
// (image pulls, etcd clients, other test packages' port-0 listeners) takes
// its port from the ephemeral range. CI lost a run so: the embedded etcd's
// peer port had become a connection's by the time the plugin started.
func FreePorts(t testing.TB, n int) int {
	t.Helper()
	lo := ephemeralLow() - 12000
	for range 200 {
		p := lo + rand.IntN(12000-n)
		if portsFree(p, n) {
			return p
		}
	}
	t.Fatalf("no %d consecutive free TCP ports on 127.0.0.1 in %d-%d", n, lo, lo+12000)
	return 0
}

// portsFree says whether p … p+n-1 can all be listened on now.
func portsFree(p, n int) bool {
	var held []net.Listener
	defer func() {
		for _, l := range held {
			_ = l.Close()
		}
	}()
	for i := range n {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p+i))
		if err != nil {
			return false
		}
		held = append(held, l)
	}
	return true
}

// ephemeralLow is the first port of the kernel's ephemeral range (Linux's
// default 32768 when it cannot be read).
func ephemeralLow() int {
	lo := 32768
	if raw, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		var hi int
		if _, err := fmt.Sscanf(string(raw), "%d %d", &lo, &hi); err != nil || lo < 13024 {
			lo = 32768
		}
	}
	return lo
}
