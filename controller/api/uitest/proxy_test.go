package uitest

import (
	"io"
	"net"
	"sync"
	"testing"
)

// cutter is a TCP relay between the controller's etcd client and etcd,
// which the test cuts to make etcd unreachable from the API (as a network
// partition or a stopped etcd would) and then restores, while the other
// hosts' heartbeats keep their own direct connection.
type cutter struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	down   bool
	conns  map[net.Conn]bool
}

func newCutter(t *testing.T, target string) *cutter {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &cutter{ln: ln, target: target, conns: map[net.Conn]bool{}}
	t.Cleanup(func() { _ = ln.Close(); c.cut() })
	go c.accept()
	return c
}

func (c *cutter) addr() string { return c.ln.Addr().String() }

func (c *cutter) accept() {
	for {
		in, err := c.ln.Accept()
		if err != nil {
			return
		}
		c.mu.Lock()
		down := c.down
		if !down {
			c.conns[in] = true
		}
		c.mu.Unlock()
		if down {
			_ = in.Close()
			continue
		}
		go c.relay(in)
	}
}

func (c *cutter) relay(in net.Conn) {
	out, err := net.Dial("tcp", c.target)
	if err != nil {
		_ = in.Close()
		return
	}
	c.mu.Lock()
	if c.down {
		c.mu.Unlock()
		_, _ = in.Close(), out.Close()
		return
	}
	c.conns[out] = true
	c.mu.Unlock()
	go func() { _, _ = io.Copy(out, in); _, _ = in.Close(), out.Close() }()
	_, _ = io.Copy(in, out)
	_, _ = in.Close(), out.Close()
	c.mu.Lock()
	delete(c.conns, in)
	delete(c.conns, out)
	c.mu.Unlock()
}

// cut closes every relayed connection and refuses new ones until restore.
func (c *cutter) cut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.down = true
	for conn := range c.conns {
		_ = conn.Close()
	}
	clear(c.conns)
}

func (c *cutter) restore() {
	c.mu.Lock()
	c.down = false
	c.mu.Unlock()
}
