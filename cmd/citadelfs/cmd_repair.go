package main

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/pflag"

	"citadelfs/snapshot"
)

var repairFlags struct {
	dryRun, forget bool
}

// repairSubcommands are the forms of `citadelfs repair`.
var repairSubcommands = map[string]func(ctx context.Context, env *cmdEnv) error{
	"index": repairIndex,
}

func init() {
	register(&command{
		name:      "repair",
		summary:   "rebuild the index from the packs ('repair index')",
		usage:     "index",
		delegable: true,
		flags: func(fs *pflag.FlagSet) {
			fs.BoolVar(&repairFlags.dryRun, "dry-run", false, "only say what would change")
			fs.BoolVar(&repairFlags.forget, "forget", false, "repair snapshots: remove the originals after writing the repaired ones, and snapshots left empty")
		},
		run: func(ctx context.Context, env *cmdEnv, args []string) error {
			var names []string
			for n := range repairSubcommands {
				names = append(names, n)
			}
			sort.Strings(names)
			if len(args) != 1 || repairSubcommands[args[0]] == nil {
				return usagef("usage: citadelfs repair %s", strings.Join(names, "|"))
			}
			if repairFlags.forget && args[0] != "snapshots" {
				return usagef("--forget is for 'repair snapshots'")
			}
			if repairFlags.dryRun && args[0] == "index" {
				return usagef("'repair index' has no --dry-run (it changes nothing until the rebuilt index is complete)")
			}
			return repairSubcommands[args[0]](ctx, env)
		},
	})
}

// repairIndex rebuilds the index from the packs, keeping the old index's
// records (snapshot.RepairIndex).
func repairIndex(ctx context.Context, env *cmdEnv) error {
	if env.daemon != nil {
		return fmt.Errorf("stop the mount daemon before 'repair index' (it holds the index open)")
	}
	dir, err := env.repoPath()
	if err != nil {
		return err
	}
	res, err := snapshot.RepairIndex(dir, snapshot.Options{InsecurePermissions: env.global.insecureRepo})
	if err != nil {
		return err
	}
	for _, d := range res.Damaged {
		env.warnf("%s", d)
	}
	if res.OldIndex != "" {
		env.warnf("%s; its records are lost", res.OldIndex)
	}
	if env.global.json {
		if res.Damaged == nil {
			res.Damaged = []string{}
		}
		if err := writeJSON(env, res); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(env.stdout, "index rebuilt from %d packs: %d blobs, %d snapshots; %d records kept from the old index (%d quarantined chunks)\n",
			res.Packs, res.Blobs, res.Snapshots, res.Carried, res.Quarantined)
		if len(res.DerivedAttempts) > 0 {
			fmt.Fprintf(env.stdout, "last snapshot of %s re-derived from the snapshots\n", strings.Join(res.DerivedAttempts, ", "))
		}
		if res.IntegrityUnknown {
			fmt.Fprintln(env.stdout, "integrity unknown (earlier check findings are lost): run 'citadelfs check --read-data'")
		}
	}
	if len(res.Damaged) > 0 {
		return withExit(exitDamaged, fmt.Errorf("%d packs or snapshots could not be read; run 'citadelfs check'", len(res.Damaged)))
	}
	return nil
}
