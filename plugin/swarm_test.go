package plugin

import (
	"strings"
	"testing"
)

func TestSwarmJoin(t *testing.T) {
	task := func(svc string) map[string]string {
		return map[string]string{"com.docker.swarm.task.id": "t" + svc, "com.docker.swarm.service.name": svc}
	}
	for _, tc := range []struct {
		name  string
		users []volumeUser
		want  []string // substrings of the refusal; nil: the Mount may join
	}{
		{"nobody uses it", nil, nil},
		{"one running container", []volumeUser{{"db", "running", nil}}, nil},
		{"a docker run beside a running container (a sidecar)",
			[]volumeUser{{"db", "running", nil}, {"backup", "created", nil}}, nil},
		{"a Swarm task starting after the old one exited (stop-first)",
			[]volumeUser{{"db.1.old", "exited", task("db")}, {"db.1.new", "created", task("db")}}, nil},
		{"a Swarm task starting with only dead and removing users",
			[]volumeUser{{"a", "dead", task("db")}, {"b", "removing", nil}, {"db.1.new", "created", task("db")}}, nil},
		{"start-first: the old task runs, the new one waits",
			[]volumeUser{{"db.1.old", "running", task("db")}, {"db.1.new", "created", task("db")}},
			[]string{`volume "v" is in use on host node-1 by container db.1.old (a task of Swarm service db)`,
				"task db.1.new cannot start", "docker service update --update-order stop-first db"}},
		{"a paused task still holds it",
			[]volumeUser{{"db.1.old", "paused", task("db")}, {"db.1.new", "created", task("db")}},
			[]string{"by container db.1.old", "stop-first db"}},
		{"a restarting container still holds it",
			[]volumeUser{{"db", "restarting", nil}, {"svc.1.x", "created", task("svc")}},
			[]string{"by container db:", "task svc.1.x cannot start", "; stop db"}},
		{"a Swarm task beside a plain container",
			[]volumeUser{{"db", "running", nil}, {"svc.1.x", "created", task("svc")}},
			[]string{"by container db:", "; stop db"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := swarmJoin("node-1", "v", tc.users)
			if tc.want == nil {
				if got != "" {
					t.Fatalf("swarmJoin refused: %s", got)
				}
				return
			}
			if got == "" {
				t.Fatal("swarmJoin let the Mount join")
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("swarmJoin =\n%s\nwant it to contain %q", got, w)
				}
			}
		})
	}
}
