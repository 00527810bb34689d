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
	grace         time.Duration
	fromConfig    bool
	sources       []string
}

func init() {
	register(&command{
		name:      "forget",
		summary:   "remove snapshots by id or by retention policy (default keep 7 daily, 4 weekly, 12 monthly)",
		usage:     "[ID ...] | --source LABEL ... | [--keep-within SPAN --keep-hourly N --keep-daily N --keep-weekly N --keep-monthly N ...] [--prune] [--dry-run]",
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
			graceFlag(fs, &forgetFlags.grace)
			forgetFlags.sources = nil
			fs.StringArrayVar(&forgetFlags.sources, "source", nil, "forget LABEL's last snapshot attempt, so the monitor stops reporting the label (a typo, a retired source); its snapshots stay (repeatable; alone, without ids or --keep-*)")
		},
		run: runForget,
	})
}

// forgetJSON is forget --json: one document whatever forget did. Snapshots
// are the ones named (keep false) or every snapshot a policy decided on;
// removed lists the ids forgotten (with --dry-run: that would be), archived
// the kept ones tagged archive (docs/cli.md).
type forgetJSON struct {
	DryRun    bool                  `json:"dry_run"`
	Snapshots []forgetDecisionJSON  `json:"snapshots"`
	Removed   []string              `json:"removed"`
	Archived  []forgetArchiveJSON   `json:"archived"`
	Prune     *snapshot.PruneResult `json:"prune,omitempty"`
	// Attempts is forget --source's: one row per label.
	Attempts []forgetAttemptJSON `json:"attempts,omitempty"`
}

type forgetDecisionJSON struct {
	ID      string    `json:"id"`
	Time    time.Time `json:"time"`
	Sources []string  `json:"sources"`
	Keep    bool      `json:"keep"`
	Reasons []string  `json:"reasons"`
}

// forgetArchiveJSON is one snapshot tagged archive: its old id and the id
// of the manifest that replaced it ("" on a dry run).
type forgetArchiveJSON struct {
	ID    string `json:"id"`
	NewID string `json:"new_id"`
}

type forgetAttemptJSON struct {
	Label string `json:"label"`
	// Recorded says whether the label had an attempt record; Forgotten
	// whether it was removed (false on a dry run).
	Recorded  bool `json:"recorded"`
	Forgotten bool `json:"forgotten"`
}

func newForgetJSON() forgetJSON {
	return forgetJSON{DryRun: forgetFlags.dryRun, Snapshots: []forgetDecisionJSON{}, Removed: []string{}, Archived: []forgetArchiveJSON{}}
}

func (out *forgetJSON) decided(s *snapshot.Snapshot, keep bool, reasons []string) {
	if reasons == nil {
		reasons = []string{}
	}
	out.Snapshots = append(out.Snapshots, forgetDecisionJSON{ID: s.ID.String(), Time: s.Time, Sources: sourceLabels(s), Keep: keep, Reasons: reasons})
	if !keep {
		out.Removed = append(out.Removed, s.ID.String())
	}
}

func runForget(ctx context.Context, env *cmdEnv, args []string) error {
	if err := checkGrace(forgetFlags.grace); err != nil {
		return err
	}
	repo, release, err := openRepo(ctx, env)
	if err != nil {
		return err
	}
	defer release()
	if len(forgetFlags.sources) > 0 {
		return forgetAttempts(env, repo, args)
	}
	out := newForgetJSON()
	var remove []index.ID
	var toArchive []*snapshot.Snapshot
	var archiveAfter string
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
			out.decided(s, false, nil)
			if !env.global.json {
				fmt.Fprintf(env.stdout, "remove %s %s\n", s.ID.Short(), s.Time.Local().Format(time.DateTime))
			}
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
		cfg, err := env.config()
		if err != nil {
			return err
		}
		var cutoff time.Time
		if archiveAfter = cfg.ArchiveAfter; archiveAfter != "" {
			span, _ := snapshot.ParseWithin(archiveAfter) // checked when the config was read
			cutoff = span.Before(time.Now())
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
			} else if !cutoff.IsZero() && s.Time.Before(cutoff) && !s.HasTag(archiveTag) {
				toArchive = append(toArchive, s)
			}
			out.decided(s, d.Keep, d.Reasons)
			if !env.global.json {
				fmt.Fprintf(env.stdout, "%s %s %s %-20s %s\n", verb, s.ID.Short(), s.Time.Local().Format(time.DateTime),
					strings.Join(sourceLabels(s), ","), strings.Join(d.Reasons, ","))
			}
		}
	}
	if forgetFlags.dryRun {
		if env.global.json {
			for _, s := range toArchive {
				out.Archived = append(out.Archived, forgetArchiveJSON{ID: s.ID.String()})
			}
			return writeJSON(env, out)
		}
		fmt.Fprintf(env.stdout, "dry run: would remove %d snapshots", len(remove))
		if len(toArchive) > 0 {
			fmt.Fprintf(env.stdout, " and tag %d older than archive_threshold %s %q", len(toArchive), archiveAfter, archiveTag)
		}
		fmt.Fprintln(env.stdout)
		return nil
	}
	if err := repo.Forget(ctx, remove); err != nil {
		return err
	}
	if !env.global.json {
		fmt.Fprintf(env.stdout, "removed %d snapshots\n", len(remove))
	}
	// With --json, what was done is printed even when a later step fails:
	// the snapshots are gone whatever tagging or prune did.
	fail := func(err error) error {
		if env.global.json {
			writeJSON(env, out)
		}
		return err
	}
	if len(toArchive) > 0 {
		done, err := repo.AddTag(ctx, toArchive, archiveTag)
		for _, rt := range done {
			out.Archived = append(out.Archived, forgetArchiveJSON{ID: rt.Old.String(), NewID: rt.New.String()})
			if !env.global.json {
				fmt.Fprintf(env.stdout, "tagged %s %s (older than archive_threshold %s): now %s\n", archiveTag, rt.Old.Short(), archiveAfter, rt.New.Short())
			}
		}
		if err != nil {
			return fail(fmt.Errorf("tagging snapshots %q: %w", archiveTag, err))
		}
	}
	if forgetFlags.prune {
		res, err := repo.PruneWith(ctx, snapshot.PruneOptions{Grace: forgetFlags.grace})
		if err != nil {
			return fail(err)
		}
		warnPrune(env, res)
		out.Prune = res
		if !env.global.json {
			printPrune(env, res, false)
		}
	}
	if env.global.json {
		return writeJSON(env, out)
	}
	return nil
}

// archiveTag is what forget gives kept snapshots older than the config's
// archive_threshold: the set a copy to an off-host repository will take
// (docs/config.md). Retention still decides whether they stay.
const archiveTag = "archive"

func sourceLabels(s *snapshot.Snapshot) []string {
	var out []string
	for _, src := range s.Sources {
		out = append(out, src.Label)
	}
	return out
}

// forgetAttempts is forget --source: it removes labels' attempt records and
// never a snapshot. Snapshots of a retired source are removed by id
// (forget ID ...): one flag that deletes a source's history is too easy to
// give by mistake, and a mistyped label has no snapshots anyway.
func forgetAttempts(env *cmdEnv, repo *snapshot.Repository, args []string) error {
	if len(args) > 0 || !forgetFlags.policy.Empty() || forgetFlags.prune {
		return usagef("--source forgets a label's attempt record alone; give snapshot ids, --keep-* or --prune in another run")
	}
	for _, l := range forgetFlags.sources {
		if err := snapshot.ValidLabel(l); err != nil {
			return usagef("--source: %v", err)
		}
	}
	out := newForgetJSON()
	for _, l := range forgetFlags.sources {
		row := forgetAttemptJSON{Label: l}
		if forgetFlags.dryRun {
			atts, err := repo.Attempts()
			if err != nil {
				return err
			}
			for _, a := range atts {
				row.Recorded = row.Recorded || a.Label == l
			}
			out.Attempts = append(out.Attempts, row)
			switch {
			case env.global.json:
			case row.Recorded:
				fmt.Fprintf(env.stdout, "dry run: would forget the attempts of %s\n", l)
			default:
				fmt.Fprintf(env.stdout, "dry run: no attempt of %s recorded\n", l)
			}
			continue
		}
		ok, err := repo.ForgetAttempt(l)
		if err != nil {
			return err
		}
		row.Recorded, row.Forgotten = ok, ok
		out.Attempts = append(out.Attempts, row)
		switch {
		case env.global.json:
		case ok:
			fmt.Fprintf(env.stdout, "forgot the attempts of %s (its snapshots stay)\n", l)
		default:
			fmt.Fprintf(env.stdout, "no attempt of %s recorded\n", l)
		}
	}
	if env.global.json {
		return writeJSON(env, out)
	}
	return nil
}
