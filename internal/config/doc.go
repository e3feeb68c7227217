package config

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// FlagTable is the Markdown table of every setting that
// docs/configuration.md shows (TestConfigurationDoc keeps the two in step):
// the flag, its variable, its default, the managed plugin's default where
// it differs (plugin: the manifest's env values by variable), and what it
// means (the flag's own usage, as --help prints it).
func FlagTable(fs *pflag.FlagSet, plugin map[string]string) string {
	var b strings.Builder
	b.WriteString("| flag | variable | default | in the managed plugin | meaning |\n|---|---|---|---|---|\n")
	fs.VisitAll(func(f *pflag.Flag) {
		env := FlagEnv(f)
		def := shown(f.DefValue)
		inPlugin := "the same"
		if v, ok := plugin[env]; ok && !sameValue(f, v) {
			inPlugin = shown(v)
		}
		fmt.Fprintf(&b, "| `--%s` | `%s` | %s | %s | %s |\n", f.Name, env, def, inPlugin, strings.ReplaceAll(f.Usage, "|", `\|`))
	})
	return b.String()
}

// shown is a default as the table shows it.
func shown(v string) string {
	if v == "" || v == "[]" {
		return "empty"
	}
	return "`" + strings.Trim(v, "[]") + "`"
}

// sameValue reports whether the manifest's value v means the flag's
// default (durations in any spelling: 10m is 10m0s).
func sameValue(f *pflag.Flag, v string) bool {
	if f.Value.Type() == "duration" {
		a, errA := time.ParseDuration(f.DefValue)
		b, errB := time.ParseDuration(v)
		return errA == nil && errB == nil && a == b
	}
	return shown(v) == shown(f.DefValue)
}
