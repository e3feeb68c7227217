package lvm

import (
	"strings"
	"testing"

	"github.com/relocvol/relocvol/internal/testenv"
)

// The fuzz tests of LVM's JSON reports are seeded with the recorded ones:
// handwritten here, and the VM lab's captures of real lvs and vgs
// (e2e/vmlab/testdata). `go test` runs the seeds and any failing input
// kept under testdata/fuzz; scripts/test.sh fuzzes each briefly.

func FuzzParseLVs(f *testing.F) {
	testenv.FuzzSeeds(f, "*lvs*.json", "lvs-json-*.stdout")
	f.Add([]byte(`{"report":[{"lv":[{"lv_name":"rv-x","lv_attr":"-wi-a-----","lv_size":"-8388608"}]}]}`))
	f.Fuzz(func(t *testing.T, out []byte) {
		lvs, err := parseLVs(out)
		if err != nil {
			return
		}
		for _, v := range lvs {
			if v.bytes < 0 {
				t.Fatalf("LV %q of size %d: a size is never negative", v.Name, v.bytes)
			}
			if v.active != (len(v.Attr) >= 5 && v.Attr[4] != '-') {
				t.Fatalf("LV %q with attributes %q counted active %v", v.Name, v.Attr, v.active)
			}
		}
	})
}

func FuzzParsePVs(f *testing.F) {
	testenv.FuzzSeeds(f, "*pvs*.json")
	f.Fuzz(func(t *testing.T, out []byte) {
		pvs, err := parsePVs(out, "rvdocker")
		if err != nil {
			return
		}
		for _, p := range pvs {
			// A PV fencing would act on is a device this host sees.
			if p == "" || p == "[unknown]" {
				t.Fatalf("PV %q returned for fencing", p)
			}
		}
	})
}

func FuzzParseVGTags(f *testing.F) {
	testenv.FuzzSeeds(f, "*vgs*.json", "vgs-json.stdout")
	f.Fuzz(func(t *testing.T, out []byte) {
		tags, err := parseVGTags(out)
		if err != nil {
			return
		}
		for _, tag := range tags {
			if tag == "" || tag != strings.TrimSpace(tag) || strings.Contains(tag, ",") {
				t.Fatalf("tag %q", tag)
			}
		}
	})
}
