// Package swarm is what relocvol knows of Docker Swarm's containers: the
// labels the engine puts on a task's container (moby's
// daemon/cluster/executor/container). Both the controller (which must leave
// Swarm's tasks to Swarm) and the plugin (which must not let a second task
// join a volume another task uses) read them.
package swarm

const (
	// LabelTask holds the task's ID on every container of a Swarm task.
	LabelTask = "com.docker.swarm.task.id"
	// LabelService is the name of the task's service.
	LabelService = "com.docker.swarm.service.name"
)

// Task reports whether a container's labels make it a Swarm task's.
func Task(labels map[string]string) bool {
	_, ok := labels[LabelTask]
	return ok
}

// Service is the name of the Swarm service a task's container belongs to
// ("" when not a task).
func Service(labels map[string]string) string {
	return labels[LabelService]
}
