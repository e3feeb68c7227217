package controller

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/relocvol/relocvol/internal/store"
	"github.com/relocvol/relocvol/internal/testenv"
)

// A record nobody's agent recorded (written straight into etcd: no MAC, a
// wrong one, or a signed record changed afterwards) that places an app
// binding the host's / on this host, with a relocation, is never created
// nor started; the refusal is in the timeline.
func TestAgentRefusesForgedRecord(t *testing.T) {
	evil := func() store.App {
		rel := &store.Relocation{ID: "evil-1", Kind: store.KindMove, From: "b", To: "a", Started: time.Now().UTC()}
		return store.App{Name: "evil", Host: "a", Volumes: []string{"db"}, Relocation: rel, Spec: store.AppSpec{
			Image: "img", Labels: relocate, User: "0",
			Mounts: []store.AppMount{{Type: "bind", Source: "/", Target: "/host"}, {Type: "volume", Source: "db", Target: "/db", Driver: "relocvol"}},
		}}
	}
	for _, tc := range []struct {
		name   string
		forged func(t *testing.T) store.App
		says   string
	}{
		{name: "no MAC", forged: func(*testing.T) store.App { return evil() }, says: "is not signed by an agent of this cluster"},
		{name: "a MAC made up", forged: func(*testing.T) store.App { a := evil(); a.MAC = strings.Repeat("ab", 32); return a }, says: "does not match its MAC"},
		{name: "a recorded app's spec changed", forged: func(t *testing.T) store.App {
			a := evil()
			a.Spec.Mounts = a.Spec.Mounts[1:]
			a = signed(t, a) // as its agent recorded it
			a.Spec.Mounts = evil().Spec.Mounts
			return a
		}, says: "does not match its MAC"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, _, d, a, ctx := agentEnv(t)
			if _, err := st.PutApp(ctx, tc.forged(t), 0); err != nil {
				t.Fatal(err)
			}
			go a.Run(ctx)
			var refused store.Event
			testenv.WaitFor(t, "the agent to act on the record or refuse it", 10*time.Second, func() bool {
				if d.state("evil") != "absent" {
					return true
				}
				ev, _ := st.ListEvents(ctx, 20)
				for _, e := range ev {
					if e.App == "evil" && e.Phase == "refused" {
						refused = e
						return true
					}
				}
				return false
			})
			time.Sleep(2500 * time.Millisecond) // a full reconcile period: nothing more happens
			if calls := d.log(); len(calls) != 0 || d.state("evil") != "absent" {
				t.Fatalf("the agent acted on a forged record: container evil %s, docker calls %v", d.state("evil"), calls)
			}
			if !strings.Contains(refused.Error, tc.says) || !strings.Contains(refused.Error, "docker start evil") || refused.Relocation != "evil-1" {
				t.Errorf("refusal %+v does not say why and what to do", refused)
			}
			if ev, _ := st.ListEvents(ctx, 20); len(ev) != 1 {
				t.Errorf("the refusal was recorded %d times, want once: %+v", len(ev), ev)
			}
		})
	}
}

// A record an older relocvol wrote (no MAC) of a container that runs on
// its host is signed by that host's agent, from the running container; a
// record changed in etcd since gets the running container's spec back.
func TestAgentSignsWhatRunsHere(t *testing.T) {
	for _, tc := range []struct {
		name string
		old  func(t *testing.T) store.App
	}{
		{name: "written by an older relocvol", old: func(*testing.T) store.App {
			return store.App{Name: "pg", Host: "a", Volumes: []string{"db"}, Spec: store.AppSpec{Image: "img", Labels: relocate}}
		}},
		{name: "changed in etcd", old: func(t *testing.T) store.App {
			a := signed(t, store.App{Name: "pg", Host: "a", Volumes: []string{"db"}, Spec: store.AppSpec{Image: "img", Labels: relocate}})
			a.Spec.Mounts = append(a.Spec.Mounts, store.AppMount{Type: "bind", Source: "/", Target: "/host"})
			return a
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, _, d, a, ctx := agentEnv(t)
			d.add("pg", true, relocate, "db")
			if _, err := st.PutApp(ctx, tc.old(t), 0); err != nil {
				t.Fatal(err)
			}
			go a.Run(ctx)
			var app store.App
			testenv.WaitFor(t, "pg's record signed", 10*time.Second, func() bool {
				app, _, _ = st.GetApp(ctx, "pg")
				return verifyApp(testAppKey, app) == nil
			})
			if len(app.Spec.Mounts) != 1 || app.Spec.Mounts[0].Type != "volume" || app.Host != "a" {
				t.Fatalf("recorded %+v, want the running container's one volume mount, placed on a", app)
			}
			if calls := d.log(); len(calls) != 0 {
				t.Errorf("the agent acted on the running container: %v", calls)
			}
		})
	}
}

// A signed record copied under another app's key (apps/evil holding app
// good's record, placed here with a relocation) is refused: what is
// signed is the record of the app it names, not of the key it is under.
func TestAgentRefusesARecordUnderAnotherAppsKey(t *testing.T) {
	st, _, d, a, ctx := agentEnv(t)
	good := signed(t, store.App{Name: "good", Volumes: []string{"db"}, Spec: store.AppSpec{Image: "img", Labels: relocate,
		Mounts: []store.AppMount{{Type: "volume", Source: "db", Target: "/db", Driver: "relocvol"}}}})
	good.Host = "a"
	good.Relocation = &store.Relocation{ID: "r1", Kind: store.KindMove, From: "b", To: "a", Started: time.Now().UTC()}
	rec, err := json.Marshal(good)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Client().Put(ctx, "/test/apps/evil", string(rec)); err != nil {
		t.Fatal(err)
	}
	go a.Run(ctx)
	testenv.WaitFor(t, "the copied record refused", 10*time.Second, func() bool {
		ev, _ := st.ListEvents(ctx, 20)
		for _, e := range ev {
			if e.Phase == "refused" && strings.Contains(e.Error, "the record under apps/evil is app good's") {
				return true
			}
		}
		return false
	})
	if calls := d.log(); len(calls) != 0 {
		t.Fatalf("the agent acted on a record copied under another app's key: docker calls %v", calls)
	}
}
