package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/relocvol/relocvol/controller/api"
	"github.com/relocvol/relocvol/internal/config"
)

// clientFlags are the flags every API command shares: the API and its
// token (config.Client, read as the plugin reads its settings) and --json.
type clientFlags struct {
	config.Client
	json bool
	// c is the API client the flags make (bind's PersistentPreRunE), for
	// every command apiCmds binds.
	c *api.Client
}

func (f *clientFlags) bind(cmd *cobra.Command) {
	f.Client = config.ClientDefaults()
	f.Client.Bind(cmd.PersistentFlags())
	cmd.PersistentFlags().BoolVar(&f.json, "json", false, "print the API's JSON instead of a table")
	cmd.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		if err := config.ApplyEnv(cmd.Flags(), "api", "token", "token-file", "api-ca"); err != nil {
			return err
		}
		_, fromEnv := os.LookupEnv(config.EnvName("api-token-file"))
		f.Client.TokenFileGiven = fromEnv || cmd.Flags().Changed("token-file")
		if err := f.Client.Complete(); err != nil {
			return err
		}
		tokenFrom := "--token (RELOCVOL_API_TOKEN)"
		if f.Token == "" {
			tokenFrom = f.TokenFile
		}
		// Without a token the request still goes: an unreachable API says
		// so, and a refusal says why this CLI had none.
		noToken := f.Client.LoadToken()
		f.c = api.NewClient(f.API, f.Token)
		f.c.TokenFrom, f.c.NoToken = tokenFrom, noToken
		if f.CA != "" {
			return f.c.WithCA(f.CA)
		}
		return nil
	}
}

// apiCmds are the commands that talk to the REST API.
func apiCmds() []*cobra.Command {
	f := &clientFlags{}
	cmds := []*cobra.Command{
		listCmd(f, "status", "Show the cluster at a glance", "/v1/status", (*api.Client).Status, printStatus),
		listCmd(f, "hosts", "List the hosts: alive, lease age, leader, agent (may run apps), fenced", "/v1/hosts", (*api.Client).Hosts, printHosts),
		listCmd(f, "volumes", "List the volumes: owner, epoch, size, backend", "/v1/volumes", (*api.Client).Volumes, printVolumes),
		listCmd(f, "apps", "List the relocatable apps: desired and actual host", "/v1/apps", (*api.Client).Apps, printApps),
		eventsCmd(f),
		moveCmd(f),
		listCmd(f, "local", "Show this host as it sees itself, without etcd: lease, self-fencing, mounted volumes", "/v1/local", (*api.Client).Local, printLocal),
		forgetMountsCmd(f),
		maintenanceCmd(f),
		volumeCmd(f),
		vgCmd(f),
		doctorCmd(f),
	}
	for _, c := range cmds {
		f.bind(c)
	}
	return cmds
}

// listCmd is a command that prints what the API answers at path: the JSON
// as is with --json, else what get decodes, through print.
func listCmd[T any](f *clientFlags, use, short, path string, get func(*api.Client, context.Context) (T, error), print func(io.Writer, T)) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			c := f.c
			if f.json {
				raw, err := c.Raw(ctx, path)
				if err != nil {
					return err
				}
				_, err = fmt.Fprintln(cmd.OutOrStdout(), string(raw))
				return err
			}
			v, err := get(c, ctx)
			if err != nil {
				return err
			}
			print(cmd.OutOrStdout(), v)
			return nil
		},
	}
}

func eventsCmd(f *clientFlags) *cobra.Command {
	var filter api.EventFilter
	var since string
	var followNew bool
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Show the relocation timeline: each phase with its time and duration (--follow: as it happens)",
		Long: `Show the relocation timeline: each phase of each move and failover, with
its time, its host and how long it took.

With --follow it goes on printing each event as the hosts write it, one
line each, until interrupted (like docker events); --since keeps only the
events from that moment on.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if filter.Limit < 1 || filter.Limit > 10000 {
				return fmt.Errorf("--limit %d: give a number of events from 1 to 10000", filter.Limit)
			}
			from, err := parseSince(since, time.Now())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if followNew {
				return f.c.FollowEvents(cmd.Context(), filter, func(e api.Event) error {
					if e.At.Before(from) {
						return nil
					}
					if f.json {
						b, err := json.Marshal(e)
						if err != nil {
							return err
						}
						_, err = fmt.Fprintln(out, string(b))
						return err
					}
					_, err := fmt.Fprintln(out, eventLine(e))
					return err
				})
			}
			ev, err := f.c.Events(cmd.Context(), filter)
			if err != nil {
				return err
			}
			ev = slices.DeleteFunc(ev, func(e api.Event) bool { return e.At.Before(from) })
			if f.json {
				return printJSON(out, ev)
			}
			printEvents(out, ev)
			return nil
		},
	}
	cmd.Flags().StringVar(&filter.App, "app", "", "only this app's relocations")
	cmd.Flags().StringVar(&filter.Relocation, "relocation", "", "only this relocation (its ID)")
	cmd.Flags().IntVar(&filter.Limit, "limit", 50, "at most this many events, the newest")
	cmd.Flags().BoolVarP(&followNew, "follow", "f", false, "go on printing each event as it is written, until interrupted")
	cmd.Flags().StringVar(&since, "since", "", "only events from then on: a duration ago (10m, 2h) or a time (2026-12-03T18:00:00Z)")
	return cmd
}

// parseSince reads --since: empty (every event), a duration before now, or
// an RFC 3339 time.
func parseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("--since %s: give a duration ago without a sign (10m), or a time", s)
		}
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("--since %q: give a duration ago (10m, 2h) or a time (2026-12-03T18:00:00Z)", s)
}

// eventLine is one event of events --follow, printed as it arrives (a
// table cannot be aligned before its rows are known), as docker events
// does.
func eventLine(e api.Event) string {
	return fmt.Sprintf("%s  %s  %s %s->%s  ", e.At.Local().Format("2006-01-02"), e.App, e.Kind, e.From, e.To) + stepLine(e)
}

func moveCmd(f *clientFlags) *cobra.Command {
	var to string
	var wait bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "move APP --to HOST",
		Short: "Move an app to another host: stop, unmount and release on its host, then mount and start on HOST",
		Long: `Move an app (a container labelled relocvol.relocate=true) to another host.

The app's host stops and removes its container, which unmounts and releases
the volumes; then HOST claims, activates and mounts them and starts the
container. Each step is printed as it happens, then the total time.`,
		Args: args(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if to == "" {
				return fmt.Errorf("--to is required: name the host to move %s to (relocvol hosts lists them)", args[0])
			}
			c := f.c
			rel, err := c.Move(cmd.Context(), args[0], to)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if !wait {
				if f.json {
					return printJSON(out, rel)
				}
				_, err := fmt.Fprintf(out, "moving %s from %s to %s (relocation %s); follow it with: relocvol events --relocation %s\n", args[0], rel.From, rel.To, rel.ID, rel.ID)
				return err
			}
			if !f.json {
				fmt.Fprintf(out, "moving %s from %s to %s (relocation %s)\n", args[0], rel.From, rel.To, rel.ID)
			}
			return follow(cmd.Context(), c, rel, timeout, out, f.json)
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "the host to move the app to")
	cmd.Flags().BoolVar(&wait, "wait", true, "print each step until the app runs on the new host")
	cmd.Flags().DurationVar(&timeout, "timeout", 3*time.Minute, "how long to wait for the move to finish")
	return cmd
}

// follow prints a relocation's events as they arrive, until it is done:
// the API streams them as they are written (GET /v1/events?follow=true).
func follow(ctx context.Context, c *api.Client, rel api.Relocation, timeout time.Duration, out io.Writer, asJSON bool) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	errDone := errors.New("done")
	err := c.FollowEvents(ctx, api.EventFilter{Relocation: rel.ID, Limit: 1000}, func(e api.Event) error {
		if asJSON {
			b, _ := json.Marshal(e)
			fmt.Fprintln(out, string(b))
		} else {
			fmt.Fprintln(out, "  "+stepLine(e))
		}
		if e.Phase != "done" {
			return nil
		}
		if !asJSON {
			fmt.Fprintf(out, "moved %s from %s to %s in %s\n", e.App, rel.From, rel.To, ms(e.TookMS))
		}
		return errDone
	})
	switch {
	case errors.Is(err, errDone):
		return nil
	case err != nil:
		return err
	case ctx.Err() == context.DeadlineExceeded:
		return fmt.Errorf("the move of relocation %s has not finished after %s; it goes on: follow it with relocvol events --relocation %s", rel.ID, timeout, rel.ID)
	default:
		return ctx.Err()
	}
}

func ms(v int64) string { return (time.Duration(v) * time.Millisecond).String() }

// stepLine is one timeline step for humans.
func stepLine(e api.Event) string {
	s := fmt.Sprintf("%s  %-9s on %-10s took %-8s at +%s", e.At.Local().Format("15:04:05.000"), e.Phase, e.Host, ms(e.TookMS), ms(e.SinceStartMS))
	if e.Detail != "" {
		s += "  " + e.Detail
	}
	if e.Error != "" {
		s += "  ERROR: " + e.Error
	}
	return s
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func table(w io.Writer, header string, rows [][]string) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	_ = tw.Flush()
}

func yes(b bool) string {
	if b {
		return "yes"
	}
	return "-"
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func printStatus(w io.Writer, s api.Status) {
	alive := "alive"
	if !s.Alive {
		alive = "NO CURRENT LEASE"
	}
	fmt.Fprintf(w, "host:       %s (%s, version %s)\n", s.Host, alive, s.Version)
	fmt.Fprintf(w, "leader:     %s\n", dash(s.Leader))
	fmt.Fprintf(w, "hosts:      %d alive of %d\n", s.HostsAlive, s.Hosts)
	fmt.Fprintf(w, "volumes:    %d\n", s.Volumes)
	fmt.Fprintf(w, "apps:       %d (%d relocating)\n", s.Apps, s.Relocating)
}

func printLocal(w io.Writer, l api.Local) {
	alive := "alive"
	if !l.Alive {
		alive = "NOT ALIVE: refuses Mounts, self-fences"
	}
	fmt.Fprintf(w, "host:          %s (%s)\n", l.Host, alive)
	fmt.Fprintf(w, "lease renewed: %.1fs ago (cut-off at %.2fs)\n", l.SinceRenewalSeconds, l.CutoffSeconds)
	if sf := l.SelfFencing; sf != nil {
		state := "done"
		switch {
		case sf.Active && len(sf.Left) > 0:
			state = fmt.Sprintf("ACTIVE, volumes still mounted: %s", strings.Join(sf.Left, ", "))
		case sf.Active:
			state = "active, nothing relocvol left mounted"
		}
		fmt.Fprintf(w, "self-fencing:  %s (since %s, %d passes, stopped %s)\n", state, sf.Since.Format(time.RFC3339), sf.Passes, dash(strings.Join(sf.Stopped, ", ")))
		if sf.Error != "" {
			fmt.Fprintf(w, "  last error:  %s\n", sf.Error)
		}
	}
	var names []string
	for _, v := range l.Mounted {
		names = append(names, v.Name)
	}
	fmt.Fprintf(w, "mounted here:  %s\n", dash(strings.Join(names, ", ")))
}

func forgetMountsCmd(f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "forget-mounts VOLUME",
		Short: "Forget this host's mount IDs of VOLUME that Docker will never unmount, then unmount and release it",
		Long: `Forget the mount IDs a host counts for VOLUME when Docker will never
unmount them: the volume shows "in use" although no container uses it (the
plugin died between mounting and answering Docker, or Docker forgot an ID
while the plugin was down). Where the plugin drives the host's Docker engine
(RELOCVOL_DOCKER_HOST) it does this by itself within a minute; use this
command on hosts without one. Run it against the API of the host that holds
the volume (--api); it refuses while a running container there uses it.`,
		Args: args(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.c.ForgetMounts(cmd.Context(), args[0]); err != nil {
				return err
			}
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "forgot the mounts of %s: unmounted and released\n", args[0])
			return err
		},
	}
}

func volumeCmd(f *clientFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "volume",
		Short: "Change a volume: grow",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return fmt.Errorf("%s needs a subcommand: relocvol volume grow NAME SIZE (see relocvol volume --help)", cmd.CommandPath())
		},
	}
	grow := &cobra.Command{
		Use:   "grow NAME SIZE",
		Short: "Grow a volume, in use or not, to SIZE (e.g. 20G): its storage, then its filesystem online",
		Long: `Grow volume NAME to SIZE, read as docker volume create reads its size
option (512M, 20G, 1.5T: binary units), while containers use it: the
storage first (lvextend in the shared VG, or the loop image), then the
filesystem, online (resize2fs, xfs_growfs), on the host that has the volume
mounted, whichever host's API you ask. A volume no host mounts grows its
filesystem when it is next mounted. SIZE below the volume's size is
refused: a filesystem in use cannot shrink. The same size again is a
success, and retries a filesystem that did not follow.

ext4 grows online only where the plugin has CAP_SYS_RESOURCE (it asks for
it; scripts/build-plugin.sh leaves it out where the Docker engine cannot
grant it); there it grows at the volume's next mount. xfs grows online
everywhere.`,
		Args: args(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			g, err := f.c.GrowVolume(cmd.Context(), args[0], args[1])
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if f.json {
				return printJSON(out, g)
			}
			_, err = fmt.Fprintln(out, growLine(g))
			return err
		},
	}
	cmd.AddCommand(grow)
	return cmd
}

// growLine says how a grow went.
func growLine(g api.Grow) string {
	if g.By == "" {
		return fmt.Sprintf("volume %s is %s already: nothing to grow", g.Volume, g.SizeHuman)
	}
	grew := fmt.Sprintf("volume %s grew from %s to %s", g.Volume, g.FromHuman, g.SizeHuman)
	switch g.Filesystem {
	case api.FSGrown:
		return fmt.Sprintf("%s: its filesystem was grown on host %s", grew, g.Host)
	case api.FSGrowing:
		return fmt.Sprintf("%s; host %s is growing its filesystem (relocvol volumes shows when it is done)", grew, g.Host)
	}
	return fmt.Sprintf("%s; its filesystem grows when the volume is next mounted: %s", grew, g.Detail)
}

func vgCmd(f *clientFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "vg",
		Short: "Change the shared volume group (lvm backend): extend",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return fmt.Errorf("%s needs a subcommand: relocvol vg extend DEVICE... (see relocvol vg --help)", cmd.CommandPath())
		},
	}
	extend := &cobra.Command{
		Use:   "extend DEVICE...",
		Short: "Add LUNs (multipath maps) to the shared VG, every host registered on them first",
		Long: `Add DEVICE... (as this host names them, e.g. /dev/mapper/mpathb) to the
shared volume group, instead of pvcreate and vgextend by hand, which can
race another host's lvcreate and leave the new LUN unfenced:

  1. under the cluster's lock of VG changes, pvcreate each device that is
     no PV yet (a device holding a filesystem or partitions is refused:
     nothing is wiped);
  2. every live host refreshes its LVM device hints (pvscan --cache),
     finds the new PVs and registers its reservation key on every path of
     them (the first reserves them);
  3. only once every live host has, vgextend, under the VG's metadata
     lock that every lvcreate takes.

Only a whole SCSI disk or a multipath map that nothing holds is taken.
Before step 3, every other relocvol key on the LUN (a host that is down, a
failed extend's leftovers) is removed; another system's key refuses it.
A host that does not see the LUN, or cannot register on it, refuses, and
nothing is added (the PV labels written in step 1 are removed). Attach the
LUN on every host first (iSCSI rescan, multipath). Run it as root on any
host of the cluster: the API serves it only on the host's root-only
socket. It waits up to 5 minutes, and goes on if interrupted.`,
		Args: func(cmd *cobra.Command, got []string) error {
			if len(got) == 0 {
				return fmt.Errorf("%s takes at least 1 device: use relocvol vg extend DEVICE... (e.g. /dev/mapper/mpathb)", cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			x, err := f.c.ExtendVG(cmd.Context(), args)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if f.json {
				return printJSON(out, x)
			}
			_, err = fmt.Fprintf(out, "added %s to volume group %s (asked on host %s): every live host is registered on it\n", strings.Join(x.Devices, ", "), x.VG, x.Host)
			return err
		},
	}
	cmd.AddCommand(extend)
	return cmd
}

func maintenanceCmd(f *clientFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "maintenance on|off HOST",
		Short: "Announce (on) or end (off) a host's maintenance: no failover of it meanwhile",
		Long: `Announce maintenance of HOST: until it ends, peers neither fence the
host nor take its volumes or apps, so its plugin may be disabled,
reconfigured or upgraded while its containers keep running. It ends at the
deadline (--for), or with "maintenance off", after which a host that is
really gone is failed over as usual. A plugin that stops cleanly with
volumes mounted announces one by itself (RELOCVOL_STOP_MAINTENANCE) and
ends it when it is back.`,
		Args: args(2),
	}
	var d time.Duration
	var reason string
	cmd.Flags().DurationVar(&d, "for", 10*time.Minute, "how long (10s to 24h)")
	cmd.Flags().StringVar(&reason, "reason", "", "why, shown in relocvol hosts and in refused takeovers")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		out := cmd.OutOrStdout()
		switch args[0] {
		case "on":
			m, err := f.c.SetMaintenance(cmd.Context(), args[1], d, reason)
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(out, m)
			}
			_, err = fmt.Fprintf(out, "host %s is in maintenance until %s: it is not failed over before then (end it early with: relocvol maintenance off %s)\n", m.Host, m.Until.Local().Format(time.RFC3339), m.Host)
			return err
		case "off":
			if err := f.c.EndMaintenance(cmd.Context(), args[1]); err != nil {
				return err
			}
			_, err := fmt.Fprintf(out, "host %s is no longer in maintenance: if it is down it is failed over now\n", args[1])
			return err
		}
		return fmt.Errorf("unknown action %q: use relocvol maintenance on HOST --for 10m, or relocvol maintenance off HOST", args[0])
	}
	return cmd
}

func printHosts(w io.Writer, hosts []api.Host) {
	var rows [][]string
	for _, h := range hosts {
		state, lease := "dead", "-"
		if h.Alive {
			state, lease = "alive", fmt.Sprintf("%.1fs ago", h.LeaseAgeSeconds)
		}
		if h.Fenced {
			state = "fenced by " + h.FencedBy
		}
		if m := h.Maintenance; m != nil {
			state += fmt.Sprintf(" (maintenance until %s)", m.Until.Local().Format("15:04:05"))
		}
		rows = append(rows, []string{h.Name, state, lease, yes(h.Leader), yes(h.Agent), fmt.Sprint(h.Apps), fmt.Sprint(h.Volumes), dash(h.Version)})
	}
	table(w, "HOST\tSTATE\tLEASE RENEWED\tLEADER\tAGENT\tAPPS\tVOLUMES\tVERSION", rows)
}

func printVolumes(w io.Writer, vols []api.Volume) {
	var rows [][]string
	for _, v := range vols {
		owner := dash(v.Owner)
		if v.Owner != "" && !v.OwnerAlive {
			owner += " (dead)"
		}
		rows = append(rows, []string{v.Name, v.SizeHuman, v.FS, v.Backend, v.State, owner, fmt.Sprint(v.Epoch), fmt.Sprint(v.Mounts)})
	}
	table(w, "VOLUME\tSIZE\tFS\tBACKEND\tSTATE\tOWNER\tEPOCH\tMOUNTS", rows)
}

func printApps(w io.Writer, apps []api.App) {
	var rows [][]string
	for _, a := range apps {
		rel := "-"
		if r := a.Relocation; r != nil {
			rel = fmt.Sprintf("%s %s -> %s", r.Kind, r.From, r.To)
		}
		actual := dash(a.ActualHost)
		if a.Stopped {
			actual = "stopped"
		}
		rows = append(rows, []string{a.Name, a.Image, strings.Join(a.Volumes, ","), a.DesiredHost, actual, dash(strings.Join(a.Allowed, ",")), rel})
	}
	table(w, "APP\tIMAGE\tVOLUMES\tPLACED ON\tRUNNING ON\tALLOWED\tRELOCATION", rows)
}

func printEvents(w io.Writer, ev []api.Event) {
	var rows [][]string
	for _, e := range ev {
		detail := e.Detail
		if e.Error != "" {
			detail = strings.TrimSpace(detail + " ERROR: " + e.Error)
		}
		rows = append(rows, []string{e.At.Local().Format("2006-01-02 15:04:05.000"), e.App, e.Kind + " " + e.From + "->" + e.To,
			e.Phase, e.Host, ms(e.TookMS), "+" + ms(e.SinceStartMS), detail})
	}
	table(w, "TIME\tAPP\tRELOCATION\tPHASE\tHOST\tTOOK\tSINCE START\tDETAIL", rows)
}
