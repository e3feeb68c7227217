package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/relocvol/relocvol/internal/store"
)

func TestAppCompareAndSwap(t *testing.T) {
	st, _ := newStore(t)
	ctx := context.Background()
	if _, _, err := st.GetApp(ctx, "db"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("absent app: err = %v, want ErrNotFound", err)
	}
	app := store.App{Name: "db", Host: "a", Volumes: []string{"db"}, Spec: store.AppSpec{Image: "postgres"}}
	rev, err := st.PutApp(ctx, app, 0)
	if err != nil {
		t.Fatal(err)
	}
	// A second creator read "absent" too: it loses.
	if _, err := st.PutApp(ctx, app, 0); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second create: err = %v, want ErrConflict", err)
	}
	app.Host = "b"
	rev2, err := st.PutApp(ctx, app, rev)
	if err != nil {
		t.Fatal(err)
	}
	app.Host = "c"
	if _, err := st.PutApp(ctx, app, rev); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("write at a stale revision: err = %v, want ErrConflict", err)
	}
	got, _, err := st.GetApp(ctx, "db")
	if err != nil || got.Host != "b" || got.Spec.Image != "postgres" || got.UpdatedAt.IsZero() {
		t.Fatalf("app = %+v, %v; want host b", got, err)
	}
	if err := st.DeleteApp(ctx, "db", rev); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("delete at a stale revision: err = %v", err)
	}
	if err := st.DeleteApp(ctx, "db", rev2); err != nil {
		t.Fatal(err)
	}
	if all, err := st.ListApps(ctx); err != nil || len(all) != 0 {
		t.Fatalf("apps after delete: %v %v", all, err)
	}
}

// A deposed leader's guarded writes fail with ErrNotLeader, not
// ErrConflict, and change nothing; the new leader's go through.
func TestGuardedWritesOfDeposedLeader(t *testing.T) {
	st, cli := newStore(t)
	ctx := context.Background()
	_, _, vrev, _ := st.CreateVolume(ctx, store.Volume{Name: "db", State: store.StateReady})
	if _, err := st.PutClaim(ctx, store.Claim{Volume: "db", Host: "dead", Epoch: 3}, 0, vrev); err != nil {
		t.Fatal(err)
	}
	arev, err := st.PutApp(ctx, store.App{Name: "db", Host: "dead"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	old, err := st.Campaign(ctx, "old", 5)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Revoke(ctx, old.Lease()); err != nil {
		t.Fatal(err)
	}
	_, crev, _ := st.GetClaim(ctx, "db")
	c, _, _ := st.GetClaim(ctx, "db")
	if err := st.ReleaseClaim(ctx, c, crev, 1, old); !errors.Is(err, store.ErrNotLeader) {
		t.Fatalf("deposed leader's release: err = %v, want ErrNotLeader", err)
	}
	if _, err := st.PutApp(ctx, store.App{Name: "db", Host: "x"}, arev, old); !errors.Is(err, store.ErrNotLeader) {
		t.Fatalf("deposed leader's placement: err = %v, want ErrNotLeader", err)
	}
	if _, err := st.MarkFence(ctx, store.Fence{Host: "dead", By: "old"}, old); !errors.Is(err, store.ErrNotLeader) {
		t.Fatalf("deposed leader's fence mark: err = %v, want ErrNotLeader", err)
	}
	if c, _, _ := st.GetClaim(ctx, "db"); c.Host != "dead" {
		t.Fatalf("claim changed by a deposed leader: %+v", c)
	}
	if f, err := st.ListFences(ctx); err != nil || len(f) != 0 {
		t.Fatalf("fence marks %v %v", f, err)
	}

	cur, err := st.Campaign(ctx, "new", 5)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cur.Resign(ctx) }()
	markRev, err := st.MarkFence(ctx, store.Fence{Host: "dead", By: "new"}, cur)
	if err != nil {
		t.Fatal(err)
	}
	// The leader's guard holds but the claim moved on: that is a conflict.
	if err := st.ReleaseClaim(ctx, c, crev-1, markRev, cur); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("release at a stale revision: err = %v, want ErrConflict", err)
	}
	if err := st.ReleaseClaim(ctx, c, crev, markRev, cur); err != nil {
		t.Fatal(err)
	}
	got, _, _ := st.GetClaim(ctx, "db")
	if got.Held() || got.Epoch != 3 || got.TakenFrom != "dead" {
		t.Fatalf("released claim %+v: want no holder, epoch 3 kept, taken from dead", got)
	}
	if f, _ := st.ListFences(ctx); f["dead"].Value.By != "new" {
		t.Fatalf("fence marks %v", f)
	}
}

func TestEventsListAndPrune(t *testing.T) {
	st, _ := newStore(t)
	ctx := context.Background()
	base := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	for i := 0; i < 7; i++ {
		e := store.Event{At: base.Add(time.Duration(i) * time.Second), App: "db", Phase: fmt.Sprintf("p%d", i), Host: "a"}
		if err := st.AddEvent(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	got, err := st.ListEvents(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Phase != "p4" || got[2].Phase != "p6" {
		t.Fatalf("newest 3 events, oldest first: %+v", got)
	}
	n, err := st.PruneEvents(ctx, 2)
	if err != nil || n != 5 {
		t.Fatalf("pruned %d (%v), want 5", n, err)
	}
	got, _ = st.ListEvents(ctx, 100)
	if len(got) != 2 || got[0].Phase != "p5" {
		t.Fatalf("after pruning: %+v", got)
	}
	if n, err := st.PruneEvents(ctx, 2); err != nil || n != 0 {
		t.Fatalf("second prune removed %d (%v)", n, err)
	}
}

// FollowEvents lists the newest events, then sends each one written after
// the list, in the order written, once each: also those written while the
// list was being handed over, and none of those pruned.
func TestFollowEvents(t *testing.T) {
	st, _ := newStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	base := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	add := func(i int) {
		t.Helper()
		if err := st.AddEvent(ctx, store.Event{At: base.Add(time.Duration(i) * time.Second), Phase: fmt.Sprintf("p%d", i), Host: "a"}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 4; i++ {
		add(i)
	}
	var listed []string
	got := make(chan string, 100)
	errc := make(chan error, 1)
	go func() {
		errc <- st.FollowEvents(ctx, 2,
			func(past []store.Event) error {
				for _, e := range past {
					listed = append(listed, e.Phase)
				}
				// Written between the list and the watch's start: a
				// follower that watched from "now" would miss it.
				add(4)
				return nil
			},
			func(e store.Event) error {
				got <- e.Phase
				return nil
			})
	}()
	want := []string{"p4", "p5", "p6"}
	for i, w := range want {
		if i > 0 {
			add(i + 4)
		}
		select {
		case p := <-got:
			if p != w {
				t.Fatalf("followed %s, want %s", p, w)
			}
		case err := <-errc:
			t.Fatalf("FollowEvents ended: %v", err)
		case <-time.After(10 * time.Second):
			t.Fatalf("%s not followed within 10s", w)
		}
	}
	if fmt.Sprint(listed) != "[p2 p3]" {
		t.Fatalf("listed %v, want the newest two, oldest first", listed)
	}
	if _, err := st.PruneEvents(ctx, 1); err != nil { // deletions are not events
		t.Fatal(err)
	}
	add(7)
	if p := <-got; p != "p7" {
		t.Fatalf("after a prune, followed %s, want p7", p)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("a follow whose context ends: %v", err)
	}
}
