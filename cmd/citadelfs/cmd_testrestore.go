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

// `citadelfs test-restore` is validation.test_restore_monthly's run (the
// generated monthly timer): a sample of files from each source's newest
// snapshot restored to a temporary directory and compared, with the result
// recorded for the monitor's test_restore rule.
var testRestoreFlags struct {
	sample  string
	sources []string
	tempDir string
}

func init() {
	register(&command{
		name:      "test-restore",
		summary:   "restore a random sample of files from the newest snapshots to a temporary directory and verify them",
		usage:     "[--sample N|PCT%] [--source LABEL ...] [--temp-dir DIR]",
		delegable: true,
		flags: func(fs *pflag.FlagSet) {
			testRestoreFlags.sources = nil
			fs.StringVar(&testRestoreFlags.sample, "sample", "20", "files per source: a count, or a percentage of each source's files (5%)")
			fs.StringArrayVar(&testRestoreFlags.sources, "source", nil, "only this source (repeatable; default every source)")
			fs.StringVar(&testRestoreFlags.tempDir, "temp-dir", "", "where the temporary directory is made (default backup_config.storage.temp_dir, else $TMPDIR)")
		},
		run: runTestRestore,
	})
}

func runTestRestore(ctx context.Context, env *cmdEnv, args []string) error {
	if len(args) > 0 {
		return usagef("test-restore takes no arguments")
	}
	o := snapshot.TestRestoreOptions{Labels: testRestoreFlags.sources, TempDir: testRestoreFlags.tempDir}
	s := strings.TrimSpace(testRestoreFlags.sample)
	if pct, ok := strings.CutSuffix(s, "%"); ok {
		v, err := strconv.ParseFloat(pct, 64)
		if err != nil || v <= 0 || v > 100 {
			return usagef("--sample %q: want a count of files or a percentage in (0,100], e.g. 20 or 5%%", s)
		}
		o.Fraction = v / 100
	} else {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return usagef("--sample %q: want a count of files or a percentage in (0,100], e.g. 20 or 5%%", s)
		}
		o.Files = n
	}
	for _, l := range o.Labels {
		if err := snapshot.ValidLabel(l); err != nil {
			return usagef("--source: %v", err)
		}
	}
	if o.TempDir == "" {
		cfg, err := env.config()
		if err != nil {
			return err
		}
		o.TempDir = cfg.TempDir
	} else {
		o.TempDir = env.absPath(o.TempDir)
	}
	repo, release, err := openRepo(ctx, env)
	if err != nil {
		return err
	}
	defer release()
	var c counts
	pl := startProgress(env, func() string { done, total := c.get(); return fmt.Sprintf("test restore: %d/%d files", done, total) })
	o.Progress = c.setInts
	rep, err := repo.TestRestore(ctx, o)
	pl.Stop()
	if err != nil {
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			return withExit(exitInterrupted, fmt.Errorf("interrupted; the last test restore's record is unchanged"))
		}
		return err
	}
	if env.global.json {
		if err := writeJSON(env, map[string]any{"ok": rep.OK(), "snapshots": nonNil(rep.Snapshots), "files": rep.Files, "bytes": rep.Bytes,
			"problems": nonNil(rep.Problems), "source_compared": rep.SourceCompared, "source_differs": nonNil(rep.SourceDiffers)}); err != nil {
			return err
		}
	} else {
		for _, p := range rep.Problems {
			fmt.Fprintf(env.stdout, "error: %s\n", p)
		}
		for _, d := range rep.SourceDiffers {
			fmt.Fprintf(env.stdout, "note: %s\n", d)
		}
		status := "all verified"
		if !rep.OK() {
			status = fmt.Sprintf("%d damaged", len(rep.Problems))
		}
		fmt.Fprintf(env.stdout, "test restore of %s: %d files (%s) restored and compared with the snapshots' chunk hashes, %d also with the unchanged source: %s\n",
			strings.Join(rep.Snapshots, ", "), rep.Files, humanBytes(rep.Bytes), rep.SourceCompared, status)
	}
	if !rep.OK() {
		return withExit(exitDamaged, errSilent)
	}
	return nil
}
