package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"citadelfs/index"
	"citadelfs/snapshot"
)

var forgetFlags struct {
	policy        snapshot.Policy
	prune, dryRun bool
	fromConfig    bool
}

func init() {
	register(&command{
		name:      "forget",
		summary:   "remove snapshots by id or by retention policy (default keep 7 daily, 4 weekly, 12 monthly)",
		usage:     "[ID ...] [--keep-within SPAN --keep-hourly N --keep-daily N --keep-weekly N --keep-monthly N ...] [--prune] [--dry-run]",
		delegable: true,
		flags: func(fs *pflag.FlagSet) {
			p := &forgetFlags.policy
			*p = snapshot.Policy{}
			fs.IntVar(&p.Last, "keep-last", 0, "keep the newest N snapshots")
			fs.IntVar(&p.Hourly, "keep-hourly", 0, "keep the newest snapshot of each of the last N hours")
			fs.IntVar(&p.Daily, "keep-daily", 0, "keep the newest snapshot of each of the last N days")
			fs.IntVar(&p.Weekly, "keep-weekly", 0, "keep the newest snapshot of each of the last N ISO weeks")
			fs.IntVar(&p.Monthly, "keep-monthly", 0, "keep the newest snapshot of each of the last N months")
			fs.IntVar(&p.Yearly, "keep-yearly", 0, "keep the newest snapshot of each of the last N years")
			fs.Var(&p.Within, "keep-within", "keep every snapshot within this span of each source's newest (30d, 2w, 12h, 1y6m)")
			fs.StringArrayVar(&p.KeepTags, "keep-tag", nil, "keep every snapshot with this tag")
			fs.BoolVar(&forgetFlags.prune, "prune", false, "prune unreferenced data afterwards")
			fs.BoolVar(&forgetFlags.dryRun, "dry-run", false, "only say what would be removed")
		},
		run: runForget,
	})
}

func runForget(ctx context.Context, env *cmdEnv, args []string) error {
	repo, release, err := openRepo(ctx, env)
	if err != nil {
		return err
	}
	defer release()
	var remove []index.ID
	if len(args) > 0 {
		if !forgetFlags.policy.Empty() {
			return usagef("give snapshot ids or --keep-* rules, not both")
		}
		seen := map[index.ID]bool{}
		for _, a := range args {
			s, err := repo.FindSnapshot(a)
			if err != nil {
				return err
			}
			if seen[s.ID] { // the same snapshot named twice
				continue
			}
			seen[s.ID] = true
			remove = append(remove, s.ID)
			fmt.Fprintf(env.stdout, "remove %s %s\n", s.ID.Short(), s.Time.Local().Format(time.DateTime))
		}
	} else {
		p := forgetFlags.policy
		policyOf := func(string) snapshot.Policy { return p }
		if p.Empty() {
			cfg, err := env.config()
			if err != nil {
				return err
			}
			if policyOf, err = cfg.policies(); err != nil {
				return usagef("retention in %s: %v", env.global.configPath, err)
			}
		} else if err := p.Validate(); err != nil {
			return usagef("--%v", strings.Replace(err.Error(), " ", "-", 1))
		}
		snaps, err := repo.Snapshots()
		if err != nil {
			return err
		}
		for _, d := range snapshot.ApplySourcePolicies(snaps, policyOf, time.Local) {
			s := d.Snapshot
			verb := "keep  "
			if !d.Keep {
				verb = "remove"
				remove = append(remove, s.ID)
			}
			if !env.global.json {
				fmt.Fprintf(env.stdout, "%s %s %s %-20s %s\n", verb, s.ID.Short(), s.Time.Local().Format(time.DateTime),
					strings.Join(sourceLabels(s), ","), strings.Join(d.Reasons, ","))
			}
		}
	}
	if forgetFlags.dryRun {
		fmt.Fprintf(env.stdout, "dry run: would remove %d snapshots\n", len(remove))
		return nil
	}
	if err := repo.Forget(ctx, remove); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "removed %d snapshots\n", len(remove))
	if forgetFlags.prune {
		return doPrune(ctx, env, repo, false)
	}
	return nil
}

func sourceLabels(s *snapshot.Snapshot) []string {
	var out []string
	for _, src := range s.Sources {
		out = append(out, src.Label)
	}
	return out
}
