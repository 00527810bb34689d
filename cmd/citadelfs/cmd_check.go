package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"citadelfs/snapshot"
)

var checkFlags struct {
	readData bool
	subset   string
}

func init() {
	register(&command{
		name:      "check",
		readsOnly: true,
		summary:   "verify the repository's structure (and with --read-data every chunk's hash)",
		usage:     "[--read-data [--subset N%]]",
		delegable: true,
		flags: func(fs *pflag.FlagSet) {
			fs.BoolVar(&checkFlags.readData, "read-data", false, "read every chunk back and verify its hash")
			fs.StringVar(&checkFlags.subset, "subset", "", "with --read-data, read only N% of the packs, chosen at random")
		},
		run: func(ctx context.Context, env *cmdEnv, args []string) error {
			if len(args) > 0 {
				return usagef("check takes no arguments")
			}
			o := snapshot.CheckOptions{ReadData: checkFlags.readData}
			if checkFlags.subset != "" {
				v, err := strconv.ParseFloat(strings.TrimSuffix(checkFlags.subset, "%"), 64)
				if err != nil || v <= 0 || v > 100 {
					return usagef("--subset %q: want a percentage in (0,100], e.g. 10%%", checkFlags.subset)
				}
				o.Subset = v / 100
				o.ReadData = true
			}
			repo, release, err := openRepo(ctx, env)
			if err != nil {
				return err
			}
			defer release()
			var c counts
			pl := startProgress(env, func() string { done, total := c.get(); return fmt.Sprintf("check: read %d/%d packs", done, total) })
			o.Progress = c.setInts
			rep, err := repo.Check(ctx, o)
			pl.Stop()
			if err != nil {
				if errors.Is(err, context.Canceled) && ctx.Err() != nil {
					return withExit(exitInterrupted, fmt.Errorf("interrupted; the last check's record is unchanged"))
				}
				return err
			}
			if rep.OK() && o.ReadsAll() && env.daemon != nil && env.daemon.integrity != nil {
				// Every chunk read back sound: the corrupt reads the mount
				// saw are repaired (the stored record went with the check).
				env.daemon.integrity.Reset()
			}
			if env.global.json {
				if err := writeJSON(env, map[string]any{"ok": rep.OK(), "snapshots": rep.Snapshots, "trees": rep.Trees,
					"data_blobs": rep.DataBlobs, "packs": rep.Packs, "packs_read": rep.PacksRead,
					"index_tables": rep.IndexTables, "index_keys": rep.IndexKeys,
					"problems": nonNil(rep.Problems), "affected": nonNil(rep.Affected), "notes": nonNil(rep.Notes)}); err != nil {
					return err
				}
			} else {
				for _, p := range rep.Problems {
					fmt.Fprintf(env.stdout, "error: %s\n", p)
				}
				for _, n := range rep.Notes {
					fmt.Fprintf(env.stdout, "note: %s\n", n)
				}
				for _, a := range rep.Affected {
					fmt.Fprintf(env.stdout, "affected: %s\n", a)
				}
				status := "no errors"
				if !rep.OK() {
					status = fmt.Sprintf("%d errors", len(rep.Problems))
				}
				fmt.Fprintf(env.stdout, "checked %d snapshots, %d trees, %d chunks in %d packs (%d read back), the index (%d tables, %d keys): %s\n",
					rep.Snapshots, rep.Trees, rep.DataBlobs, rep.Packs, rep.PacksRead, rep.IndexTables, rep.IndexKeys, status)
			}
			if !rep.OK() {
				return withExit(exitDamaged, errSilent)
			}
			return nil
		},
	})
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
