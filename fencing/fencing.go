// Package fencing makes a dead or partitioned host unable to write to the
// shared storage before a peer takes over its volumes. A method implements
// Fence (cut host off) and Join (register this host, called before it
// rejoins the cluster). "none" is for the loop backend in development and
// tests, where there is nothing to fence; "scsi3" (SCSI-3 persistent
// reservations) is the production method for the lvm backend.
package fencing

import (
	"context"

	"github.com/sirupsen/logrus"
)

// None performs no fencing. It only logs, loudly, that a takeover happened
// without it: with a real SAN that would risk two writers.
type None struct {
	Log logrus.FieldLogger
}

// Name implements the plugin's Fencer.
func (None) Name() string { return "none" }

// Fence implements the plugin's Fencer.
func (n None) Fence(_ context.Context, host string) error {
	n.Log.WithField("fenced_host", host).Warn("fencing none: taking over volumes of a dead host without fencing it (safe only for the loop backend in development)")
	return nil
}

// Join implements the plugin's Fencer.
func (None) Join(context.Context) error { return nil }
