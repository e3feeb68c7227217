package controller

import (
	"fmt"

	"github.com/relocvol/relocvol/internal/swarm"
)

// Swarm, not the agent, decides where a Swarm task's container runs
// (swarm.Task): it reschedules the task on another node when this one is
// down, and the plugin's fenced takeover in Mount is what keeps that safe.
// Were the agent to relocate or restart the container too, two
// orchestrators would start copies of one service.

// adoption decides whether a container found on this host becomes an app
// that relocvol relocates. why, when not empty, is the reason to tell the
// user for a container that asked to be relocated and is not.
func adoption(labels map[string]string) (adopt bool, why string) {
	switch {
	case !relocatable(labels):
		return false, ""
	case swarm.Task(labels):
		return false, fmt.Sprintf("container is a task of Swarm service %q and labelled %s=true: Swarm reschedules its tasks itself "+
			"(relocvol's fenced takeover in Mount keeps that safe), so relocvol does not relocate it; remove the label from the service",
			swarm.Service(labels), LabelRelocate)
	default:
		return true, ""
	}
}

// restartAfterSelfFencing decides whether a container that self-fencing
// stopped is started again once the host has its lease back (if etcd still
// places it here, for an app). Never a Swarm task: its exit failed the
// task, and Swarm has started a replacement, here or on another node.
func restartAfterSelfFencing(labels map[string]string) bool {
	return !swarm.Task(labels)
}
