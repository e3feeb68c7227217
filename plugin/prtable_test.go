package plugin_test

import (
	"context"
	"fmt"
	"sync"
)

// prTable is a shared LUN's persistent reservation state, in memory: which
// hosts' keys are registered. Fencing removes a key; a registered host may
// write, an unregistered one may not. Tests share one table between hosts.
type prTable struct {
	mu   sync.Mutex
	keys map[string]bool
}

func newPRTable() *prTable { return &prTable{keys: map[string]bool{}} }

func (p *prTable) registered(host string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.keys[host]
}

// fakePR is one host's fencing method on a prTable. Its hooks, when set,
// run at the points a race can fall between: after this host checked its
// own key (Fenced), before it registers (Join), before and after it
// preempts a victim (Fence).
type fakePR struct {
	tbl  *prTable
	host string

	mu                          sync.Mutex
	afterCheck, beforeJoin      func()
	beforePreempt, afterPreempt func(victim string)
}

func (f *fakePR) Name() string { return "fake-pr" }

func (f *fakePR) hook(h *func()) func() {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn := *h
	return fn
}

func (f *fakePR) Fence(_ context.Context, victim string) error {
	f.mu.Lock()
	before, after := f.beforePreempt, f.afterPreempt
	f.mu.Unlock()
	if before != nil {
		before(victim)
	}
	f.tbl.mu.Lock()
	if !f.tbl.keys[f.host] {
		f.tbl.mu.Unlock()
		return fmt.Errorf("cannot fence %s: %s is not registered itself", victim, f.host)
	}
	delete(f.tbl.keys, victim)
	f.tbl.mu.Unlock()
	if after != nil {
		after(victim)
	}
	return nil
}

func (f *fakePR) Join(context.Context) error {
	if fn := f.hook(&f.beforeJoin); fn != nil {
		fn()
	}
	f.tbl.mu.Lock()
	f.tbl.keys[f.host] = true
	f.tbl.mu.Unlock()
	return nil
}

// Fenced implements plugin.FenceChecker: this host's key is gone.
func (f *fakePR) Fenced(context.Context) (bool, error) {
	gone := !f.tbl.registered(f.host)
	if fn := f.hook(&f.afterCheck); fn != nil {
		fn()
	}
	return gone, nil
}
