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
			snap, err := repo.FindSnapshot(ref)
			if err != nil {
				return err
			}
			node, err := repo.Resolve(ctx, snap, sub)
			if err != nil {
				return err
			}
			prog := &snapshot.Progress{Start: time.Now()}
			pl := startProgress(env, snapshotProgress(prog, "restore"))
			res, err := repo.Restore(ctx, snap, node, target, snapshot.RestoreOptions{Progress: prog, Warn: func(m string) {
				env.warnf("%s", m)
			}})
			pl.Stop()
			if err != nil && !errors.Is(err, snapshot.ErrCorrupt) {
				return err
			}
			el := time.Since(prog.Start)
			if env.global.json {
				if jerr := writeJSON(env, map[string]any{"snapshot": snap.ID.String(), "target": target, "files": res.Files,
					"dirs": res.Dirs, "others": res.Others, "bytes": res.Bytes, "failed": res.Failed, "duration_seconds": el.Seconds()}); jerr != nil {
					return jerr
				}
			} else {
				fmt.Fprintf(env.stdout, "restored %d files, %d dirs, %s from snapshot %s to %s in %.2fs\n",
					res.Files, res.Dirs, humanBytes(res.Bytes), snap.ID.Short(), target, el.Seconds())
			}
			return err
		},
	})
}
