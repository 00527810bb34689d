package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"citadelfs/snapshot"
)

func init() {
	register(&command{
		name:      "restore",
		readsOnly: true,
		summary:   "restore a snapshot (or a path inside it) into a directory",
		usage:     "SNAPSHOT[:LABEL/PATH] TARGET   (SNAPSHOT: id prefix or latest)",
		delegable: true,
		run: func(ctx context.Context, env *cmdEnv, args []string) error {
			if len(args) != 2 {
				return usagef("restore needs SNAPSHOT[:LABEL/PATH] and TARGET")
			}
			ref, sub, _ := strings.Cut(args[0], ":")
			target := env.absPath(args[1])
			repo, release, err := openRepo(ctx, env)
			if err != nil {
				return err
			}
			defer release()
			picks, err := restorePicks(ctx, repo, ref, sub)
			if err != nil {
				return err
			}
			prog := &snapshot.Progress{Start: time.Now()}
			pl := startProgress(env, snapshotProgress(prog, "restore"))
			o := snapshot.RestoreOptions{Progress: prog, Warn: func(m string) { env.warnf("%s", m) }}
			total := &snapshot.RestoreResult{}
			var ids, names []string
			for _, p := range picks {
				res, rerr := repo.Restore(ctx, p.snap, p.node, target, o)
				if res != nil {
					total.Files += res.Files
					total.Dirs += res.Dirs
					total.Others += res.Others
					total.Bytes += res.Bytes
					total.Failed = append(total.Failed, res.Failed...)
				}
				ids = append(ids, p.snap.ID.String())
				names = append(names, p.describe())
				if rerr != nil && !errors.Is(rerr, snapshot.ErrCorrupt) {
					pl.Stop()
					return rerr
				}
				if rerr != nil && err == nil {
					err = rerr
				}
			}
			pl.Stop()
			el := time.Since(prog.Start)
			if env.global.json {
				if jerr := writeJSON(env, map[string]any{"snapshot": ids[0], "snapshots": ids, "target": target, "files": total.Files,
					"dirs": total.Dirs, "others": total.Others, "bytes": total.Bytes, "failed": nonNil(total.Failed), "duration_seconds": el.Seconds()}); jerr != nil {
					return jerr
				}
			} else {
				fmt.Fprintf(env.stdout, "restored %d files, %d dirs, %s from %s to %s in %.2fs\n",
					total.Files, total.Dirs, humanBytes(total.Bytes), strings.Join(names, ", "), target, el.Seconds())
			}
			return err
		},
	})
}

// restorePick is one Restore call: a node of a snapshot (nil: all of it).
type restorePick struct {
	snap  *snapshot.Snapshot
	node  *snapshot.Node
	label string // set when latest picked this source's snapshot
}

func (p restorePick) describe() string {
	if p.label != "" {
		return fmt.Sprintf("snapshot %s (%s)", p.snap.ID.Short(), p.label)
	}
	return "snapshot " + p.snap.ID.Short()
}

// restorePicks resolves SNAPSHOT[:LABEL/PATH]. "latest" means what the
// mount's latest/ shows: each source's newest snapshot. So latest:LABEL/…
// is the newest snapshot that has LABEL, and plain latest restores every
// source from its own newest snapshot (sources a timer each are seldom
// in one snapshot).
func restorePicks(ctx context.Context, repo *snapshot.Repository, ref, sub string) ([]restorePick, error) {
	if ref != "latest" {
		snap, err := repo.FindSnapshot(ref)
		if err != nil {
			return nil, err
		}
		node, err := repo.Resolve(ctx, snap, sub)
		if err != nil {
			return nil, err
		}
		return []restorePick{{snap: snap, node: node}}, nil
	}
	latest, err := repo.LatestSources()
	if err != nil {
		return nil, err
	}
	label, _, _ := strings.Cut(strings.Trim(sub, "/"), "/")
	if label != "" {
		if err := snapshot.ValidLabel(label); err != nil {
			return nil, usagef("%v", err)
		}
	}
	var picks []restorePick
	for _, l := range latest {
		if label != "" && l.Label != label {
			continue
		}
		path := l.Label
		if label != "" {
			path = sub
		}
		node, err := repo.Resolve(ctx, l.Snapshot, path)
		if err != nil {
			return nil, err
		}
		picks = append(picks, restorePick{snap: l.Snapshot, node: node, label: l.Label})
	}
	if len(picks) == 0 {
		return nil, fmt.Errorf("restore: no snapshot has a source %q: %w", label, snapshot.ErrNoSnapshot)
	}
	return picks, nil
}
