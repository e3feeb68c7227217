// Command relocvol is the relocvol host daemon and tool. `relocvol plugin`
// serves the Docker VolumeDriver socket (the managed plugin's entrypoint).
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	root := &cobra.Command{
		Use:           "relocvol",
		Short:         "Docker volumes on shared SAN storage that follow their containers between hosts",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(pluginCmd(), driverCmd(), versionCmd())
	root.AddCommand(apiCmds()...)
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "relocvol:", err)
		os.Exit(1)
	}
}

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Run:   func(*cobra.Command, []string) { fmt.Println(version) },
	}
}
