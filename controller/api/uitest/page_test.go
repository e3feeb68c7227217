package uitest

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/relocvol/relocvol/internal/spec"
	"github.com/relocvol/relocvol/internal/store"
	"github.com/relocvol/relocvol/internal/testenv"
	"github.com/relocvol/relocvol/internal/testenv/browser"
)

// pageState is what the page shows, read from its DOM.
type pageState struct {
	DataShown  bool   `json:"dataShown"`
	TokenAsked bool   `json:"tokenAsked"`
	TokenWhy   string `json:"tokenWhy"`
	Banner     string `json:"banner"` // "" when hidden
	Conn       string `json:"conn"`
	Stale      bool   `json:"stale"`
	Summary    string `json:"summary"`
	Hosts      []row  `json:"hosts"`
	Volumes    []row  `json:"volumes"`
	Apps       []row  `json:"apps"`
	Relocs     []struct {
		ID     string     `json:"id"`
		Head   string     `json:"head"`
		Errors string     `json:"errors"`
		Steps  []stepView `json:"steps"`
	} `json:"relocs"`
	Body   string `json:"body"`
	Hash   string `json:"hash"`
	Marker bool   `json:"marker"`
}

type row struct {
	Key    string   `json:"key"`
	Text   string   `json:"text"`
	Badges []string `json:"badges"`
}

type stepView struct {
	Phase    string  `json:"phase"`
	Host     string  `json:"host"`
	TookMS   int64   `json:"tookMs"`
	Failed   bool    `json:"failed"`
	BarX     float64 `json:"barX"`
	BarWidth float64 `json:"barWidth"` // 0: an instant, drawn as a mark
	Fill     string  `json:"fill"`
	Label    string  `json:"label"`
	Title    string  `json:"title"`
}

const readPage = `(() => {
  const $ = (id) => document.getElementById(id);
  const rows = (id, key) => [...document.querySelectorAll('#' + id + ' tbody tr[data-' + key + ']')].map((tr) => ({
    key: tr.dataset[key], text: tr.innerText.replace(/\s+/g, ' '), badges: [...tr.querySelectorAll('.badge')].map((b) => b.textContent) }));
  return {
    dataShown: !$('data').hidden, tokenAsked: !$('token-form').hidden, tokenWhy: $('token-why').textContent,
    banner: $('banner').hidden ? '' : $('banner').innerText, conn: $('conn').textContent,
    stale: $('data').classList.contains('stale'), summary: $('summary').innerText.replace(/\s+/g, ' '),
    hosts: rows('hosts', 'host'), volumes: rows('volumes', 'volume'), apps: rows('apps', 'app'),
    relocs: [...document.querySelectorAll('article.relocation')].map((a) => ({
      id: a.dataset.relocation, head: a.querySelector('header').innerText.replace(/\s+/g, ' ').toLowerCase(),
      errors: (a.querySelector('.rel-errors') || { innerText: '' }).innerText,
      steps: [...a.querySelectorAll('g.tl-step')].map((g) => {
        const bar = g.querySelector('rect.tl-bar');
        const shape = bar || g.querySelector('.tl-mark');
        return { phase: g.dataset.phase, host: g.dataset.host, tookMs: Number(g.dataset.tookMs), failed: g.dataset.failed === 'true',
          barX: bar ? Number(bar.getAttribute('x')) : 0, barWidth: bar ? Number(bar.getAttribute('width')) : 0,
          fill: shape ? getComputedStyle(shape).fill : '', label: g.querySelector('.tl-label').textContent,
          title: g.querySelector('title').textContent };
      }) })),
    body: document.body.innerText, hash: location.hash, marker: window.uitestMarker === true,
  };
})()`

// red is the failed steps' colour (--c-error in status.css).
const red = "rgb(217, 54, 54)"

// TestStatusPage opens host a's status page in Chromium with the token in
// the URL's fragment and checks what it shows, live updates, an etcd
// outage, and the token form of a tab that has no token.
func TestStatusPage(t *testing.T) {
	testenv.RequireCommands(t, "chromium")
	cl := startCluster(t)
	b := browser.New(t, cl.url)
	tab := b.Ctx
	state := func() (pageState, error) { return browser.Eval[pageState](tab, readPage) }
	var p pageState
	waitPage := func(what string, timeout time.Duration, cond func(p pageState) error) {
		t.Helper()
		testenv.Eventually(t, timeout, what, func() error {
			var err error
			if p, err = state(); err != nil {
				return err
			}
			return cond(p)
		})
	}

	browser.Navigate(t, tab, cl.url+"/#token="+token)
	waitPage("the page shows the cluster and both relocations", 30*time.Second, func(p pageState) error {
		if !p.DataShown || len(p.Hosts) != 3 || len(p.Volumes) != 3 || len(p.Apps) != 2 || len(p.Relocs) != 2 {
			return fmt.Errorf("data shown %v, %d hosts, %d volumes, %d apps, %d relocations; banner %q",
				p.DataShown, len(p.Hosts), len(p.Volumes), len(p.Apps), len(p.Relocs), p.Banner)
		}
		return liveConn(p.Conn)
	})
	if p.Hash != "" || p.Banner != "" || p.Stale || p.TokenAsked {
		t.Errorf("after the load: fragment %q (the token must leave the address bar), banner %q, stale %v, token asked %v", p.Hash, p.Banner, p.Stale, p.TokenAsked)
	}
	if err := contains(p.Summary, "host a", "alive", "leader a", "2/3 hosts alive", "3 volumes", "2 apps", "version v0.9.2"); err != nil {
		t.Errorf("summary: %v", err)
	}
	checkHosts(t, p.Hosts)
	checkVolumes(t, p.Volumes)
	checkApps(t, p.Apps, map[string]string{"db": "postgres:16 db-data a (allowed: a, b) a —", "web": "nginx:1.27 web-data b b —"})
	checkTimelines(t, p, cl)

	// A new step appears at once, with no reload: the event stream.
	if _, err := browser.Eval[bool](tab, `window.uitestMarker = true`); err != nil {
		t.Fatal(err)
	}
	move := relocation(store.KindMove, "db", "a", "b", time.Now().UTC())
	app, rev, err := cl.st.GetApp(cl.ctx, "db")
	if err != nil {
		t.Fatal(err)
	}
	app.Host, app.Relocation = "b", &move
	if _, err := cl.st.PutApp(cl.ctx, app, rev); err != nil {
		t.Fatal(err)
	}
	cl.steps(t, move, "db", []step{{"requested", "a", 0, 0, "move db from a to b", ""}})
	waitPage("the new move on the page", 10*time.Second, func(p pageState) error {
		if len(p.Relocs) != 3 || p.Relocs[0].ID != move.ID || len(p.Relocs[0].Steps) != 1 {
			return fmt.Errorf("relocations shown %s, want %s first with its one step", relocIDs(p), move.ID)
		}
		return contains(rowText(p.Apps, "db"), "move a → b")
	})
	cl.steps(t, move, "db", []step{{"stopped", "a", 1200, 1300, "", ""}})
	waitPage("the move's next step", 10*time.Second, func(p pageState) error {
		if s := p.Relocs[0].Steps; len(s) != 2 || s[1].Phase != "stopped" || s[1].BarWidth <= 0 {
			return fmt.Errorf("steps %+v", s)
		}
		return contains(p.Relocs[0].Head, "in progress")
	})
	if !p.Marker {
		t.Fatal("the page was reloaded: live updates must come without one")
	}
	browser.Screenshot(t, tab, "status-page.png")

	// etcd unreachable from host a: the API answers errors; the page says
	// so and keeps the last data, marked stale.
	cl.etcd.cut()
	waitPage("the page shows the outage", 40*time.Second, func(p pageState) error {
		if !p.Stale || len(p.Hosts) != 3 || len(p.Relocs) != 3 {
			return fmt.Errorf("stale %v with %d hosts and %d relocations kept; banner %q", p.Stale, len(p.Hosts), len(p.Relocs), p.Banner)
		}
		return contains(p.Banner+p.Conn, "did not answer", "check that etcd runs", "(stale)", "stale: data of")
	})
	browser.Screenshot(t, tab, "status-page-etcd-down.png")
	cl.etcd.restore()
	waitPage("the page back to live", 40*time.Second, func(p pageState) error {
		if p.Stale || p.Banner != "" {
			return fmt.Errorf("stale %v, banner %q", p.Stale, p.Banner)
		}
		return liveConn(p.Conn)
	})
	cl.steps(t, move, "db", []step{{"released", "a", 700, 2100, "unmounted and released db-data", ""}})
	waitPage("a step after the outage", 20*time.Second, func(p pageState) error {
		if len(p.Relocs[0].Steps) != 3 {
			return fmt.Errorf("relocations shown %s, want %s with 3 steps", relocIDs(p), move.ID)
		}
		return nil
	})

	// A tab without the token: the page asks for it and shows no data; a
	// wrong token is refused; the right one shows the cluster.
	tab2 := b.Tab(t)
	state = func() (pageState, error) { return browser.Eval[pageState](tab2, readPage) }
	browser.Navigate(t, tab2, cl.url+"/")
	waitPage("the token form", 20*time.Second, func(p pageState) error {
		if !p.TokenAsked || p.DataShown {
			return fmt.Errorf("token asked %v, data shown %v", p.TokenAsked, p.DataShown)
		}
		return contains(p.TokenWhy, "401", "RELOCVOL_API_TOKEN", "#token=")
	})
	browser.Screenshot(t, tab2, "status-page-token.png")
	for _, secret := range []string{"nginx", "postgres", "web-data", "db-data", "fenced"} {
		if strings.Contains(p.Body, secret) {
			t.Errorf("without the token the page shows %q:\n%s", secret, p.Body)
		}
	}
	browser.TypeInto(t, tab2, "token-input", "guess")
	waitPage("a wrong token refused", 20*time.Second, func(p pageState) error {
		if !p.TokenAsked || p.DataShown {
			return fmt.Errorf("token asked %v, data shown %v", p.TokenAsked, p.DataShown)
		}
		return contains(p.TokenWhy, "the token was refused")
	})
	browser.TypeInto(t, tab2, "token-input", token)
	waitPage("the cluster after the token", 20*time.Second, func(p pageState) error {
		if p.TokenAsked || !p.DataShown || len(p.Hosts) != 3 || len(p.Relocs) != 3 {
			return fmt.Errorf("token asked %v, data shown %v, %d hosts, %d relocations", p.TokenAsked, p.DataShown, len(p.Hosts), len(p.Relocs))
		}
		return nil
	})

	// The recorder saw the page's requests; the browser's cleanup fails the
	// test on any to another origin and on any script error.
	reqs := b.Requests()
	for _, want := range []string{"/ui/status.js", "/ui/timeline.js", "/ui/status.css", "/v1/hosts", "/v1/events?follow=true"} {
		if !strings.Contains(strings.Join(reqs, "\n"), cl.url+want) {
			t.Errorf("no request of %s recorded (the recorder is broken?): %v", want, reqs)
		}
	}
}

func relocIDs(p pageState) string {
	var ids []string
	for _, r := range p.Relocs {
		ids = append(ids, fmt.Sprintf("%s (%d steps)", r.ID, len(r.Steps)))
	}
	return strings.Join(ids, ", ")
}

func rowText(rows []row, key string) string {
	for _, r := range rows {
		if r.Key == key {
			return r.Text
		}
	}
	return ""
}

func checkHosts(t *testing.T, hosts []row) {
	t.Helper()
	for _, tc := range []struct {
		host string
		want []string
		not  []string
	}{
		{"a", []string{"leader", "this host", "alive", "maintenance until", "“plugin upgrade to v0.9.3” by operator", "v0.9.2"}, []string{"dead", "fenced"}},
		{"b", []string{"alive", "v0.9.2"}, []string{"leader", "dead", "fenced", "maintenance"}},
		{"c", []string{"fenced by a at", "dead"}, []string{"leader", "alive", "maintenance"}},
	} {
		text := rowText(hosts, tc.host)
		if err := contains(text, tc.want...); err != nil {
			t.Errorf("host %s: %v", tc.host, err)
		}
		for _, n := range tc.not {
			if strings.Contains(text, n) {
				t.Errorf("host %s: %q says %q", tc.host, text, n)
			}
		}
	}
}

func checkVolumes(t *testing.T, vols []row) {
	t.Helper()
	for name, want := range map[string][]string{
		"db-data":  {"db-data a 7 1 " + spec.FormatSize(20<<30) + " growing xfs lvm ready"},
		"web-data": {"web-data b 4 1 " + spec.FormatSize(5<<30) + " ext4 lvm ready"},
		"scratch":  {"scratch released 2 0 " + spec.FormatSize(1<<30) + " ext4 lvm ready"},
	} {
		if err := contains(rowText(vols, name), want...); err != nil {
			t.Errorf("volume %s: %v", name, err)
		}
	}
}

func checkApps(t *testing.T, apps []row, want map[string]string) {
	t.Helper()
	for name, w := range want {
		if err := contains(rowText(apps, name), name+" "+w); err != nil {
			t.Errorf("app %s: %v", name, err)
		}
	}
}

// checkTimelines: the newest relocation first, one bar per step in the
// order they happened, widths in proportion to the steps' durations, the
// failed step in red with its error.
func checkTimelines(t *testing.T, p pageState, cl *cluster) {
	t.Helper()
	if p.Relocs[0].ID != cl.failover.ID || p.Relocs[1].ID != cl.move.ID {
		t.Fatalf("relocations %s, %s: want the failover %s (newest) then the move %s", p.Relocs[0].ID, p.Relocs[1].ID, cl.failover.ID, cl.move.ID)
	}
	r := p.Relocs[0]
	if err := contains(r.Head, "failover", "web", "c → b", "done", "total 12.2 s", "10 steps"); err != nil {
		t.Errorf("failover heading: %v", err)
	}
	if len(r.Steps) != len(failoverSteps) {
		t.Fatalf("failover: %d steps drawn, want %d: %+v", len(r.Steps), len(failoverSteps), r.Steps)
	}
	var pxPerMS float64
	for i, s := range r.Steps {
		w := failoverSteps[i]
		if s.Phase != w.phase || s.Host != w.host || s.TookMS != w.took || s.Failed != (w.err != "") {
			t.Errorf("step %d drawn as %+v, want %+v", i, s, w)
		}
		if (s.BarWidth > 0) != (w.took > 0) {
			t.Errorf("step %s (%d ms): bar width %.1f", s.Phase, w.took, s.BarWidth)
		}
		if w.took == 2000 {
			pxPerMS = s.BarWidth / 2000
		}
		if s.Failed && (s.Fill != red || !strings.Contains(s.Label, "✗") || !strings.Contains(s.Title, "error: "+w.err)) {
			t.Errorf("failed step %s: fill %s, label %q, title %q: want red, marked and its error", s.Phase, s.Fill, s.Label, s.Title)
		}
		if !s.Failed && s.Fill == red {
			t.Errorf("step %s is red but did not fail", s.Phase)
		}
	}
	// Widths and positions on one time axis: a 2 s step is 4 times a 0.5 s
	// one, and each bar ends where its step ended.
	failed, fenced := r.Steps[1], r.Steps[2]
	if ratio := fenced.BarWidth / failed.BarWidth; math.Abs(ratio-4) > 0.1 {
		t.Errorf("the 2 s step's bar is %.1f px, the 0.5 s one's %.1f px: ratio %.2f, want 4", fenced.BarWidth, failed.BarWidth, ratio)
	}
	origin := fenced.BarX - float64(10600-2000)*pxPerMS // x of the relocation's start
	for i, s := range r.Steps {
		w := failoverSteps[i]
		if s.BarWidth == 0 || s.Phase != w.phase {
			continue
		}
		if want := origin + float64(w.end-w.took)*pxPerMS; math.Abs(s.BarX-want) > 1 {
			t.Errorf("step %s starts at x=%.1f, want %.1f (%d ms after the relocation's start)", s.Phase, s.BarX, want, w.end-w.took)
		}
	}
	if err := contains(r.Errors, "fenced on a failed after 500 ms", "unit attention: the LUN was reset"); err != nil {
		t.Errorf("failed steps' list: %v", err)
	}
	if m := p.Relocs[1]; len(m.Steps) != 10 || m.Errors != "" || !strings.Contains(m.Head, "move db b → a done") {
		t.Errorf("the earlier move: %q, %d steps, errors %q", m.Head, len(m.Steps), m.Errors)
	}
}

func contains(s string, subs ...string) error {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return fmt.Errorf("%q does not say %q", s, sub)
		}
	}
	return nil
}

// liveConn says whether the page's connection indicator says live, not
// connecting or reconnecting.
func liveConn(conn string) error {
	if !strings.HasPrefix(conn, "live ·") {
		return fmt.Errorf("the page says %q, not live", conn)
	}
	return nil
}
