// Package browser drives a headless Chromium (Debian's chromium, through
// chromedp) for the tests of the status page: it records every request
// the page makes and every script error it reports, so that a test fails on
// a request to another origin (a CDN, a web font) or a broken script.
package browser

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// Browser is one headless Chromium for a test. It records every request
// its tabs make and every script error or error log they report, so that
// the test can fail on a request to another origin or a broken script.
type Browser struct {
	Ctx    context.Context // the first tab
	origin string          // the test server's: the only one the page may reach
	mu     sync.Mutex
	urls   []string
	errs   []string
}

// New starts a Chromium for t, whose page may reach origin only; it stops
// with the test, which then fails on what checkClean finds.
func New(t *testing.T, origin string) *Browser {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal(err)
	}
	// Flags that run Debian's chromium as root in a container, and keep it
	// from calling home (updates, sync, metrics).
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1360, 900),
	)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	// Registered after the test server's Close: runs before it, so that the
	// page's event stream has ended when the server waits for its requests.
	t.Cleanup(func() { cancel(); cancelAlloc() })
	b := &Browser{Ctx: ctx, origin: origin}
	b.listen(t, ctx)
	// Also when the test stopped early: the page's errors say why.
	t.Cleanup(func() { b.checkClean(t) })
	return b
}

// Tab opens another tab: its own sessionStorage, so no token.
func (b *Browser) Tab(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.Ctx)
	t.Cleanup(cancel)
	b.listen(t, ctx)
	return ctx
}

func (b *Browser) listen(t *testing.T, ctx context.Context) {
	t.Helper()
	err := chromedp.Listen(ctx, func(ev any) {
		b.mu.Lock()
		defer b.mu.Unlock()
		switch ev := ev.(type) {
		case *network.EventRequestWillBeSent:
			b.urls = append(b.urls, ev.Request.URL)
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			b.errs = append(b.errs, fmt.Sprintf("exception at %s:%d: %s", d.URL, d.LineNumber+1, msg))
		case *log.EventEntryAdded:
			// Network entries are the answers the test provokes (401, the
			// outage); any other error is the page's: a script, a refused
			// resource (the Content-Security-Policy), ...
			if ev.Entry.Level == log.EntryLevelError && ev.Entry.Source != log.EntrySourceNetwork {
				b.errs = append(b.errs, fmt.Sprintf("%s error: %s (%s)", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL))
			}
		}
	})
	if err != nil {
		t.Fatalf("start chromium: %v", err)
	}
}

// Requests are the URLs of every request made so far.
func (b *Browser) Requests() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.urls...)
}

// checkClean fails t for each request to another origin than the test
// server's and each script error the tabs reported.
func (b *Browser) checkClean(t *testing.T) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, u := range b.urls {
		if !SameOrigin(u, b.origin) {
			t.Errorf("the page requested %s: it must load nothing but %s's own files (no CDN, fonts or images from elsewhere)", u, b.origin)
		}
	}
	for _, e := range b.errs {
		t.Errorf("the page reported %s", e)
	}
}

// SameOrigin says whether URL raw is of origin.
func SameOrigin(raw, origin string) bool {
	u, err := url.Parse(raw)
	o, oerr := url.Parse(origin)
	return err == nil && oerr == nil && u.Scheme == o.Scheme && u.Host == o.Host
}

// Navigate opens u in the tab.
func Navigate(t *testing.T, ctx context.Context, u string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate(u)); err != nil {
		t.Fatalf("open %s: %v", u, err)
	}
}

// Eval runs a script in the tab and decodes its result.
func Eval[T any](ctx context.Context, script string) (T, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[T](script))
}

// Screenshot saves the whole page as a PNG under $RELOCVOL_ARTIFACTS (or
// the system's temporary folder) and logs where.
func Screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	dir := os.Getenv("RELOCVOL_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "relocvol-artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of the status page: %s", p)
}

// TypeInto types text into the field with id and clicks its form's button,
// as a person would.
func TypeInto(t *testing.T, ctx context.Context, id, text string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.ID(id), text), chromedp.Click(chromedp.CSS("#"+id+" ~ button"))); err != nil {
		t.Fatalf("type into #%s: %v", id, err)
	}
}
