package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/relocvol/relocvol/internal/config"
)

// driverMethods are the VolumeDriver endpoints, by the name the CLI takes.
var driverMethods = []string{"Create", "Remove", "Mount", "Unmount", "Path", "Get", "List", "Capabilities"}

func driverCmd() *cobra.Command {
	socket := config.Defaults().Socket
	timeout := 2 * time.Minute
	cmd := &cobra.Command{
		Use:   "driver METHOD [JSON]",
		Short: "Call the plugin's VolumeDriver socket directly, as Docker does (diagnosis, tests)",
		Long: `Call one VolumeDriver endpoint of a running relocvol plugin and print its
JSON answer. METHOD is one of ` + strings.Join(driverMethods, ", ") + `; JSON is
the request body, e.g.

  relocvol driver Mount '{"Name":"db","ID":"debug-1"}'
  relocvol driver Get '{"Name":"db"}'

It exits with status 1 and prints the plugin's error when the answer has one.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := config.ApplyEnv(cmd.Flags()); err != nil {
				return err
			}
			method := canonicalMethod(args[0])
			if method == "" {
				return fmt.Errorf("unknown method %q: use one of %s", args[0], strings.Join(driverMethods, ", "))
			}
			body := "{}"
			if len(args) == 2 {
				body = args[1]
			}
			if !json.Valid([]byte(body)) {
				return fmt.Errorf("request %q is not JSON: write it like '{\"Name\":\"db\"}'", body)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			out, err := callDriver(ctx, socket, method, body)
			if out != "" {
				fmt.Fprintln(cmd.OutOrStdout(), out)
			}
			return err
		},
	}
	cmd.Flags().StringVar(&socket, "socket", socket, "the plugin's socket (env RELOCVOL_SOCKET)")
	cmd.Flags().DurationVar(&timeout, "timeout", timeout, "how long to wait for the answer")
	return cmd
}

func canonicalMethod(m string) string {
	for _, x := range driverMethods {
		if strings.EqualFold(x, m) {
			return x
		}
	}
	return ""
}

// callDriver posts body to /VolumeDriver.<method> on socket and returns the
// answer; an answer with a non-empty Err is an error carrying that text.
func callDriver(ctx context.Context, socket, method, body string) (string, error) {
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socket)
		},
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://plugin/VolumeDriver."+method, bytes.NewBufferString(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/vnd.docker.plugins.v1.2+json")
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("call %s on %s: %w (is the plugin running? --socket)", method, socket, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", fmt.Errorf("read the answer of %s: %w", method, err)
	}
	var e struct{ Err string }
	if json.Unmarshal(raw, &e) == nil && e.Err != "" {
		return "", fmt.Errorf("%s", e.Err)
	}
	return strings.TrimSpace(string(raw)), nil
}
