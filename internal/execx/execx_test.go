package execx

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

func TestOSRunsWithFixedLocale(t *testing.T) {
	out, err := (&OS{}).Run(context.Background(), "sh", "-c", `echo "$LC_ALL"`)
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(out)) != "C" {
		t.Fatalf("LC_ALL = %q, want C", out)
	}
}

func TestOSKeepsStderrAndExitCode(t *testing.T) {
	_, err := (&OS{}).Run(context.Background(), "sh", "-c", "echo partial; echo 'device busy' >&2; exit 24")
	var ee *ExecError
	if !errors.As(err, &ee) {
		t.Fatalf("err %v is not an *ExecError", err)
	}
	if ee.ExitCode != 24 || ExitCode(err) != 24 || strings.TrimSpace(ee.Stderr) != "device busy" {
		t.Fatalf("got %+v", ee)
	}
	if want := "sh -c echo partial; echo 'device busy' >&2; exit 24: device busy (exit 24)"; err.Error() != want {
		t.Fatalf("message %q, want %q", err, want)
	}
}

func TestOSPrefix(t *testing.T) {
	out, err := (&OS{Prefix: []string{"env", "RELOCVOL_PREFIXED=yes"}}).Run(context.Background(), "sh", "-c", "echo $RELOCVOL_PREFIXED")
	if err != nil || strings.TrimSpace(string(out)) != "yes" {
		t.Fatalf("prefix not applied: %q %v", out, err)
	}
}

func TestOSMissingCommand(t *testing.T) {
	_, err := (&OS{}).Run(context.Background(), "relocvol-no-such-command")
	if ExitCode(err) != -1 || !strings.Contains(err.Error(), "relocvol-no-such-command") {
		t.Fatalf("err = %v", err)
	}
}

func TestOSContextDeadline(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := (&OS{}).Run(ctx, "sleep", "5")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a deadline error", err)
	}
}

func TestFakeAssertsArgv(t *testing.T) {
	f := &Fake{Script: []Call{{Argv: []string{"losetup", "-a"}, Stdout: "x"}}}
	if _, err := f.Run(context.Background(), "losetup", "-l"); err == nil || !strings.Contains(err.Error(), `want "losetup -a"`) {
		t.Fatalf("mismatch not reported: %v", err)
	}
	out, err := f.Run(context.Background(), "losetup", "-a")
	if err != nil || string(out) != "x" || len(f.Left()) != 0 {
		t.Fatalf("out %q err %v left %v", out, err, f.Left())
	}
	if _, err := f.Run(context.Background(), "extra"); err == nil {
		t.Fatal("unexpected command accepted")
	}
}

// A secret in a command's argv (a key in an LVM tag) reaches neither the
// log nor the error, stderr included; the command gets it as it is.
func TestOSKeepsSecretsOutOfLogsAndErrors(t *testing.T) {
	const key = "relocvol-appkey-0123456789abcdef"
	log := logrus.New()
	var logged strings.Builder
	log.SetOutput(&logged)
	log.SetLevel(logrus.DebugLevel)
	ctx := WithSecret(context.Background(), key)
	out, err := (&OS{Log: log}).Run(ctx, "sh", "-c", `echo "$1"; echo "tag $1 refused" >&2; exit 5`, "sh", key)
	if strings.TrimSpace(string(out)) != key {
		t.Fatalf("the command got %q, want the secret itself", out)
	}
	if err == nil || strings.Contains(err.Error(), key) || !strings.Contains(err.Error(), "tag [secret] refused") {
		t.Fatalf("error %v shows the secret, or not where it was", err)
	}
	if strings.Contains(logged.String(), key) || !strings.Contains(logged.String(), "[secret]") {
		t.Fatalf("the log shows the secret:\n%s", logged.String())
	}
}

// A command that takes long says so while it runs, with its trace: one
// that hangs (SG_IO on a blocked path, LVM on a map queueing I/O) would
// otherwise leave no line until it ends.
func TestOSSaysWhenACommandRunsLong(t *testing.T) {
	log := logrus.New()
	var logged strings.Builder
	log.SetOutput(&logged)
	defer func(d time.Duration) { slowCommand = d }(slowCommand)
	slowCommand = 50 * time.Millisecond
	if _, err := (&OS{Log: log}).Run(WithTrace(context.Background(), "mount db"), "sleep", "0.3"); err != nil {
		t.Fatal(err)
	}
	if s := logged.String(); !strings.Contains(s, "still running") || !strings.Contains(s, "mount db") || !strings.Contains(s, "sleep") {
		t.Fatalf("no warning while the command ran long:\n%s", s)
	}
	logged.Reset()
	if _, err := (&OS{Log: log}).Run(context.Background(), "true"); err != nil {
		t.Fatal(err)
	}
	if logged.Len() != 0 {
		t.Fatalf("a quick command logged at info or above: %s", logged.String())
	}
}
