package scsi3

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/relocvol/relocvol/internal/doctor"
)

// Capabilities is what `sg_persist --in --report-capabilities` says of a
// target's persist-through-power-loss support and reservation types.
type Capabilities struct {
	PTPLCapable bool // the target can keep registrations through a power loss
	PTPLActive  bool // the last registration asked it to (APTPL)
	WERO        bool // it offers type 5, Write Exclusive, Registrants Only
}

var (
	ptplActiveRe = regexp.MustCompile(`Persist Through Power Loss Active\s*\(PTPL_A\):\s*([01])`)
	typeMaskRe   = regexp.MustCompile(`(?m)^\s*Write Exclusive, registrants only:\s*([01])\s*$`)
)

// ParseCapabilityReport reads `sg_persist --in --report-capabilities`.
func ParseCapabilityReport(out []byte) (Capabilities, error) {
	capable, err := ParseCapabilities(out)
	if err != nil {
		return Capabilities{}, err
	}
	c := Capabilities{PTPLCapable: capable, WERO: true}
	if m := ptplActiveRe.FindSubmatch(out); m != nil {
		c.PTPLActive = string(m[1]) == "1"
	}
	// Without a type mask the target does not say: assume it offers type 5
	// (the reservation check tells).
	if m := typeMaskRe.FindSubmatch(out); m != nil {
		c.WERO = string(m[1]) == "1"
	}
	return c, nil
}

// pathFacts is what the doctor read on one path of a LUN.
type pathFacts struct {
	dev     string // the SCSI disk (one I_T nexus)
	lun     string // the PV (LUN or multipath map) it is a path of
	keys    []uint64
	res     Reservation
	readErr error // PERSISTENT RESERVE IN failed
	caps    Capabilities
	capsErr error
	outErr  error // the PERSISTENT RESERVE OUT probe failed (nil: passed, or not tried)
	outTry  bool  // the probe ran (this host was registered there)
}

// prVerdicts judges every path of every LUN: the target answers PR IN and
// OUT, this host's key is registered, a type 5 reservation is held, APTPL
// is on, every live host's key is there, and no unknown key is. live maps
// the key of every live host to its name; self is this host's key.
func prVerdicts(self uint64, live map[uint64]string, paths []pathFacts) []doctor.Check {
	var out []doctor.Check
	name := func(p pathFacts) string {
		if p.lun != "" && p.lun != p.dev {
			return "pr " + p.dev + " (path of " + p.lun + ")"
		}
		return "pr " + p.dev
	}
	for _, p := range paths {
		n := name(p)
		if p.readErr != nil {
			out = append(out, doctor.Failed(n, "check that the target supports SCSI-3 persistent reservations and that the plugin has CAP_SYS_RAWIO (its config.json asks for it)",
				"the target does not answer PERSISTENT RESERVE IN: %v", p.readErr))
			continue
		}
		var fails []doctor.Check
		if !contains(p.keys, self) {
			fails = append(fails, doctor.Failed(n, "this host registers on every path when it joins: if the path is new (a LUN added, a path that came back), the plugin registers it within seconds; "+
				"if it stays, check that the path belongs to the VG's LUN as LVM sees it (multipath, see the pv checks), or restart the plugin",
				"this host's key %s is not registered on this path (keys: %s): it cannot write through it, and a takeover here cannot prove the path fenced", hexKey(self), keyList(p.keys)))
		}
		switch {
		case !p.res.Held:
			fails = append(fails, doctor.Failed(n, "the plugin takes the reservation when it joins or fences; restart it on one host, or take it by hand: sg_persist --out --reserve --param-rk=<its key> --prout-type=5 "+p.dev,
				"no reservation is held: any host, registered or not, may write"))
		case p.res.Type != typeWERO:
			fails = append(fails, doctor.Failed(n, "release it (sg_persist --out --release --param-rk=KEY --prout-type=N "+p.dev+"): relocvol then takes a type 5 reservation",
				"a %q reservation is held (key %s), not type 5 %q: relocvol cannot fence with it", p.res.Type, hexKey(p.res.Key), typeWERO))
		}
		var missing []string
		for k, h := range live {
			if !contains(p.keys, k) {
				missing = append(missing, fmt.Sprintf("%s (%s)", h, hexKey(k)))
			}
		}
		sort.Strings(missing)
		if len(missing) > 0 {
			fails = append(fails, doctor.Failed(n, "each host registers when it joins and checks every 5 s: look at the plugin log of the host(s) named, and at their paths to the LUN",
				"live host(s) %s not registered on this path: their writes here fail", strings.Join(missing, ", ")))
		}
		var unknown []string
		for _, k := range p.keys {
			if _, ok := live[k]; !ok {
				unknown = append(unknown, hexKey(k))
			}
		}
		if len(unknown) > 0 {
			fails = append(fails, doctor.Warned(n, "a dead relocvol host's key goes when its volumes are taken over (it is fenced then); a key of no relocvol host (another cluster, a host gone for good) may still write: "+
				"remove it from the host that registered it (sg_persist --out --register --param-rk=KEY --param-sark=0 DEVICE), or fence it from a registered host (sg_persist --out --preempt --param-rk=<this host's key> --param-sark=KEY --prout-type=5 DEVICE)",
				"key(s) %s belong to no live host", strings.Join(unknown, ", ")))
		}
		switch {
		case p.capsErr != nil:
			fails = append(fails, doctor.Warned(n, "check the target's persistent reservation support", "the target does not report its capabilities: %v", p.capsErr))
		case !p.caps.PTPLCapable:
			fails = append(fails, doctor.Warned(n, "enable APTPL on the target if it can; otherwise every host registers again when it rejoins after the SAN restarts (the plugin does so)",
				"the target cannot keep registrations through a power loss (no PTPL_C): after the SAN loses power, no host is registered until each rejoins"))
		case !p.caps.PTPLActive:
			fails = append(fails, doctor.Warned(n, "restart the plugin on one host: it registers with APTPL where the target offers it",
				"the target can keep registrations through a power loss, but the last registration did not ask it to (PTPL_A 0)"))
		}
		switch {
		case !p.outTry || p.outErr == nil:
		case errors.Is(p.outErr, ErrReservationConflict):
			// READ KEYS lists every registration, whichever path made it;
			// a REGISTER over this host's own key tells whether this path did.
			fails = append(fails, doctor.Failed(n, "a path the plugin did not register (one multipath does not manage, see the pv checks): let LVM use one path per LUN, or multipath maps",
				"this host's key %s is registered, but not through this path: the target refused a REGISTER over it here (reservation conflict), so writes through this path fail", hexKey(self)))
		default:
			fails = append(fails, doctor.Failed(n, "check that the plugin has CAP_SYS_RAWIO (the kernel requires it for PERSISTENT RESERVE OUT) and that the target accepts it from this host",
				"the target refused PERSISTENT RESERVE OUT (this host's key registered again over itself): %v", p.outErr))
		}
		if len(fails) == 0 {
			holders := make([]string, 0, len(p.keys))
			for _, k := range p.keys {
				holders = append(holders, live[k])
			}
			sort.Strings(holders)
			out = append(out, doctor.Passed(n, "registered: %s; type 5 reservation held (key %s); APTPL on; PERSISTENT RESERVE IN and OUT answered",
				strings.Join(holders, ", "), hexKey(p.res.Key)))
		}
		out = append(out, fails...)
	}
	return out
}

func contains(keys []uint64, k uint64) bool {
	for _, x := range keys {
		if x == k {
			return true
		}
	}
	return false
}

// The /etc/multipath.conf setting a host needs where a PV is a multipath
// map, said the same way by the doctor's fix and by `relocvol host key`.
// relocvol registers through mpathpersist, which reads the host's
// configuration (the plugin's host-etc mount): with reservation_key file
// its REGISTER hands the key to multipathd, which keeps it in
// /etc/multipath/prkeys under the map's WWID and registers the paths it
// adds later (a path that comes back) with it; without a reservation_key,
// writes through such a path fail, and mpathpersist (0.9.x) refuses to
// preempt. Only the defaults section counts: mpathpersist before
// 0.10 ignores a key in a map's own section. One line covers every map and
// every host's own key, so the file is the same on every host.
const (
	MultipathKeySetting = "reservation_key file"
	MultipathReload     = "multipathd reconfigure"
	MultipathFix        = "add " + MultipathKeySetting + " to the defaults section of /etc/multipath.conf (defaults { " + MultipathKeySetting + " }), then " +
		MultipathReload + " and restart the plugin (it hands multipathd its key when it joins); relocvol host key prints it"
)

// mapKey is what multipathd says of one map's reservation key
// (`multipathd getprkey map NAME`): "none", or a key in hex.
type mapKey struct {
	dev string // the PV (multipath map)
	out string
	err error
}

// multipathVerdict judges whether multipathd holds this host's key for
// every map that is a PV: it registers a path it adds later (one that comes
// back as a new I_T nexus) only with that key, and writes through a path it
// did not register fail.
// mpConf is the multipath configuration as the plugin reads it: the text of
// its files (multipath.conf, then conf.d), or why it could not.
type mpConf struct {
	text, files string
	err         error
}

// confSetsKey tells whether a multipath configuration sets reservation_key
// in its defaults section (where mpathpersist before 0.10 looks).
func confSetsKey(conf string) bool {
	depth, inDefaults := 0, false
	for _, line := range strings.Split(conf, "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if depth == 0 && f[0] == "defaults" && strings.Contains(line, "{") {
			inDefaults = true
		}
		if depth == 1 && inDefaults && f[0] == "reservation_key" && len(f) > 1 {
			return true
		}
		depth += strings.Count(line, "{") - strings.Count(line, "}")
		if depth <= 0 {
			depth, inDefaults = 0, false
		}
	}
	return false
}

func multipathVerdict(self uint64, maps []mapKey, conf mpConf) doctor.Check {
	const name = "multipath"
	if len(maps) == 0 {
		return doctor.Passed(name, "no PV is a multipath map (each PV's disk takes the PR commands itself)")
	}
	var held []string
	for _, m := range maps {
		if m.err != nil {
			return doctor.Failed(name, "start multipathd (systemctl enable --now multipathd): it keeps the maps' paths and their registrations",
				"%s is a multipath map but multipathd does not answer (multipathd getprkey): %v", m.dev, m.err)
		}
		got := strings.TrimSpace(m.out)
		k, ok := parseMapKey(got)
		switch {
		case !ok:
			return doctor.Failed(name, MultipathFix,
				"multipathd has no reservation key for %s (getprkey: %q): a path it adds later (one that comes back) is not registered, and writes through it fail", m.dev, got)
		case k != self:
			return doctor.Failed(name, "set "+MultipathKeySetting+" in the defaults section of /etc/multipath.conf (not a key of its own), "+MultipathReload+", and restart the plugin",
				"multipathd's reservation key for %s is %s, not this host's %s: it would register the paths it adds later with a key no host fences", m.dev, hexKey(k), hexKey(self))
		}
		held = append(held, m.dev)
	}
	// What mpathpersist in the plugin reads: the host's file through the
	// host-etc mount. A link that leaves /etc resolves inside the plugin
	// (to nothing), and mpathpersist then runs with no key: every preempt
	// fails ("configured reservation key doesn't match").
	switch {
	case conf.err != nil:
		return doctor.Failed(name, "make /etc/multipath.conf (and /etc/multipath/conf.d) regular files, not links to outside /etc: the plugin sees the host's /etc only",
			"the plugin cannot read the multipath configuration mpathpersist uses (%v): mpathpersist then has no reservation key and every fence fails", conf.err)
	case !confSetsKey(conf.text):
		return doctor.Failed(name, MultipathFix,
			"the multipath configuration as the plugin reads it (%s) sets no reservation_key in its defaults section: mpathpersist's preempt of a dead host fails", conf.files)
	}
	return doctor.Passed(name, "multipathd holds this host's key %s for %s: paths it adds later are registered too", hexKey(self), strings.Join(held, ", "))
}
