package main

import (
	"context"
	"fmt"

	"github.com/spf13/pflag"

	"citadelfs/snapshot"
)

var pruneDryRun bool

func init() {
	register(&command{
		name:      "prune",
		summary:   "delete data that no snapshot references",
		usage:     "[--dry-run]",
		delegable: true,
		flags: func(fs *pflag.FlagSet) {
			fs.BoolVar(&pruneDryRun, "dry-run", false, "only say what would be freed")
		},
		run: func(ctx context.Context, env *cmdEnv, args []string) error {
			repo, release, err := openRepo(ctx, env)
			if err != nil {
				return err
			}
			defer release()
			return doPrune(ctx, env, repo, pruneDryRun)
		},
	})
}

func doPrune(ctx context.Context, env *cmdEnv, repo *snapshot.Repository, dryRun bool) error {
	res, err := repo.Prune(ctx, dryRun)
	if err != nil {
		return err
	}
	warnPrune(env, res)
	if env.global.json {
		return writeJSON(env, res)
	}
	printPrune(env, res, dryRun)
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
}
