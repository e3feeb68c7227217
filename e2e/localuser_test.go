package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/relocvol/relocvol/internal/store"
	"github.com/relocvol/relocvol/internal/testenv"
)

// nobody is the local user the checks run as: any account on the host
// that is not root.
const nobody = 65534

// localUserEnv carries the attempts to the helper process (the test binary
// run again as nobody): what it tries, and where.
const localUserEnv = "RELOCVOL_E2E_LOCAL_USER"

// localUserJob is what the helper process tries, as nobody.
type localUserJob struct {
	EtcdAddr   string   // host:port of the managed plugin's embedded etcd
	API        string   // base URL of the managed plugin's API
	Host       string   // the managed plugin's host name
	Unreadable []string // files nobody must not be able to read
	CLI        string   // the relocvol CLI
	TokenFile  string   // the API token file root's CLI reads
}

// TestMain runs the tests, or, in the test binary TestManagedPlugin runs
// again as nobody with localUserEnv set, the local user's attempts.
func TestMain(m *testing.M) {
	if raw := os.Getenv(localUserEnv); raw != "" {
		os.Exit(localUserAttempts(raw))
	}
	os.Exit(m.Run())
}

// localUserAttempts makes each attempt of the job raw, printing what came
// of it as JSON (attempt → error, "" when it worked) on a line RESULT.
func localUserAttempts(raw string) int {
	var job localUserJob
	if err := json.Unmarshal([]byte(raw), &job); err != nil {
		fmt.Println("bad job:", err)
		return 2
	}
	out := map[string]string{}
	res := func(name string, err error) {
		out[name] = ""
		if err != nil {
			out[name] = err.Error()
		}
	}
	for _, f := range job.Unreadable {
		_, err := os.ReadFile(f)
		res("read "+f, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// A write to etcd, as a local user would try it: plain HTTP, then TLS
	// without a client certificate (not checking the server's: a local user
	// does not care who answers).
	res("etcd write over http", etcdPut(ctx, "http://"+job.EtcdAddr, nil))
	res("etcd write over https without a client certificate", etcdPut(ctx, "https://"+job.EtcdAddr, &tls.Config{InsecureSkipVerify: true})) //nolint:gosec // the attacker's view
	// A mutating API call with no token, straight and through the CLI.
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut, job.API+"/v1/hosts/"+job.Host+"/maintenance", strings.NewReader(`{"for": "10m", "reason": "a local user"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode < 300 {
			err = nil
		} else {
			err = fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
		}
	}
	res("PUT /v1/hosts/"+job.Host+"/maintenance without a token", err)
	cli, err := exec.CommandContext(ctx, job.CLI, "maintenance", "on", job.Host, "--for", "10m", "--api", job.API, "--token-file", job.TokenFile).CombinedOutput()
	if err != nil {
		err = fmt.Errorf("%w: %s", err, strings.TrimSpace(string(cli)))
	}
	res("relocvol maintenance on", err)
	b, _ := json.Marshal(out)
	fmt.Printf("RESULT %s\n", b)
	return 0
}

// etcdPut writes a key at endpoint with tlsCfg (nil: plain HTTP).
func etcdPut(ctx context.Context, endpoint string, tlsCfg *tls.Config) error {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, TLS: tlsCfg, DialTimeout: 3 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer func() { _ = cli.Close() }()
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err = cli.Put(pctx, "/relocvol/written-by-a-local-user", "yes")
	return err
}

// asNobody runs the local-user attempts of job as uid nobody: the test
// binary is copied where nobody may run it, and run again with the job.
func asNobody(t *testing.T, job localUserJob) map[string]string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "e2e.test")
	copyFile(t, self, bin, 0o755)
	cli := filepath.Join(dir, "relocvol")
	copyFile(t, job.CLI, cli, 0o755)
	job.CLI = cli
	raw, _ := json.Marshal(job)
	cmd := exec.Command(bin)
	cmd.Dir = dir
	cmd.Env = []string{localUserEnv + "=" + string(raw), "PATH=/usr/bin:/bin", "HOME=/nonexistent"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	out, err := cmd.CombinedOutput()
	for _, l := range strings.Split(string(out), "\n") {
		if r, ok := strings.CutPrefix(l, "RESULT "); ok {
			var m map[string]string
			if err := json.Unmarshal([]byte(r), &m); err != nil {
				t.Fatalf("the helper's result %q: %v", r, err)
			}
			return m
		}
	}
	t.Fatalf("the helper run as uid %d printed no result (%v):\n%s", nobody, err, out)
	return nil
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, mode); err != nil {
		t.Fatal(err)
	}
}

// checkLocalUsers: a local user (not root) can neither write the managed
// plugin's embedded etcd nor change anything through its API, nor read the
// files that would let them; root's CLI finds the token itself; and an app
// record written straight into etcd, not by an agent, is never started.
func checkLocalUsers(t *testing.T, dirs folders, etcdPort int, api, cli string) {
	t.Helper()
	// The state folder is as open as on a host (/var/lib/relocvol is 0755),
	// not closed by the test's temporary folder: what keeps a user out is
	// the files' own modes.
	for _, d := range []string{filepath.Dir(dirs.dir), dirs.dir, dirs.state} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tokenFile := filepath.Join(dirs.state, "api-token")
	job := localUserJob{
		EtcdAddr: fmt.Sprintf("127.0.0.1:%d", etcdPort), API: api, Host: "e2e-host-a", CLI: cli, TokenFile: tokenFile,
		Unreadable: []string{filepath.Join(dirs.state, "etcd-pki", "client-key.pem"), filepath.Join(dirs.state, "etcd-pki", "ca-key.pem"), tokenFile},
	}
	got := asNobody(t, job)
	t.Logf("as uid %d: %v", nobody, got)
	for attempt, err := range got {
		if err == "" {
			t.Errorf("as uid %d, %s worked: a local user must be refused", nobody, attempt)
		}
	}
	if want := "run relocvol as root"; !strings.Contains(got["relocvol maintenance on"], want) {
		t.Errorf("as uid %d, relocvol maintenance on said %q, want it to say %q", nobody, got["relocvol maintenance on"], want)
	}
	if e := got["PUT /v1/hosts/e2e-host-a/maintenance without a token"]; !strings.Contains(e, "401") {
		t.Errorf("the API's answer to a local user without a token: %q, want 401", e)
	}

	// Root's CLI reads the token file itself.
	for _, args := range [][]string{{"maintenance", "on", "e2e-host-a", "--for", "1m", "--reason", "root's CLI"}, {"maintenance", "off", "e2e-host-a"}} {
		out, err := exec.Command(cli, append(args, "--api", api, "--token-file", tokenFile)...).CombinedOutput()
		if err != nil {
			t.Errorf("as root, relocvol %v: %v\n%s", args, err, out)
		}
	}
	checkForgedApps(t, dirs, etcdPort, api, cli, tokenFile)
}

// checkForgedApps writes app records straight into etcd, as root with the
// etcd client certificate (or anyone with write access to an external
// etcd) could, placing on host A a container that binds the host's / and
// writes a file there: without a MAC, and with a wrong one. The agent must
// start neither, and say so in the timeline.
func checkForgedApps(t *testing.T, dirs folders, etcdPort int, api, cli, tokenFile string) {
	t.Helper()
	cl := rootEtcd(t, dirs, etcdPort)
	ctx := context.Background()
	marker := filepath.Join("/tmp", fmt.Sprintf("relocvol-forged-%d", time.Now().UnixNano()))
	t.Cleanup(func() { _ = os.Remove(marker) })
	forged := map[string]string{"e2e-forged": "", "e2e-forged-mac": strings.Repeat("ab", 32)}
	for name, mac := range forged {
		t.Cleanup(func() {
			_, _ = docker(t, "rm", "-f", name)
			_, _ = cl.Delete(context.Background(), "/relocvol/apps/"+name)
		})
		rec := map[string]any{
			"name": name, "host": "e2e-host-a", "volumes": []string{},
			"relocation": map[string]any{"id": name + "-1", "kind": "move", "from": "e2e-host-b", "to": "e2e-host-a", "started": time.Now().UTC()},
			"spec": map[string]any{
				"image": image, "cmd": []string{"sh", "-c", "touch /host" + marker},
				"labels": map[string]string{"relocvol.relocate": "true"},
				"mounts": []map[string]any{{"type": "bind", "source": "/", "target": "/host"}},
			},
		}
		if mac != "" {
			rec["mac"] = mac
		}
		b, _ := json.Marshal(rec)
		if _, err := cl.Put(ctx, "/relocvol/apps/"+name, string(b)); err != nil {
			t.Fatalf("write the forged record %s: %v", name, err)
		}
	}
	for name := range forged {
		testenv.Eventually(t, 30*time.Second, "host A's agent refusing "+name, func() error {
			if out, _ := docker(t, "ps", "-a", "--filter", "name=^"+name+"$", "--format", "{{.Names}} {{.Status}}"); out != "" {
				t.Fatalf("the agent created a container from the forged record %s: %s", name, out)
			}
			out, err := exec.Command(cli, "events", "--app", name, "--api", api, "--token-file", tokenFile).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "refused") {
				return fmt.Errorf("relocvol events --app %s: %v\n%s", name, err, out)
			}
			t.Logf("relocvol events --app %s:\n%s", name, out)
			return nil
		})
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatalf("a forged record's container wrote %s on the host", marker)
	}
	// The plugin's log (in dockerd's) has the refusal, at error.
	if refusals := dockerdLogSince(t, 0, "refused to start an app"); !strings.Contains(refusals, "e2e-forged") || !strings.Contains(refusals, "error") {
		t.Errorf("the plugin's log does not show the refusal of e2e-forged at error:\n%s", refusals)
	}
}

// rootEtcd is a client of the managed plugin's embedded etcd as root has
// it: with the client certificate of the plugin's state folder.
func rootEtcd(t *testing.T, dirs folders, etcdPort int) *clientv3.Client {
	t.Helper()
	cl, err := store.Dial(context.Background(), []string{fmt.Sprintf("https://127.0.0.1:%d", etcdPort)}, embeddedPKI(dirs))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	return cl
}

// embeddedPKI are the files a client of the managed plugin's embedded etcd
// dials it with: the plugin makes them in its state folder (etcd-pki/, for
// root only).
func embeddedPKI(dirs folders) store.TLSFiles {
	pki := filepath.Join(dirs.state, "etcd-pki")
	return store.TLSFiles{CA: filepath.Join(pki, "ca.pem"), Cert: filepath.Join(pki, "client.pem"), Key: filepath.Join(pki, "client-key.pem")}
}
