// Command relocvol is the relocvol host daemon and tool. `relocvol plugin`
// serves the Docker VolumeDriver socket (the managed plugin's entrypoint).
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	err := rootCmd().Execute()
	var ee *exitError
	switch {
	case errors.As(err, &ee):
		if ee.msg != "" {
			fmt.Fprintln(os.Stderr, "relocvol:", ee.msg)
		}
		os.Exit(ee.code)
	case err != nil:
		fmt.Fprintln(os.Stderr, "relocvol:", err)
		os.Exit(1)
	}
}

// rootCmd is the whole command line: every subcommand, and errors that
// point at the help of the command that got bad input.
func rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "relocvol",
		Short:         "Docker volumes on shared SAN storage that follow their containers between hosts",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(pluginCmd(), driverCmd(), hostCmd(), versionCmd())
	root.AddCommand(apiCmds()...)
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return fmt.Errorf("%w: see %s --help", err, cmd.CommandPath())
	})
	return root
}

// args requires n arguments, saying how to call the command when not.
func args(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, got []string) error {
		if len(got) != n {
			return fmt.Errorf("%s takes %d argument(s), got %d: use %s %s", cmd.CommandPath(), n, len(got), cmd.Parent().CommandPath(), cmd.Use)
		}
		return nil
	}
}

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Run:   func(*cobra.Command, []string) { fmt.Println(version) },
	}
}
