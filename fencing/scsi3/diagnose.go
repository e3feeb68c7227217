package scsi3

import (
	"context"
	"os"
	"path/filepath"

	"github.com/relocvol/relocvol/internal/doctor"
	"github.com/relocvol/relocvol/internal/execx"
	"github.com/relocvol/relocvol/internal/sysblock"
)

// MultipathD is multipathd's client, which the doctor asks for the key it
// holds for each map that is a PV (it answers over the daemon's abstract
// socket, reachable from the plugin in the host's network namespace).
var MultipathD = execx.Tool{Name: "multipathd", Package: "multipath-tools"}

// Diagnose checks persistent reservations on every path of every LUN of
// the VG as this host sees it now (prVerdicts), and the key multipathd
// holds where a PV is a multipath map. live names the live hosts,
// whose keys must all be there. It changes nothing but APTPL: its
// PERSISTENT RESERVE OUT re-registers this host's key over itself
// (REGISTER, which a path where the key is gone refuses), only where it is
// registered, with APTPL where the target can keep registrations (as
// every relocvol registration).
func (f *Fencer) Diagnose(ctx context.Context, live []string) []doctor.Check {
	pvs, err := f.paths(ctx)
	if err != nil {
		return []doctor.Check{doctor.Failed("pr", "see the vg and pv checks", "cannot list the LUNs to check: %v", err)}
	}
	keys := make(map[uint64]string, len(live))
	for _, h := range live {
		keys[KeyFor(h)] = h
	}
	var facts []pathFacts
	var maps []string
	for _, p := range pvs {
		if p.multipath {
			maps = append(maps, p.dev)
		}
		for _, dev := range lunPaths(sysblock.Sysfs(f.sysfs), p) {
			facts = append(facts, f.pathFacts(ctx, p.dev, dev))
		}
	}
	checks := prVerdicts(f.key, keys, facts)
	var mk []mapKey
	for _, m := range maps {
		out, err := f.run.Run(ctx, MultipathD.Name, "getprkey", "map", filepath.Base(m))
		mk = append(mk, mapKey{dev: m, out: string(out), err: err})
	}
	var conf mpConf
	if len(maps) > 0 {
		conf = readMPConf(f.mpConf)
	}
	return append(checks, multipathVerdict(f.key, mk, conf))
}

// readMPConf reads the multipath configuration as mpathpersist here reads
// it: file, then the *.conf of /etc/multipath/conf.d beside it.
func readMPConf(file string) mpConf {
	b, err := os.ReadFile(file)
	if err != nil {
		return mpConf{err: err}
	}
	c := mpConf{text: string(b), files: file}
	more, _ := filepath.Glob(filepath.Join(filepath.Dir(file), "multipath", "conf.d", "*.conf"))
	for _, m := range more {
		b, err := os.ReadFile(m)
		if err != nil {
			return mpConf{err: err}
		}
		c.text += "\n" + string(b)
		c.files += ", " + m
	}
	return c
}

// pathFacts reads one path (a SCSI disk) of lun.
func (f *Fencer) pathFacts(ctx context.Context, lun, dev string) pathFacts {
	p := path{dev: dev}
	s, err := f.state(ctx, p)
	pf := pathFacts{dev: dev, lun: lun, keys: s.keys, res: s.res, readErr: err}
	if err != nil {
		return pf
	}
	out, err := f.pr(ctx, p, "--in", "--report-capabilities")
	if err == nil {
		pf.caps, err = ParseCapabilityReport(out)
	}
	pf.capsErr = err
	if contains(s.keys, f.key) {
		args := []string{"--out", "--register", "--param-rk=" + hexKey(f.key), "--param-sark=" + hexKey(f.key)}
		if pf.caps.PTPLCapable {
			// As relocvol registers: a REGISTER without it turns APTPL
			// off for the LU, and one that preserved PTPL_A as read
			// would keep it off once anything had.
			args = append(args, "--param-aptpl")
		}
		_, pf.outErr = f.pr(ctx, p, args...)
		pf.outTry = true
	}
	return pf
}

// lunPaths lists the SCSI disks through which this host reaches the LUN of
// PV path p: a multipath map's paths, or the disk and every other disk
// with its WWID (a second path that multipath does not manage: LVM then
// sees the PV twice, or ignores it, see the pv checks).
func lunPaths(sys sysblock.Sysfs, p path) []string {
	name := filepath.Base(p.dev)
	if p.multipath {
		paths := sys.Paths(name)
		if len(paths) == 0 {
			return []string{p.dev} // read through the map
		}
		out := make([]string, len(paths))
		for i, n := range paths {
			out[i] = "/dev/" + n
		}
		return out
	}
	wwid, err := sys.WWID(name)
	if err != nil {
		return []string{p.dev}
	}
	out := []string{p.dev}
	for _, n := range sys.Disks()[wwid] {
		if n != name {
			out = append(out, "/dev/"+n)
		}
	}
	return out
}
