package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/relocvol/relocvol/controller/api"
	"github.com/relocvol/relocvol/internal/doctor"
)

// exitError ends the command with code, after the command printed what it
// had to (msg, when set, goes to stderr as an error does).
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func doctorCmd(f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "doctor",
		Short: "Check every live host: etcd, lease, clock, storage, SCSI-3 fencing, Docker, settings",
		Long: `Check every live host of the cluster, as each host's plugin sees it, and
say for each warning or failure what to do: etcd's latency and the lease
slack it leaves, the clock against etcd's; the volume group (visible, no
system ID, auto-activation off, each PV seen once, on multipath maps rather
than their paths) or the SAN folder; SCSI-3 persistent reservations on
every path of every PV (PERSISTENT RESERVE IN and OUT answered, this
host's key registered, the type 5 reservation held, APTPL, every live
host's key there and no unknown one; reservation_key in multipathd's
configuration where multipath is used); the Docker engine; and that the
plugin's settings are the same on every host.

Ask any host's API: it asks the others through etcd and waits for them.
Exit status: 0 when every check passed, 2 for warnings only, 1 for any
failure. --json prints the API's answer (GET /v1/doctor).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d, err := f.c.Doctor(cmd.Context())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if f.json {
				if err := printJSON(out, d); err != nil {
					return err
				}
			} else {
				printDoctor(out, d)
			}
			if code := doctor.ExitCode(d.Status); code != 0 {
				return &exitError{code: code}
			}
			return nil
		},
	}
}

// printDoctor prints each host's checks, each warning and failure with
// what to do, and a summary.
func printDoctor(w io.Writer, d api.Doctor) {
	counts := map[doctor.Status]int{}
	for _, r := range d.Hosts {
		s := r.Settings
		fmt.Fprintf(w, "HOST %s (%s, %s fencing, relocvol %s)\n", r.Host, dash(s.Backend), dash(s.Fencing), dash(s.Version))
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, c := range r.Checks {
			counts[c.Status]++
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", strings.ToUpper(string(c.Status)), c.Name, c.Detail)
			if c.Fix != "" {
				fmt.Fprintf(tw, "  \t\tfix: %s\n", c.Fix)
			}
		}
		_ = tw.Flush()
	}
	fmt.Fprintf(w, "%d host(s), %d check(s): %d passed, %d warning(s), %d failure(s): %s\n",
		len(d.Hosts), counts[doctor.Pass]+counts[doctor.Warn]+counts[doctor.Fail], counts[doctor.Pass], counts[doctor.Warn], counts[doctor.Fail], strings.ToUpper(string(d.Status)))
}
