package swarm

import "testing"

func TestLabels(t *testing.T) {
	for _, tc := range []struct {
		name    string
		labels  map[string]string
		task    bool
		service string
	}{
		{"no labels", nil, false, ""},
		{"a plain container", map[string]string{"relocvol.relocate": "true"}, false, ""},
		{"a task", map[string]string{LabelTask: "ut65k", LabelService: "db"}, true, "db"},
		{"a task with an empty ID is still a task", map[string]string{LabelTask: ""}, true, ""},
		{"a service label alone is no task", map[string]string{LabelService: "db"}, false, "db"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Task(tc.labels); got != tc.task {
				t.Errorf("Task = %v, want %v", got, tc.task)
			}
			if got := Service(tc.labels); got != tc.service {
				t.Errorf("Service = %q, want %q", got, tc.service)
			}
		})
	}
}
