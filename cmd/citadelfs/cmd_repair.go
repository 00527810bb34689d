package main

import (
	"context"
	"errors"
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
var repairSubcommands = map[string]func(ctx context.Context, env *cmdEnv, args []string) error{
	"index":     repairIndex,
	"packs":     repairPacks,
	"snapshots": repairSnapshots,
	"undelete":  repairUndelete,
}

func init() {
	register(&command{
		name:      "repair",
		summary:   "rebuild the index, salvage damaged packs, rewrite snapshots that lost data",
		usage:     "index | packs [PACK...] [--dry-run] | snapshots [--forget] [--dry-run] | undelete [--dry-run]",
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
			if len(args) == 0 || repairSubcommands[args[0]] == nil || len(args) > 1 && args[0] != "packs" {
				return usagef("usage: citadelfs repair %s", strings.Join(names, "|"))
			}
			if repairFlags.forget && args[0] != "snapshots" {
				return usagef("--forget is for 'repair snapshots'")
			}
			if repairFlags.dryRun && args[0] == "index" {
				return usagef("'repair index' has no --dry-run (it changes nothing until the rebuilt index is complete)")
			}
			return repairSubcommands[args[0]](ctx, env, args[1:])
		},
	})
}

// repairIndex rebuilds the index from the packs, keeping the old index's
// records (snapshot.RepairIndex).
func repairIndex(ctx context.Context, env *cmdEnv, _ []string) error {
	if env.daemon != nil {
		return fmt.Errorf("stop the mount daemon before 'repair index' (it holds the index open)")
	}
	dir, err := env.repoPath()
	if err != nil {
		return err
	}
	if loc, ok := env.storeRepo(dir); ok {
		return repairRemoteIndex(env, loc)
	}
	res, err := snapshot.RepairIndexContext(ctx, dir, snapshot.Options{InsecurePermissions: env.global.insecureRepo})
	if err != nil {
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			return withExit(exitInterrupted, fmt.Errorf("interrupted; the old index is unchanged"))
		}
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

// repairPacks salvages damaged packs (snapshot.RepairPacks). Exit 4 when
// blobs were (or, with --dry-run, would be) lost.
func repairPacks(ctx context.Context, env *cmdEnv, packs []string) error {
	repo, release, err := openRepo(ctx, env)
	if err != nil {
		return err
	}
	defer release()
	res, err := repo.RepairPacks(ctx, packs, repairFlags.dryRun)
	if err != nil {
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			return withExit(exitInterrupted, fmt.Errorf("interrupted; the packs repaired so far are done, the rest unchanged"))
		}
		return err
	}
	if env.global.json {
		if err := writeJSON(env, res); err != nil {
			return err
		}
	} else {
		verb, lostVerb := "salvaged", "lost"
		if res.DryRun {
			verb, lostVerb = "would salvage", "would lose"
		}
		for _, p := range res.Packs {
			line := fmt.Sprintf("pack %s (%s): %s %d blobs (%s)", p.Pack.Short(), p.Why, verb, p.Salvaged, humanBytes(p.SalvagedBytes))
			if !p.NewPack.IsZero() {
				line += " into pack " + p.NewPack.Short()
			}
			if len(p.Lost) > 0 {
				var ids []string
				for _, id := range p.Lost {
					ids = append(ids, id.Short())
				}
				line += fmt.Sprintf(", %s %d: %s", lostVerb, len(p.Lost), strings.Join(ids, " "))
			}
			if len(p.Dropped) > 0 {
				line += fmt.Sprintf(", %d damaged that no snapshot uses dropped", len(p.Dropped))
			}
			fmt.Fprintln(env.stdout, line)
		}
		for _, a := range res.Affected {
			fmt.Fprintf(env.stdout, "affected: %s\n", a)
		}
		switch {
		case len(res.Packs) == 0:
			fmt.Fprintln(env.stdout, "no damaged packs known (run 'citadelfs check --read-data' to find damage)")
		case res.DryRun:
			fmt.Fprintf(env.stdout, "dry run: %d damaged packs; nothing changed\n", len(res.Packs))
		default:
			fmt.Fprintf(env.stdout, "repaired %d packs: %d blobs salvaged, %d lost\n", len(res.Packs), res.Salvaged, res.Lost)
		}
		if res.Lost > 0 {
			fmt.Fprintln(env.stdout, "lost chunks are stored again by the next snapshot where a source still has them; 'citadelfs repair snapshots' rewrites the snapshots that still miss them")
		}
	}
	if res.Lost > 0 {
		return withExit(exitDamaged, errSilent)
	}
	return nil
}

// repairSnapshots rewrites snapshots that use lost data
// (snapshot.RepairSnapshots). A dry run that finds damage exits 4, as a
// check would; a repair that wrote its snapshots exits 0.
func repairSnapshots(ctx context.Context, env *cmdEnv, _ []string) error {
	repo, release, err := openRepo(ctx, env)
	if err != nil {
		return err
	}
	defer release()
	res, err := repo.RepairSnapshots(ctx, repairFlags.dryRun, repairFlags.forget)
	if err != nil {
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			return withExit(exitInterrupted, fmt.Errorf("interrupted; no repaired snapshot was committed"))
		}
		return err
	}
	if env.global.json {
		if err := writeJSON(env, res); err != nil {
			return err
		}
	} else {
		for _, s := range res.Snapshots {
			head := fmt.Sprintf("snapshot %s %s", s.Snapshot.Short(), s.Time.Local().Format("2006-01-02T15:04:05"))
			switch {
			case s.Empty && repairFlags.forget && !res.DryRun:
				fmt.Fprintf(env.stdout, "%s: nothing could be kept; forgotten\n", head)
			case s.Empty:
				fmt.Fprintf(env.stdout, "%s: nothing could be kept (every source's listing is lost); --forget removes it\n", head)
			case res.DryRun:
				fmt.Fprintf(env.stdout, "%s: would be repaired\n", head)
			default:
				fmt.Fprintf(env.stdout, "%s: repaired as %s\n", head, s.Repaired.Short())
			}
			for _, p := range s.Paths {
				fmt.Fprintf(env.stdout, "  %s %s: %s\n", p.Kind, p.Path, p.Lost)
			}
		}
		switch {
		case len(res.Snapshots) == 0:
			fmt.Fprintln(env.stdout, "no snapshot uses lost data (run 'citadelfs check --read-data' first to find damage)")
		case res.DryRun:
			fmt.Fprintf(env.stdout, "dry run: %d snapshots would be rewritten; nothing changed\n", len(res.Snapshots))
		default:
			fmt.Fprintf(env.stdout, "%d snapshots repaired (tag %q; each damaged path marked with the %s xattr), %d originals forgotten\n",
				len(res.Snapshots), snapshot.RepairedTag, snapshot.RepairedXattr, len(res.Forgotten))
		}
	}
	if res.DryRun && len(res.Snapshots) > 0 {
		return withExit(exitDamaged, errSilent)
	}
	return nil
}
