package controller

import (
	"testing"
	"time"

	"github.com/relocvol/relocvol/internal/store"
	"github.com/relocvol/relocvol/internal/testenv"
)

// An app's signed label relocvol.hosts says where it may run; its
// placement is not signed, so an agent starts an app placed on its host
// only if the label allows that host. (No agent checked it: someone who
// can write etcd ran a recorded spec, bind mounts and all, on a host the
// label leaves out.)
func TestAgentStartsOnlyWhereAllowed(t *testing.T) {
	st, _, d, a, ctx := agentEnv(t)
	app := signed(t, store.App{Name: "pinned", Volumes: []string{"db"}, Allowed: []string{"b"},
		Spec: store.AppSpec{Image: "img", Labels: map[string]string{LabelRelocate: "true", LabelHosts: "b"}}})
	app.Host = "a"
	app.Relocation = &store.Relocation{ID: "r1", Kind: store.KindMove, From: "b", To: "a", Started: time.Now().UTC()}
	if _, err := st.PutApp(ctx, app, 0); err != nil {
		t.Fatal(err)
	}
	go a.Run(ctx)
	time.Sleep(3 * time.Second)
	if s := d.state("pinned"); s != "absent" {
		testenv.WaitFor(t, "settle", time.Second, func() bool { return true })
		t.Fatalf("an app whose signed record allows only host b is %s on host a: docker calls %v", s, d.log())
	}
}
