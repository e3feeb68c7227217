package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/relocvol/relocvol/fencing/scsi3"
	"github.com/relocvol/relocvol/internal/config"
)

// hostCmd groups what an operator asks of a host before (or without) its
// plugin: it needs neither the API nor etcd, so it works while the host is
// being set up.
func hostCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "host",
		Short: "What a host needs set up outside relocvol (no API or etcd needed): key",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return fmt.Errorf("%s needs a subcommand: relocvol host key [HOST] (see relocvol host --help)", cmd.CommandPath())
		},
	}
	cmd.AddCommand(hostKeyCmd())
	return cmd
}

// hostKey is what relocvol host key --json prints.
type hostKey struct {
	Host string `json:"host"`
	Key  string `json:"key"`
}

func hostKeyCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "key [HOST]",
		Short: "Print a host's SCSI-3 reservation key, and the multipath.conf and storage-array settings that go with it",
		Long: `Print the SCSI-3 reservation key relocvol registers for HOST (derived from
its name, the same on every host and every run), and what to configure with
it: /etc/multipath.conf where the VG's PVs are multipath maps, and the
storage array's host definition. It asks neither the API nor etcd: run it
on any host, before the plugin is installed.

HOST defaults to the name the plugin gives this host: RELOCVOL_HOST, else
the machine's hostname. A managed plugin reads RELOCVOL_HOST from its own
settings (docker plugin inspect relocvol), not from this shell: where it is
set there, give that name. --json prints {"host": …, "key": "0x…"}.`,
		Args: func(cmd *cobra.Command, got []string) error {
			if len(got) > 1 {
				return fmt.Errorf("%s takes at most 1 argument, got %d: use relocvol host key [HOST]", cmd.CommandPath(), len(got))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			host := config.ThisHost()
			if len(args) == 1 {
				host = args[0]
			}
			text, err := hostKeyText(host)
			switch {
			case err != nil && len(args) == 1:
				return fmt.Errorf("HOST: %w", err)
			case err != nil:
				return fmt.Errorf("this host's name (RELOCVOL_HOST, else the hostname): %w; or give the name the plugin runs with: relocvol host key HOST", err)
			case asJSON:
				return printJSON(cmd.OutOrStdout(), hostKey{Host: host, Key: scsi3.KeyHex(host)})
			}
			_, err = fmt.Fprint(cmd.OutOrStdout(), text)
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, `print {"host": …, "key": "0x…"}`)
	return cmd
}

// hostKeyText says what an operator configures with host's reservation
// key, or why host is no name the plugin would run with (a key for it
// would never be registered). The multipath lines are the doctor's fix
// (scsi3.MultipathFix), spelled out: reservation_key file in defaults is
// the one setting, the same on every host.
func hostKeyText(host string) (string, error) {
	if err := config.ValidateHost(host); err != nil {
		return "", err
	}
	key := scsi3.KeyHex(host)
	return fmt.Sprintf(`host %[1]s: SCSI-3 reservation key %[2]s
The plugin registers it by itself when the host joins: nothing to register by hand.

dm-multipath (the VG's PVs are /dev/mapper maps): in /etc/multipath.conf,
the same on every host,

    defaults {
        %[3]s
    }

then: %[4]s
relocvol's mpathpersist (which reads this file: the plugin's host-etc mount)
hands the key to multipathd when it registers; multipathd keeps it in
/etc/multipath/prkeys and registers with it the paths it adds later (one
that comes back): without it, writes through such a path fail, and
mpathpersist 0.9.x refuses to preempt. Only the defaults section
counts (mpathpersist before 0.10 ignores a key in a map's own section).
The plugin hands multipathd its key again each time it joins: after
changing the file, restart it (docker plugin disable, enable).

Without multipath (one path per LUN) there is nothing to configure here.

Storage array, in this host's definition (its WWPNs or IQNs): allow SCSI-3
persistent reservations; a key the array shows or asks for is this one,
%[2]s. An array that registers keys per target port needs
all_tg_pt (mpathpersist --param-alltgpt): all_tg_pt yes in the defaults
section of /etc/multipath.conf.
`, host, key, scsi3.MultipathKeySetting, scsi3.MultipathReload), nil
}
