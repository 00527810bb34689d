package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"citadelfs/internal/fsadapter"
	"citadelfs/snapshot"
)

func init() {
	register(&command{
		name:      "snapshots",
		readsOnly: true,
		summary:   "list snapshots",
		usage:     "[--tag TAG[,TAG...] ...] [--host HOST ...] [--source LABEL ...] [--path PATH ...] [--json]",
		delegable: true,
		flags: func(fs *pflag.FlagSet) {
			snapshotsFlags = snapshotFilter{}
			fs.StringArrayVar(&snapshotsFlags.tags, "tag", nil, "only snapshots with these tags (TAG,TAG: all of them; repeated: any of the lists)")
			fs.StringArrayVar(&snapshotsFlags.hosts, "host", nil, "only snapshots taken on this host (repeatable)")
			fs.StringArrayVar(&snapshotsFlags.sources, "source", nil, "only snapshots with this source label (repeatable)")
			fs.StringArrayVar(&snapshotsFlags.paths, "path", nil, "only snapshots with a source of this directory or path (repeatable)")
		},
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
			snaps = snapshotsFlags.apply(snaps, env.absPath)
			if env.global.json {
				return writeJSON(env, snapshotListJSON(snaps))
			}
			fsadapter.WriteSnapshotTable(env.stdout, snaps)
			return nil
		},
	})
}

var snapshotsFlags snapshotFilter

// snapshotFilter is snapshots' --tag, --host, --source and --path, as
// restic's: each kind given must match, any of its values will do, and a
// --tag value of a,b needs both tags.
type snapshotFilter struct {
	tags, hosts, sources, paths []string
}

func (f snapshotFilter) apply(snaps []*snapshot.Snapshot, abs func(string) string) []*snapshot.Snapshot {
	var out []*snapshot.Snapshot
	for _, s := range snaps {
		if f.match(s, abs) {
			out = append(out, s)
		}
	}
	return out
}

func (f snapshotFilter) match(s *snapshot.Snapshot, abs func(string) string) bool {
	if len(f.tags) > 0 && !anyOf(f.tags, func(list string) bool {
		for _, t := range strings.Split(list, ",") {
			if t = strings.TrimSpace(t); t != "" && !s.HasTag(t) {
				return false
			}
		}
		return true
	}) {
		return false
	}
	if len(f.hosts) > 0 && !anyOf(f.hosts, func(h string) bool { return h == s.Host }) {
		return false
	}
	if len(f.sources) > 0 && !anyOf(f.sources, func(l string) bool { _, ok := s.Source(l); return ok }) {
		return false
	}
	if len(f.paths) > 0 && !anyOf(f.paths, func(p string) bool {
		p = filepath.Clean(abs(p))
		for _, src := range s.Sources {
			if len(src.Paths) == 0 && filepath.Clean(src.Path) == p {
				return true
			}
			for _, sp := range src.Paths {
				if filepath.Clean(sp) == p {
					return true
				}
			}
		}
		return false
	}) {
		return false
	}
	return true
}

func anyOf(vals []string, ok func(string) bool) bool {
	for _, v := range vals {
		if ok(v) {
			return true
		}
	}
	return false
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

func writeJSON(env *cmdEnv, v any) error {
	enc := json.NewEncoder(env.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
