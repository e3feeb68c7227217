package scsi3

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/relocvol/relocvol/fencing"
	"github.com/relocvol/relocvol/internal/execx"
)

// blipLive: alive for an hour, never fenced; the proof after registering
// meets a transient etcd error (a leader election, a timeout).
type blipLive struct{ n *int }

func (l blipLive) Cutoff() (time.Time, bool) { return time.Now().Add(time.Hour), true }
func (l blipLive) Proven(context.Context) error {
	*l.n++
	if *l.n == 2 {
		return errors.New("etcdserver: leader changed")
	}
	return nil
}

// A live host that was never fenced, registering on a path the storage
// lost (a LUN reset), whose proof after it meets a passing etcd error (a
// leader election, a timeout) takes the key back and reports the error as
// it is: not as a cut-off, which would make it give its lease up and be
// failed over under its running containers. The next check proves and
// registers again.
func TestAPassingEtcdErrorIsNoCutOff(t *testing.T) {
	f := &execx.Fake{}
	fn, d := joinedOn2(t, f)
	n := 0
	fn.live = blipLive{n: &n}
	f.Ran = nil
	// Unregistered with REGISTER AND IGNORE (no key check, no conflict
	// through a nexus that is not registered), then read again.
	unregister := []execx.Call{{Argv: []string{"sg_persist", "--out", "--register-ignore", "--param-sark=0", "--param-aptpl", d[1]}}, readKeys(d[1], keyA)}
	f.Script = script(readKeys(d[0], keyA, keyB), readRes(t, d[0], held), readKeys(d[1], keyA), readRes(t, d[1], held),
		register(t, d[1]), readKeys(d[1], keyA, keyB), readRes(t, d[1], held), readKeys(d[1], keyA, keyB), readRes(t, d[1], held), unregister)
	err := fn.CheckRegistration(context.Background())
	if err == nil || errors.Is(err, fencing.ErrCutOff) {
		t.Errorf("CheckRegistration: %v; want the etcd error, not a cut-off", err)
	}
	runAll(t, f, nil) // the key taken back

}
