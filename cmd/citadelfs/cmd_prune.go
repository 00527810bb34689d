package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"citadelfs/snapshot"
)

var (
	pruneDryRun bool
	pruneGrace  time.Duration
)

// graceFlag is prune's and forget --prune's --grace.
func graceFlag(fs *pflag.FlagSet, d *time.Duration) {
	fs.DurationVar(d, "grace", snapshot.DefaultPruneGrace, "s3://: keep unreferenced packs younger than this (another host's running snapshot may be about to reference them; 0: none)")
}

func init() {
	register(&command{
		name:      "prune",
		summary:   "delete data that no snapshot references",
		usage:     "[--dry-run] [--grace DURATION]",
		delegable: true,
		flags: func(fs *pflag.FlagSet) {
			fs.BoolVar(&pruneDryRun, "dry-run", false, "only say what would be freed")
			graceFlag(fs, &pruneGrace)
		},
		run: func(ctx context.Context, env *cmdEnv, args []string) error {
			if err := checkGrace(pruneGrace); err != nil {
				return err
			}
			repo, release, err := openRepo(ctx, env)
			if err != nil {
				return err
			}
			defer release()
			return doPrune(ctx, env, repo, snapshot.PruneOptions{DryRun: pruneDryRun, Grace: pruneGrace})
		},
	})
}

// checkGrace refuses a negative --grace before anything is opened.
func checkGrace(d time.Duration) error {
	if d < 0 {
		return usagef("--grace %s: want a duration of 0 or more (2h, 30m, 0)", d)
	}
	return nil
}

func doPrune(ctx context.Context, env *cmdEnv, repo *snapshot.Repository, o snapshot.PruneOptions) error {
	res, err := repo.PruneWith(ctx, o)
	if err != nil {
		return err
	}
	warnPrune(env, res)
	if env.global.json {
		return writeJSON(env, res)
	}
	printPrune(env, res, o.DryRun)
	return nil
}

// warnPrune says on stderr, with --json too, what a prune left undone.
func warnPrune(env *cmdEnv, res *snapshot.PruneResult) {
	if res.RepackSkipped {
		env.warnf("the disk is too full to rewrite partly used packs; only unused packs were deleted (forget more snapshots, or free space, and prune again)")
	}
}

// printPrune is prune's text output.
func printPrune(env *cmdEnv, res *snapshot.PruneResult, dryRun bool) {
	verb := "freed"
	if dryRun {
		verb = "would free"
	}
	fmt.Fprintf(env.stdout, "prune: %s %s: %d packs deleted, %d repacked, %d blobs dropped\n",
		verb, humanBytes(res.BytesFreed), res.PacksDeleted, res.PacksRepacked, res.BlobsDeleted)
	if res.ObjectsKeptLocked > 0 {
		fmt.Fprintf(env.stdout, "prune: kept %d objects under Object Lock retention (until %s at the latest; a later prune deletes them)\n",
			res.ObjectsKeptLocked, res.LockedUntil.Format(time.RFC3339))
	}
	if res.RetentionRenewed > 0 {
		fmt.Fprintf(env.stdout, "prune: renewed the Object Lock retention of %d objects in use, to %s\n",
			res.RetentionRenewed, res.RetainedUntil.Format(time.RFC3339))
	}
	if res.PacksKeptYoung > 0 {
		fmt.Fprintf(env.stdout, "prune: kept %d unreferenced packs younger than the grace of %s (another host's snapshot may be using them)\n",
			res.PacksKeptYoung, res.Grace)
	}
}
