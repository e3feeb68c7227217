package cluster

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
	archive "github.com/moby/go-archive"
)

// The harness drives the host's engine (the nodes' containers, their
// network, the images they load) through the Docker Go SDK: typed answers
// instead of CLI output to parse. What runs inside a node (its docker CLI,
// the product as an operator uses it) goes through Exec.

// hostEngine is the client of the host's engine (DOCKER_HOST or the
// default socket), made once for the test process.
var hostEngine = sync.OnceValues(func() (*client.Client, error) {
	return client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
})

// engine returns the host's engine client and a context bounded by
// cmdTimeout, as each CLI command was.
func engine() (*client.Client, context.Context, context.CancelFunc, error) {
	cli, err := hostEngine()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("the host's Docker engine: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	return cli, ctx, cancel, nil
}

// engineDo runs one call on the host's engine; an error names what.
func engineDo(what string, f func(context.Context, *client.Client) error) error {
	cli, ctx, cancel, err := engine()
	if err != nil {
		return err
	}
	defer cancel()
	if err := f(ctx, cli); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// running reports whether the host's container name is running.
func running(name string) (bool, error) {
	var up bool
	err := engineDo("inspect "+name, func(ctx context.Context, cli *client.Client) error {
		info, err := cli.ContainerInspect(ctx, name)
		if err == nil {
			up = info.State != nil && info.State.Running
		}
		return err
	})
	return up, err
}

// containerLogs is the tail of what container name's entrypoint printed.
func containerLogs(name string, lines int) string {
	var out bytes.Buffer
	err := engineDo("logs of "+name, func(ctx context.Context, cli *client.Client) error {
		rc, err := cli.ContainerLogs(ctx, name, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: fmt.Sprint(lines)})
		if err != nil {
			return err
		}
		defer rc.Close()
		_, err = stdcopy.StdCopy(&out, &out, rc)
		return err
	})
	if err != nil {
		return err.Error()
	}
	return strings.TrimSpace(out.String())
}

// execIn runs args in the host's container name, feeding it stdin when not
// nil, and returns its combined output, trimmed; a non-zero exit is an
// error naming the command, with the end of its output.
func execIn(name string, stdin io.Reader, args ...string) (string, error) {
	cli, ctx, cancel, err := engine()
	if err != nil {
		return "", err
	}
	defer cancel()
	cmd := fmt.Sprintf("exec in %s: %s", name, strings.Join(args, " "))
	ex, err := cli.ContainerExecCreate(ctx, name, container.ExecOptions{
		Cmd: args, AttachStdin: stdin != nil, AttachStdout: true, AttachStderr: true,
	})
	if err != nil {
		return "", fmt.Errorf("%s: %w", cmd, err)
	}
	att, err := cli.ContainerExecAttach(ctx, ex.ID, container.ExecAttachOptions{})
	if err != nil {
		return "", fmt.Errorf("%s: %w", cmd, err)
	}
	defer att.Close()
	// The hijacked connection outlives ctx: close it when ctx ends, so a
	// command that hangs cannot hold the test past cmdTimeout.
	stop := context.AfterFunc(ctx, att.Close)
	defer stop()
	if stdin != nil {
		go func() {
			_, _ = io.Copy(att.Conn, stdin)
			_ = att.CloseWrite()
		}()
	}
	var out bytes.Buffer
	_, cerr := stdcopy.StdCopy(&out, &out, att.Reader)
	s := strings.TrimSpace(out.String())
	if ctx.Err() != nil {
		return s, fmt.Errorf("%s: %w: %s", cmd, ctx.Err(), tail(s, 20))
	}
	if cerr != nil {
		return s, fmt.Errorf("%s: %w: %s", cmd, cerr, tail(s, 20))
	}
	info, err := cli.ContainerExecInspect(ctx, ex.ID)
	if err != nil {
		return s, fmt.Errorf("%s: %w", cmd, err)
	}
	if info.ExitCode != 0 {
		return s, fmt.Errorf("%s: exit status %d: %s", cmd, info.ExitCode, tail(s, 20))
	}
	return s, nil
}

// copyInto copies the host's file or folder src to path dst (its new name)
// in container name, as `docker cp SRC NAME:DST` does.
func copyInto(name, src, dst string) error {
	dir, base := filepath.Split(filepath.Clean(src))
	tar, err := archive.TarWithOptions(dir, &archive.TarOptions{
		IncludeFiles: []string{base},
		RebaseNames:  map[string]string{base: path.Base(dst)},
	})
	if err != nil {
		return fmt.Errorf("copy %s into %s: %w", src, name, err)
	}
	defer tar.Close()
	return engineDo(fmt.Sprintf("copy %s into %s:%s", src, name, dst), func(ctx context.Context, cli *client.Client) error {
		return cli.CopyToContainer(ctx, name, path.Dir(dst), tar, container.CopyToContainerOptions{})
	})
}

// saveImages writes the host's images to the tarball file, as `docker
// save -o` does.
func saveImages(file string, images []string) error {
	return engineDo("save "+strings.Join(images, " "), func(ctx context.Context, cli *client.Client) error {
		rc, err := cli.ImageSave(ctx, images)
		if err != nil {
			return err
		}
		defer rc.Close()
		f, err := os.Create(file)
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, rc); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	})
}

// removePlugin force-removes plugin name from the host's engine; one
// that is not there is no error.
func removePlugin(name string) error {
	return engineDo("remove plugin "+name, func(ctx context.Context, cli *client.Client) error {
		err := cli.PluginRemove(ctx, name, types.PluginRemoveOptions{Force: true})
		if cerrdefs.IsNotFound(err) {
			return nil
		}
		return err
	})
}

// labelled are the IDs and labels of the host's containers (all, running
// or not) and networks that carry label key.
func labelled(key string) (containers, networks map[string]map[string]string, err error) {
	containers, networks = map[string]map[string]string{}, map[string]map[string]string{}
	f := filters.NewArgs(filters.Arg("label", key))
	err = engineDo("list what carries label "+key, func(ctx context.Context, cli *client.Client) error {
		cs, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
		if err != nil {
			return err
		}
		for _, c := range cs {
			containers[c.ID] = c.Labels
		}
		ns, err := cli.NetworkList(ctx, network.ListOptions{Filters: f})
		if err != nil {
			return err
		}
		for _, n := range ns {
			networks[n.ID] = n.Labels
		}
		return nil
	})
	return containers, networks, err
}

// removeContainer force-removes the host's container name with its
// anonymous volumes; one that is not there is no error.
func removeContainer(name string) error {
	return engineDo("remove "+name, func(ctx context.Context, cli *client.Client) error {
		err := cli.ContainerRemove(ctx, name, container.RemoveOptions{Force: true, RemoveVolumes: true})
		if cerrdefs.IsNotFound(err) {
			return nil
		}
		return err
	})
}

// removeNetwork removes the host's network name; one that is not there is
// no error.
func removeNetwork(name string) error {
	return engineDo("remove network "+name, func(ctx context.Context, cli *client.Client) error {
		err := cli.NetworkRemove(ctx, name)
		if cerrdefs.IsNotFound(err) {
			return nil
		}
		return err
	})
}
