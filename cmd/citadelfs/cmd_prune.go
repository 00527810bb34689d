package main

import (
	"context"
	"fmt"

	"github.com/spf13/pflag"

	"citadelfs/index"
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
	register(&command{
		name:    "repair",
		summary: "rebuild the index from the pack files ('repair index')",
		usage:   "index",
		run: func(ctx context.Context, env *cmdEnv, args []string) error {
			if len(args) != 1 || args[0] != "index" {
				return usagef("usage: citadelfs repair index")
			}
			if env.daemon != nil {
				return fmt.Errorf("stop the mount daemon before 'repair index' (it holds the index open)")
			}
			dir, err := env.repoPath()
			if err != nil {
				return err
			}
			res, err := index.RebuildIndex(dir, index.Options{InsecurePermissions: env.global.insecureRepo})
			if err != nil {
				return err
			}
			for _, d := range res.Damaged {
				fmt.Fprintf(env.stderr, "warning: %s\n", d)
			}
			if env.global.json {
				return writeJSON(env, res)
			}
			fmt.Fprintf(env.stdout, "index rebuilt from %d packs: %d blobs, %d snapshots\n", res.Packs, res.Blobs, res.Snapshots)
			if len(res.Damaged) > 0 {
				return withExit(exitDamaged, fmt.Errorf("%d packs or snapshots could not be read; run 'citadelfs check'", len(res.Damaged)))
			}
			return nil
		},
	})
}

func doPrune(ctx context.Context, env *cmdEnv, repo *snapshot.Repository, dryRun bool) error {
	res, err := repo.Prune(ctx, dryRun)
	if err != nil {
		return err
	}
	if env.global.json {
		return writeJSON(env, res)
	}
	verb := "freed"
	if dryRun {
		verb = "would free"
	}
	fmt.Fprintf(env.stdout, "prune: %s %s: %d packs deleted, %d repacked, %d blobs dropped\n",
		verb, humanBytes(res.BytesFreed), res.PacksDeleted, res.PacksRepacked, res.BlobsDeleted)
	return nil
}
