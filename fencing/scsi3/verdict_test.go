package scsi3

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/relocvol/relocvol/internal/doctor"
	"github.com/relocvol/relocvol/internal/execx"
	"github.com/relocvol/relocvol/internal/sysblock"
	"github.com/relocvol/relocvol/internal/testenv"
)

func TestParseCapabilityReport(t *testing.T) {
	lab, err := os.ReadFile("testdata/lab-report-capabilities.txt")
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseCapabilityReport(lab)
	if err != nil || c != (Capabilities{PTPLCapable: true, PTPLActive: false, WERO: true}) {
		t.Fatalf("LIO before an APTPL registration: %+v %v", c, err)
	}
	active := strings.Replace(string(lab), "(PTPL_A): 0", "(PTPL_A): 1", 1)
	active = strings.Replace(active, "Write Exclusive, registrants only: 1", "Write Exclusive, registrants only: 0", 1)
	if c, err = ParseCapabilityReport([]byte(active)); err != nil || c != (Capabilities{PTPLCapable: true, PTPLActive: true, WERO: false}) {
		t.Fatalf("APTPL active, no type 5: %+v %v", c, err)
	}
	if _, err := ParseCapabilityReport([]byte("garbage")); err == nil {
		t.Fatal("garbage: no error")
	}
}

func TestPRVerdicts(t *testing.T) {
	keyC, stranger := KeyFor("node-c"), uint64(0x1234)
	live := map[uint64]string{keyA: "node-a", keyB: "node-b"}
	good := Capabilities{PTPLCapable: true, PTPLActive: true, WERO: true}
	wero := Reservation{Held: true, Key: keyA, Type: typeWERO}
	healthy := func(f func(*pathFacts)) pathFacts {
		p := pathFacts{dev: "/dev/sdb", lun: "/dev/sdb", keys: []uint64{keyA, keyB}, res: wero, caps: good, outTry: true}
		if f != nil {
			f(&p)
		}
		return p
	}
	for _, tc := range []struct {
		name string
		p    pathFacts
		want []string // "status: detail fragment", in order
	}{
		{name: "healthy", p: healthy(nil), want: []string{"pass: registered: node-a, node-b; type 5 reservation held (key " + hexKey(keyA) + "); APTPL on"}},
		{name: "a path of a map", p: healthy(func(p *pathFacts) { p.dev, p.lun = "/dev/sdc", "/dev/dm-0" }), want: []string{"pass: registered"}},
		{name: "PR IN refused", p: healthy(func(p *pathFacts) { p.readErr = errors.New("sg_persist: exit 9 (illegal request)") }),
			want: []string{"fail: the target does not answer PERSISTENT RESERVE IN: sg_persist: exit 9"}},
		{name: "this host not registered", p: healthy(func(p *pathFacts) { p.keys, p.outTry = []uint64{keyA}, false }),
			want: []string{"fail: this host's key " + hexKey(keyB) + " is not registered on this path", "fail: live host(s) node-b (" + hexKey(keyB) + ") not registered"}},
		{name: "a peer not registered", p: healthy(func(p *pathFacts) { p.keys = []uint64{keyB} }),
			want: []string{"fail: live host(s) node-a (" + hexKey(keyA) + ") not registered on this path"}},
		{name: "no reservation", p: healthy(func(p *pathFacts) { p.res = Reservation{} }), want: []string{"fail: no reservation is held"}},
		{name: "another type", p: healthy(func(p *pathFacts) { p.res = Reservation{Held: true, Key: keyA, Type: "Exclusive Access"} }),
			want: []string{`fail: a "Exclusive Access" reservation is held`}},
		{name: "a dead host's and a stranger's keys", p: healthy(func(p *pathFacts) { p.keys = []uint64{keyA, keyB, keyC, stranger} }),
			want: []string{"warn: key(s) " + hexKey(keyC) + ", 0x1234 belong to no live host"}},
		{name: "no APTPL", p: healthy(func(p *pathFacts) { p.caps.PTPLCapable, p.caps.PTPLActive = false, false }),
			want: []string{"warn: the target cannot keep registrations through a power loss"}},
		{name: "APTPL not asked", p: healthy(func(p *pathFacts) { p.caps.PTPLActive = false }),
			want: []string{"warn: the target can keep registrations through a power loss, but the last registration did not ask it to"}},
		{name: "no capabilities", p: healthy(func(p *pathFacts) { p.capsErr = errors.New("exit 9") }), want: []string{"warn: the target does not report its capabilities"}},
		{name: "registered through another path only", p: healthy(func(p *pathFacts) {
			p.dev, p.lun, p.outErr = "/dev/sdc", "/dev/sdb", fmt.Errorf("/dev/sdc: %w: exit 24", ErrReservationConflict)
		}),
			want: []string{"fail: this host's key " + hexKey(keyB) + " is registered, but not through this path"}},
		{name: "PR OUT refused", p: healthy(func(p *pathFacts) { p.outErr = errors.New("sg_persist: Operation not permitted") }),
			want: []string{"fail: the target refused PERSISTENT RESERVE OUT"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := prVerdicts(keyB, live, []pathFacts{tc.p})
			if len(got) != len(tc.want) {
				t.Fatalf("checks %s, want %q", show(got), tc.want)
			}
			for i, w := range tc.want {
				st, frag, _ := strings.Cut(w, ": ")
				if string(got[i].Status) != st || !strings.Contains(got[i].Detail, frag) {
					t.Errorf("check %d = %s, want %s", i, show(got[i:i+1]), w)
				}
				if got[i].Status != doctor.Pass && got[i].Fix == "" {
					t.Errorf("check %d has no fix", i)
				}
				if !strings.HasPrefix(got[i].Name, "pr "+tc.p.dev) {
					t.Errorf("check %d is named %q, want it to name the path %s", i, got[i].Name, tc.p.dev)
				}
			}
		})
	}
}

func show(cs []doctor.Check) string {
	var s []string
	for _, c := range cs {
		s = append(s, string(c.Status)+": "+c.Detail)
	}
	return strings.Join(s, " | ")
}

func TestMultipathVerdict(t *testing.T) {
	const self = uint64(0x5256aa01)
	m := func(out string) []mapKey { return []mapKey{{dev: "/dev/dm-0", out: out}} }
	for _, tc := range []struct {
		name string
		maps []mapKey
		want doctor.Status
		says string
		fix  []string // what the fix says, for a failure
		conf *mpConf  // default: defaults { reservation_key file }
	}{
		{name: "no multipath", want: doctor.Pass, says: "no PV is a multipath map"},
		{name: "this host's key", maps: m("0x5256aa01\n"), want: doctor.Pass, says: "multipathd holds this host's key 0x5256aa01 for /dev/dm-0"},
		{name: "with APTPL", maps: m("0x5256aa01:aptpl\n"), want: doctor.Pass, says: "multipathd holds this host's key 0x5256aa01"},
		{name: "every map", maps: append(m("0x5256aa01"), mapKey{dev: "/dev/dm-1", out: "0x5256aa01"}), want: doctor.Pass, says: "/dev/dm-0, /dev/dm-1"},
		{name: "no key", maps: m("none\n"), want: doctor.Fail, says: `multipathd has no reservation key for /dev/dm-0 (getprkey: "none")`,
			fix: []string{"add reservation_key file to the defaults section of /etc/multipath.conf", "then multipathd reconfigure", "restart the plugin", "relocvol host key"}},
		{name: "one map without", maps: append(m("0x5256aa01"), mapKey{dev: "/dev/dm-1", out: "none"}), want: doctor.Fail, says: "no reservation key for /dev/dm-1"},
		{name: "another key", maps: m("0x99"), want: doctor.Fail, says: "is 0x99, not this host's 0x5256aa01", fix: []string{"not a key of its own"}},
		{name: "multipathd down", maps: []mapKey{{dev: "/dev/dm-0", err: errors.New("exit 1: can't connect")}}, want: doctor.Fail, says: "multipathd does not answer", fix: []string{"systemctl enable --now multipathd"}},
		// multipathd holds the key (the join handed it over), but the
		// configuration mpathpersist reads in the plugin has none (review
		// of issue 25, finding 6): every preempt would fail.
		{name: "the plugin's view without the key", maps: m("0x5256aa01"), conf: &mpConf{text: "defaults {\n\tuser_friendly_names yes\n}\n", files: "/etc/multipath.conf"}, want: doctor.Fail,
			says: "as the plugin reads it (/etc/multipath.conf) sets no reservation_key in its defaults section", fix: []string{"reservation_key file"}},
		{name: "the key in a map's section only", maps: m("0x5256aa01"), conf: &mpConf{text: "multipaths {\n multipath {\n  wwid 3600\n  reservation_key file\n }\n}\n"}, want: doctor.Fail, says: "sets no reservation_key in its defaults section"},
		{name: "a commented key", maps: m("0x5256aa01"), conf: &mpConf{text: "defaults {\n # reservation_key file\n}\n"}, want: doctor.Fail, says: "sets no reservation_key"},
		{name: "the plugin cannot read it", maps: m("0x5256aa01"), conf: &mpConf{err: errors.New("open /etc/multipath.conf: no such file or directory")}, want: doctor.Fail,
			says: "cannot read the multipath configuration", fix: []string{"not links to outside /etc"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conf := mpConf{text: "defaults {\n\treservation_key file\n}\n"}
			if tc.conf != nil {
				conf = *tc.conf
			}
			c := multipathVerdict(self, tc.maps, conf)
			if c.Status != tc.want || !strings.Contains(c.Detail, tc.says) {
				t.Fatalf("%+v, want %s saying %q", c, tc.want, tc.says)
			}
			for _, f := range tc.fix {
				if !strings.Contains(c.Fix, f) {
					t.Errorf("fix %q lacks %q", c.Fix, f)
				}
			}
		})
	}
}

// lunPaths finds a multipath map's paths, and every disk with a plain
// PV's WWID (a second path multipath does not manage).
func TestLUNPaths(t *testing.T) {
	sys := t.TempDir()
	testenv.WriteFiles(t, sys, map[string]string{
		"class/block/sdb/device/wwid": "naa.6001405aaaa\n",
		"class/block/sdc/device/wwid": "naa.6001405aaaa\n",
		"class/block/sdd/device/wwid": "naa.6001405bbbb\n",
		"class/block/sdb1/partition":  "1",
		"class/block/dm-0/slaves/sde": "",
		"class/block/dm-0/slaves/sdf": "",
	})
	for _, tc := range []struct {
		p    path
		want []string
	}{
		{path{dev: "/dev/sdb"}, []string{"/dev/sdb", "/dev/sdc"}},
		{path{dev: "/dev/sdd"}, []string{"/dev/sdd"}},
		{path{dev: "/dev/dm-0", multipath: true}, []string{"/dev/sde", "/dev/sdf"}},
		{path{dev: "/dev/dm-9", multipath: true}, []string{"/dev/dm-9"}},
		{path{dev: "/dev/vdz"}, []string{"/dev/vdz"}},
	} {
		if got := lunPaths(sysblock.Sysfs(sys), tc.p); !slices.Equal(got, tc.want) {
			t.Errorf("lunPaths(%+v) = %v, want %v", tc.p, got, tc.want)
		}
	}
}

// Diagnose reads each path, asks for its capabilities and re-registers
// this host's key over itself (with APTPL as it was), only where it is
// registered: the exact commands, and what they found.
func TestDiagnose(t *testing.T) {
	f := &execx.Fake{}
	fn := newFencerOn(t, f, 2)
	devs := devsOf(fn)
	caps := strings.Replace(string(fixture(t, "lab-report-capabilities.txt")), "(PTPL_A): 0", "(PTPL_A): 1", 1)
	f.Script = script(
		readKeys(devs[0], keyA, keyB), readRes(t, devs[0], held),
		execx.Call{Argv: []string{"sg_persist", "--in", "--report-capabilities", devs[0]}, Stdout: caps},
		execx.Call{Argv: []string{"sg_persist", "--out", "--register", "--param-rk=" + hexKey(keyB), "--param-sark=" + hexKey(keyB), "--param-aptpl", devs[0]}},
		// node-b was cut off the second LUN: no probe there.
		readKeys(devs[1], keyA), readRes(t, devs[1], held),
		execx.Call{Argv: []string{"sg_persist", "--in", "--report-capabilities", devs[1]}, Stdout: caps},
	)
	checks := fn.Diagnose(context.Background(), []string{"node-a", "node-b"})
	runAll(t, f, nil)
	got := show(checks)
	for _, w := range []string{
		"pass: registered: node-a, node-b; type 5 reservation held",
		"fail: this host's key " + hexKey(keyB) + " is not registered on this path",
		"pass: no PV is a multipath map",
	} {
		if !strings.Contains(got, w) {
			t.Errorf("Diagnose said %s\nwant %q", got, w)
		}
	}
	if doctor.Worst(checks) != doctor.Fail {
		t.Errorf("worst %s, want fail", doctor.Worst(checks))
	}
}

// The configuration as mpathpersist reads it: multipath.conf, then the
// conf.d files beside it (the key may be set in either).
func TestReadMPConf(t *testing.T) {
	dir := t.TempDir()
	testenv.WriteFiles(t, dir, map[string]string{
		"multipath.conf":             "defaults {\n\tuser_friendly_names yes\n}\n",
		"multipath/conf.d/keys.conf": "defaults {\n\treservation_key file\n}\n",
	})
	c := readMPConf(filepath.Join(dir, "multipath.conf"))
	if c.err != nil || !confSetsKey(c.text) || !strings.Contains(c.files, "keys.conf") {
		t.Fatalf("readMPConf = %+v; want both files, the key set", c)
	}
	if c := readMPConf(filepath.Join(dir, "none.conf")); c.err == nil {
		t.Fatal("a missing multipath.conf read without an error")
	}
}

// The doctor's probe registers with APTPL wherever the target can keep
// registrations (as every relocvol registration does), not "as it was": a
// REGISTER without it (a storage admin's, or a probe that read PTPL_A 0
// just before a host registered with it) turns APTPL off for the LU, and
// probes that preserved it kept it off for good (found in the VM lab: the
// doctor warned "PTPL_A 0" on a correct setup until the end).
func TestDiagnoseProbesWithAPTPLWhereCapable(t *testing.T) {
	f := &execx.Fake{}
	fn := newFencer(t, f)
	dev := devOf(fn)
	f.Script = script(
		readKeys(dev, keyA, keyB), readRes(t, dev, held),
		execx.Call{Argv: []string{"sg_persist", "--in", "--report-capabilities", dev}, Stdout: string(fixture(t, "lab-report-capabilities.txt"))},
		execx.Call{Argv: []string{"sg_persist", "--out", "--register", "--param-rk=" + hexKey(keyB), "--param-sark=" + hexKey(keyB), "--param-aptpl", dev}},
	)
	fn.Diagnose(context.Background(), []string{"node-a", "node-b"})
	runAll(t, f, nil)
}
