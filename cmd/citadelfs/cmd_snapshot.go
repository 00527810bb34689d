package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"citadelfs/snapshot"
)

type snapshotFlags struct {
	sources []string
	tags    []string
	at      string
	readAll bool
}

var snapFlags snapshotFlags

func init() {
	register(&command{
		name:      "snapshot",
		summary:   "take a deduplicated snapshot of the configured sources",
		usage:     "[--source LABEL=PATH ...] [--tag TAG ...] [--time RFC3339] [--read-all]",
		delegable: true,
		flags: func(fs *pflag.FlagSet) {
			snapFlags = snapshotFlags{}
			fs.StringArrayVar(&snapFlags.sources, "source", nil, "LABEL=PATH to snapshot (repeatable; default: the config file's sources)")
			fs.StringArrayVar(&snapFlags.tags, "tag", nil, "tag for the snapshot, e.g. daily (repeatable)")
			fs.StringVar(&snapFlags.at, "time", "", "time the snapshot represents, RFC 3339 (default now)")
			fs.BoolVar(&snapFlags.readAll, "read-all", false, "read every file again, not trusting unchanged size and times (e.g. weekly, for files written through mmap)")
		},
		run: runSnapshot,
	})
}

// snapshotSummary is the --json output and the source of the text summary.
type snapshotSummary struct {
	ID          string                          `json:"id"`
	Time        time.Time                       `json:"time"`
	Tags        []string                        `json:"tags,omitempty"`
	Files       int64                           `json:"files"`
	Dirs        int64                           `json:"dirs"`
	Bytes       int64                           `json:"bytes"`
	DataBytes   int64                           `json:"data_bytes"`
	ReadBytes   int64                           `json:"read_bytes"`
	NewBytes    int64                           `json:"new_bytes"`
	StoredBytes int64                           `json:"stored_bytes"`
	Dedup       float64                         `json:"dedup_ratio"`       // data bytes / new bytes (0 when nothing new)
	Compression float64                         `json:"compression_ratio"` // stored bytes / new bytes
	DurationSec float64                         `json:"duration_seconds"`
	Warnings    []string                        `json:"warnings"`
	Sources     map[string]snapshot.SourceStats `json:"sources"`
}

func runSnapshot(ctx context.Context, env *cmdEnv, args []string) error {
	if len(args) > 0 {
		return usagef("unexpected argument %q (sources are given with --source LABEL=PATH)", args[0])
	}
	var specs []snapshot.SourceSpec
	for _, s := range snapFlags.sources {
		label, path, ok := strings.Cut(s, "=")
		if !ok || label == "" || path == "" {
			return usagef("--source %q: want LABEL=PATH", s)
		}
		if err := snapshot.ValidLabel(label); err != nil {
			return usagef("--source: %v", err)
		}
		specs = append(specs, snapshot.SourceSpec{Label: label, Path: env.absPath(path)})
	}
	if len(specs) == 0 {
		cfg, err := env.config()
		if err != nil {
			return err
		}
		for _, l := range cfg.sourceLabels() {
			specs = append(specs, snapshot.SourceSpec{Label: l, Path: cfg.Sources[l]})
		}
	}
	if len(specs) == 0 {
		return usagef("no sources: give --source LABEL=PATH or list sources in %s", env.global.configPath)
	}
	var at time.Time
	if snapFlags.at != "" {
		t, err := time.Parse(time.RFC3339, snapFlags.at)
		if err != nil {
			return usagef("--time %q: want RFC 3339, e.g. 2026-11-27T02:00:00Z", snapFlags.at)
		}
		at = t
	}
	repo, release, err := openRepo(ctx, env)
	if err != nil {
		return err
	}
	defer release()
	prog := &snapshot.Progress{Start: time.Now()}
	pl := startProgress(env, snapshotProgress(prog, "snapshot"))
	res, err := repo.TakeSnapshot(ctx, snapshot.Request{Sources: specs, Tags: snapFlags.tags, Time: at, Progress: prog, ReadAll: snapFlags.readAll,
		Warn: func(msg string) {
			if !env.global.json {
				env.warnf("%s", msg)
			}
		}})
	pl.Stop()
	if err != nil {
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			return withExit(exitInterrupted, fmt.Errorf("interrupted; nothing of this snapshot was committed, data already written is reused next time"))
		}
		return err
	}
	sum := summarize(res)
	if env.global.json {
		enc := json.NewEncoder(env.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(sum); err != nil {
			return err
		}
	} else {
		dedup := "nothing new"
		if sum.NewBytes > 0 {
			dedup = fmt.Sprintf("%.1fx", sum.Dedup)
		}
		fmt.Fprintf(env.stdout, "snapshot %s saved: %d files, %s of data (read %s, new %s, stored %s), dedup %s, %.2fs\n",
			sum.ID[:8], sum.Files, humanBytes(sum.DataBytes), humanBytes(sum.ReadBytes), humanBytes(sum.NewBytes),
			humanBytes(sum.StoredBytes), dedup, sum.DurationSec)
	}
	if len(res.Warnings) > 0 {
		if !env.global.json {
			fmt.Fprintf(env.stderr, "%d warnings (files not saved or changed while read); see above\n", len(res.Warnings))
		}
		return withExit(exitPartial, errSilent)
	}
	return nil
}

func summarize(res *snapshot.Result) snapshotSummary {
	s := res.Snapshot
	sum := snapshotSummary{ID: s.ID.String(), Time: s.Time, Tags: s.Tags, DurationSec: res.Duration.Seconds(),
		Warnings: res.Warnings, Sources: map[string]snapshot.SourceStats{}}
	if sum.Warnings == nil {
		sum.Warnings = []string{}
	}
	for _, src := range s.Sources {
		st := src.Stats
		sum.Files += st.Files
		sum.Dirs += st.Dirs
		sum.Bytes += st.Bytes
		sum.DataBytes += st.DataBytes
		sum.ReadBytes += st.ReadBytes
		sum.NewBytes += st.NewBytes
		sum.StoredBytes += st.StoredBytes
		sum.Sources[src.Label] = st
	}
	if sum.NewBytes > 0 {
		sum.Dedup = float64(sum.DataBytes) / float64(sum.NewBytes)
		sum.Compression = float64(sum.StoredBytes) / float64(sum.NewBytes)
	}
	return sum
}
