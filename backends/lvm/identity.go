package lvm

import (
	"context"
	"fmt"
	"strings"
)

// clusterTag prefixes the VG tag that holds the identity of the relocvol
// cluster using the VG.
const clusterTag = "relocvol-cluster-"

// Storage implements plugin.ClusterMarker.
func (l *LVM) Storage() string { return "volume group " + l.vg }

// vgTags reads the VG's tags.
func (l *LVM) vgTags(ctx context.Context) ([]string, error) {
	out, err := l.lvm(ctx, "vgs", "--reportformat", "json", "-o", "vg_tags", l.vg)
	if err != nil {
		return nil, fmt.Errorf("read the tags of VG %s: %w", l.vg, l.classify(err))
	}
	return parseVGTags(out)
}

func parseVGTags(out []byte) ([]string, error) {
	rows, err := parseReport[struct {
		Tags string `json:"vg_tags"`
	}](out, "vg")
	if err != nil {
		return nil, fmt.Errorf("parse vgs output: %w", err)
	}
	var tags []string
	for _, v := range rows {
		for _, t := range strings.Split(v.Tags, ",") {
			if t = strings.TrimSpace(t); t != "" {
				tags = append(tags, t)
			}
		}
	}
	return tags, nil
}

// clusterMarks are the cluster identities among the VG's tags.
func clusterMarks(tags []string) []string {
	var ids []string
	for _, t := range tags {
		if id, ok := strings.CutPrefix(t, clusterTag); ok {
			ids = append(ids, id)
		}
	}
	return ids
}

// ClusterMark implements plugin.ClusterMarker. Two marks (two clusters that
// started at the same moment) read as the first one, which the second
// cluster's hosts then refuse.
func (l *LVM) ClusterMark(ctx context.Context) (string, error) {
	tags, err := l.vgTags(ctx)
	if err != nil {
		return "", err
	}
	if ids := clusterMarks(tags); len(ids) > 0 {
		return ids[0], nil
	}
	return "", nil
}

// MarkCluster implements plugin.ClusterMarker: the tag is added under the
// VG lock (a metadata change), then the tags are read again; if another
// cluster's mark got there too, this one is taken back.
func (l *LVM) MarkCluster(ctx context.Context, id string) (string, error) {
	if err := l.metadata(ctx, "vgchange", "--addtag", clusterTag+id, l.vg); err != nil {
		return "", fmt.Errorf("tag VG %s: %w", l.vg, err)
	}
	tags, err := l.vgTags(ctx)
	if err != nil {
		return "", err
	}
	ids := clusterMarks(tags)
	for _, other := range ids {
		if other != id {
			if err := l.metadata(ctx, "vgchange", "--deltag", clusterTag+id, l.vg); err != nil {
				return "", fmt.Errorf("untag VG %s: %w", l.vg, err)
			}
			return other, nil
		}
	}
	return id, nil
}

// ClearHint implements plugin.ClusterMarker.
func (l *LVM) ClearHint(id string) string {
	return "vgchange --deltag " + clusterTag + id + " " + l.vg
}
