package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"citadelfs/snapshot"
)

func init() {
	register(&command{
		name:      "snapshots",
		readsOnly: true,
		summary:   "list snapshots",
		usage:     "[--json]",
		delegable: true,
		run: func(ctx context.Context, env *cmdEnv, args []string) error {
			repo, release, err := openRepo(ctx, env)
			if err != nil {
				return err
			}
			defer release()
			snaps, err := repo.Snapshots()
			if err != nil {
				return err
			}
			if env.global.json {
				return writeJSON(env, snapshotListJSON(snaps))
			}
			writeSnapshotTable(env.stdout, snaps)
			return nil
		},
	})
}

type snapshotJSON struct {
	ID          string                          `json:"id"`
	Time        time.Time                       `json:"time"`
	Created     time.Time                       `json:"created"`
	Host        string                          `json:"host"`
	System      *snapshot.SystemInfo            `json:"system,omitempty"` // kernel, OS, NVIDIA driver, CUDA; absent in old snapshots
	Tags        []string                        `json:"tags"`
	Sources     []string                        `json:"sources"`
	Bytes       int64                           `json:"bytes"`
	NewBytes    int64                           `json:"new_bytes"`
	StoredBytes int64                           `json:"stored_bytes"`
	Stats       map[string]snapshot.SourceStats `json:"source_stats"`
}

func snapshotListJSON(snaps []*snapshot.Snapshot) []snapshotJSON {
	out := make([]snapshotJSON, 0, len(snaps))
	for _, s := range snaps {
		j := snapshotJSON{ID: s.ID.String(), Time: s.Time, Created: s.Created, Host: s.Host, Tags: s.Tags, System: s.System,
			Stats: map[string]snapshot.SourceStats{}}
		if j.Tags == nil {
			j.Tags = []string{}
		}
		for _, src := range s.Sources {
			j.Sources = append(j.Sources, src.Label)
			j.Bytes += src.Stats.Bytes
			j.NewBytes += src.Stats.NewBytes
			j.StoredBytes += src.Stats.StoredBytes
			j.Stats[src.Label] = src.Stats
		}
		out = append(out, j)
	}
	return out
}

// writeSnapshotTable is the text listing, shared with status/snapshots.
func writeSnapshotTable(w interface{ Write([]byte) (int, error) }, snaps []*snapshot.Snapshot) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTIME\tTAGS\tSOURCES\tSIZE\tNEW\tSTORED")
	for _, s := range snaps {
		var labels []string
		var size, nb, stored int64
		for _, src := range s.Sources {
			labels = append(labels, src.Label)
			size += src.Stats.Bytes
			nb += src.Stats.NewBytes
			stored += src.Stats.StoredBytes
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.ID.Short(), s.Time.Local().Format("2006-01-02 15:04:05"),
			strings.Join(s.Tags, ","), strings.Join(labels, ","), humanBytes(size), humanBytes(nb), humanBytes(stored))
	}
	tw.Flush()
	fmt.Fprintf(w, "%d snapshots\n", len(snaps))
}

func writeJSON(env *cmdEnv, v any) error {
	enc := json.NewEncoder(env.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
