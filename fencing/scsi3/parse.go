package scsi3

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

var (
	genRe     = regexp.MustCompile(`PR generation=0x([0-9a-fA-F]+)`)
	keyLineRe = regexp.MustCompile(`^\s*(?:Key\s*=\s*)?0x([0-9a-fA-F]+)\s*$`)
)

// ParseKeys reads `sg_persist --in --read-keys` (or mpathpersist) output.
func ParseKeys(out []byte) ([]uint64, error) {
	text := string(out)
	if !genRe.MatchString(text) {
		return nil, fmt.Errorf("unexpected read-keys output: %s", excerpt(text))
	}
	if strings.Contains(text, "NO registered reservation keys") {
		return nil, nil
	}
	var keys []uint64
	for _, line := range strings.Split(text, "\n") {
		m := keyLineRe.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		k, err := strconv.ParseUint(m[1], 16, 64)
		if err != nil {
			return nil, fmt.Errorf("key %s: %w", excerpt(m[1]), err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// Reservation is what `--read-reservation` says.
type Reservation struct {
	Held bool
	Key  uint64
	Type string // e.g. "Write Exclusive, registrants only"
}

var (
	resKeyRe = regexp.MustCompile(`Key\s*=\s*0x([0-9a-fA-F]+)`)
	// sg_persist says "type: …", mpathpersist "type = …".
	resTypeRe = regexp.MustCompile(`type\s*[:=]\s*(.+?)\s*$`)
)

// ParseReservation reads `sg_persist --in --read-reservation` (or
// mpathpersist) output.
func ParseReservation(out []byte) (Reservation, error) {
	text := string(out)
	if !genRe.MatchString(text) {
		return Reservation{}, fmt.Errorf("unexpected read-reservation output: %s", excerpt(text))
	}
	if strings.Contains(text, "NO reservation held") {
		return Reservation{}, nil
	}
	m := resKeyRe.FindStringSubmatch(text)
	if m == nil {
		return Reservation{}, fmt.Errorf("read-reservation output names no key: %s", excerpt(text))
	}
	k, err := strconv.ParseUint(m[1], 16, 64)
	if err != nil {
		return Reservation{}, fmt.Errorf("reservation key %s: %w", excerpt(m[1]), err)
	}
	r := Reservation{Held: true, Key: k}
	for _, line := range strings.Split(text, "\n") {
		if t := resTypeRe.FindStringSubmatch(line); t != nil {
			r.Type = t[1]
		}
	}
	return r, nil
}

var ptplRe = regexp.MustCompile(`Persist Through Power Loss Capable\s*\(PTPL_C\):\s*([01])`)

// ParseCapabilities reads `sg_persist --in --report-capabilities` output:
// whether the target can keep registrations through a power loss (APTPL).
func ParseCapabilities(out []byte) (ptpl bool, err error) {
	m := ptplRe.FindSubmatch(out)
	if m == nil {
		return false, fmt.Errorf("unexpected report-capabilities output: %s", excerpt(string(out)))
	}
	return string(m[1]) == "1", nil
}

// excerpt is a tool's output as an error quotes it: trimmed, quoted (so
// that control characters and invalid UTF-8 show as escapes) and cut after
// 300 characters, so that garbage of any size makes a readable error and
// log line.
func excerpt(out string) string {
	q := strconv.Quote(strings.TrimSpace(out))
	if len(q) <= 300 {
		return q
	}
	return q[:300] + fmt.Sprintf("… (%d bytes in all)", len(out))
}
