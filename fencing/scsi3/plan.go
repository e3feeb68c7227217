package scsi3

import (
	"fmt"
	"slices"
	"strings"
)

// typeWERO is how sg_persist and mpathpersist name reservation type 5.
const typeWERO = "Write Exclusive, registrants only"

// pathState is one path's persistent reservation state.
type pathState struct {
	dev  string
	keys []uint64
	res  Reservation
}

func (s pathState) has(key uint64) bool { return slices.Contains(s.keys, key) }

// step is one PR command planPath asks for.
type step int

const (
	stepRegister step = iota // register this host's key
	stepReserve              // take the type 5 reservation
	stepPreempt              // remove the victim's key
)

func (s step) String() string { return [...]string{"register", "reserve", "preempt"}[s] }

// planPath decides what this host must do on one path so that, after it, a
// write from victim cannot land there: this host's key registered, a type 5
// (Write Exclusive, Registrants Only) reservation held, the victim's key
// (0: no victim, as when joining) absent. Where this host's key is missing
// it plans to register; whether it may is not the path's to say (enforce
// asks etcd first outside the join: a peer that preempted it marked it
// before).
func planPath(s pathState, self, victim uint64) ([]step, error) {
	var steps []step
	if !s.has(self) {
		steps = append(steps, stepRegister)
	}
	switch {
	case !s.res.Held:
		steps = append(steps, stepReserve)
	case s.res.Type != typeWERO:
		return nil, fmt.Errorf("%s: a %q reservation is held (key %s), not %q: relocvol cannot fence with it; release it (sg_persist --out --release --param-rk=KEY --prout-type=N %s) and relocvol takes a type 5 reservation",
			s.dev, s.res.Type, hexKey(s.res.Key), typeWERO, s.dev)
	}
	if victim != 0 && s.has(victim) {
		steps = append(steps, stepPreempt)
	}
	return steps, nil
}

// verifyPath checks that a path is as planPath wants it; the error says
// which device and what is missing.
func verifyPath(s pathState, self, victim uint64) error {
	switch {
	case !s.has(self):
		return fmt.Errorf("%s: this host's key %s is not registered (keys: %s)", s.dev, hexKey(self), keyList(s.keys))
	case !s.res.Held:
		return fmt.Errorf("%s: no reservation is held, so unregistered hosts may still write", s.dev)
	case s.res.Type != typeWERO:
		return fmt.Errorf("%s: the reservation is %q, not %q", s.dev, s.res.Type, typeWERO)
	case victim != 0 && s.has(victim):
		return fmt.Errorf("%s: key %s is still registered after the preempt", s.dev, hexKey(victim))
	}
	return nil
}

func keyList(keys []uint64) string {
	if len(keys) == 0 {
		return "none"
	}
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = hexKey(k)
	}
	return strings.Join(out, ",")
}
