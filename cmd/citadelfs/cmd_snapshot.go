package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"citadelfs/index"
	"citadelfs/internal/sysprobe"
	"citadelfs/snapshot"
)

type snapshotFlags struct {
	sources       []string
	tags          []string
	at            string
	readAll       bool
	excludes      []string
	excludeFiles  []string
	excludeCaches bool
	oneFS         bool
	verify        bool
	host          string
}

var snapFlags snapshotFlags

func init() {
	register(&command{
		name:      "snapshot",
		summary:   "take a deduplicated snapshot of the configured sources",
		usage:     "[--source LABEL=PATH ...] [--exclude PATTERN ...] [--exclude-file FILE] [--exclude-caches] [--one-file-system] [--tag TAG ...] [--time RFC3339] [--read-all] [--verify] [--host NAME]",
		delegable: true,
		flags: func(fs *pflag.FlagSet) {
			snapFlags = snapshotFlags{}
			fs.StringArrayVar(&snapFlags.sources, "source", nil, "LABEL=PATH to snapshot (repeatable; default: the config file's sources). One directory is the source's root; a file, a glob, or the same label repeated makes a source of paths kept under their absolute paths")
			fs.StringArrayVar(&snapFlags.excludes, "exclude", nil, "leave out entries matching PATTERN (repeatable): no slash matches a name at any depth, a slash anchors it to the source root, ** spans directories, a trailing / matches directories only")
			fs.StringArrayVar(&snapFlags.excludeFiles, "exclude-file", nil, "read exclude patterns from FILE, one a line; blank lines and # comments ignored (repeatable)")
			fs.BoolVar(&snapFlags.excludeCaches, "exclude-caches", false, "leave out the contents of directories holding a valid CACHEDIR.TAG (the tag file is kept)")
			fs.BoolVar(&snapFlags.oneFS, "one-file-system", false, "do not descend into mount points below a source root (each is recorded empty)")
			fs.StringArrayVar(&snapFlags.tags, "tag", nil, "tags for the snapshot, e.g. daily or daily,pre-upgrade (repeatable)")
			fs.StringVar(&snapFlags.at, "time", "", "time the snapshot represents, RFC 3339 (default now)")
			fs.BoolVar(&snapFlags.readAll, "read-all", false, "read every file again, not trusting unchanged size and times (e.g. weekly, for files written through mmap)")
			fs.StringVar(&snapFlags.host, "host", "", "host name recorded in the snapshot (default the hostname): several hosts share an s3:// repository")
			fs.BoolVar(&snapFlags.verify, "verify", false, "read back every pack the snapshot wrote and verify each blob (decode and hash); damage is exit 4 (default: validation.verify_after_backup)")
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
	Verified    *verifySummary                  `json:"verified,omitempty"` // with --verify
	Warnings    []string                        `json:"warnings"`
	Sources     map[string]snapshot.SourceStats `json:"sources"`
}

// verifySummary is what --verify read back.
type verifySummary struct {
	Packs    int      `json:"packs"`
	Blobs    int      `json:"blobs"`
	Bytes    int64    `json:"bytes"`
	Problems []string `json:"problems"`
}

func runSnapshot(ctx context.Context, env *cmdEnv, args []string) error {
	if len(args) > 0 {
		return usagef("unexpected argument %q (sources are given with --source LABEL=PATH)", args[0])
	}
	cfg, err := env.config()
	if err != nil {
		return err
	}
	verify := snapFlags.verify || cfg.VerifyAfter
	specs, err := sourceSpecsFromFlags(env)
	if err != nil {
		return err
	}
	if len(specs) == 0 {
		cfg, err := env.config()
		if err != nil {
			return err
		}
		for _, l := range cfg.sourceLabels() {
			specs = append(specs, cfg.Sources[l].spec(l))
		}
	}
	if len(specs) == 0 {
		return usagef("no sources: give --source LABEL=PATH or list sources in %s", env.global.configPath)
	}
	if err := applyExcludeFlags(env, specs); err != nil {
		return err
	}
	var at time.Time
	if snapFlags.at != "" {
		t, err := time.Parse(time.RFC3339, snapFlags.at)
		if err != nil {
			return usagef("--time %q: want RFC 3339, e.g. 2026-11-27T02:00:00Z", snapFlags.at)
		}
		at = t
	}
	tags, err := splitTags(snapFlags.tags)
	if err != nil {
		return err
	}
	if snapFlags.host != "" && !validHost(snapFlags.host) {
		return usagef("--host %q: want 1 to 64 letters, digits, '.', '-' or '_'", snapFlags.host)
	}
	repo, release, err := openRepo(ctx, env)
	if err != nil {
		return err
	}
	defer release()
	raiseMemoryLimitForUploads(repo)
	prog := &snapshot.Progress{Start: time.Now()}
	pl := startProgress(env, snapshotProgress(prog, "snapshot"))
	sys := sysprobe.Probe(sysprobe.Options{})
	if snapFlags.host != "" {
		sys.Host = snapFlags.host
	}
	res, err := repo.TakeSnapshot(ctx, snapshot.Request{Sources: specs, Tags: tags, Time: at, Progress: prog, ReadAll: snapFlags.readAll,
		Workers: cfg.ParallelJobs, Host: sys.Host, System: &snapshot.SystemInfo{Kernel: sys.Kernel, OSRelease: sys.OSRelease, NVIDIADriver: sys.NVIDIADriver, CUDA: sys.CUDA},
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
		if index.IsDiskFull(err) {
			return fmt.Errorf("%w; nothing of this snapshot was committed: free space with 'citadelfs forget --keep-last N --prune', which runs on a full disk", err)
		}
		return err
	}
	sum := summarize(res)
	var verr error
	if verify {
		verr = verifySnapshot(ctx, env, repo, res, &sum)
	}
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
	if len(res.Warnings) > 0 && !env.global.json {
		fmt.Fprintf(env.stderr, "%d warnings (files not saved or changed while read); see above\n", len(res.Warnings))
	}
	if verr != nil {
		return verr
	}
	if len(res.Warnings) > 0 {
		return withExit(exitPartial, errSilent)
	}
	return nil
}

// verifySnapshot reads back the packs res wrote. Damage is exit 4 with one
// line naming the first problem; the snapshot stays (it is committed, and
// the damaged chunks are quarantined, so the next snapshot stores them
// again and heals it).
func verifySnapshot(ctx context.Context, env *cmdEnv, repo *snapshot.Repository, res *snapshot.Result, sum *snapshotSummary) error {
	rep, err := repo.VerifyPacks(ctx, res.Packs)
	if err != nil {
		return fmt.Errorf("snapshot %s saved, but verifying its packs failed: %w", res.Snapshot.ID.Short(), err)
	}
	sum.Verified = &verifySummary{Packs: rep.Packs, Blobs: rep.Blobs, Bytes: rep.Bytes, Problems: rep.Problems}
	if sum.Verified.Problems == nil {
		sum.Verified.Problems = []string{}
	}
	if rep.OK() {
		if !env.global.json {
			fmt.Fprintf(env.stdout, "verified %d packs (%d blobs, %s) read back from the repository\n", rep.Packs, rep.Blobs, humanBytes(rep.Bytes))
		}
		return nil
	}
	for _, p := range rep.Problems[1:] {
		env.warnf("verify: %s", p)
	}
	return withExit(exitDamaged, fmt.Errorf("snapshot %s saved, but %d of the %d packs it wrote read back damaged (%s); the damaged chunks are quarantined and the next snapshot stores them again: check the backup disk (dmesg, smartctl) and run it",
		res.Snapshot.ID.Short(), rep.DamagedPacks, rep.Packs, rep.Problems[0]))
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

// sourceSpecsFromFlags turns --source LABEL=PATH flags into specs. A label
// given once with a directory is a directory source (the directory is the
// root); a file, a glob, or a label repeated is a source of paths, whose
// tree keeps their absolute paths.
func sourceSpecsFromFlags(env *cmdEnv) ([]snapshot.SourceSpec, error) {
	var specs []snapshot.SourceSpec
	at := map[string]int{}
	fromConfig := map[string]bool{}
	for _, s := range snapFlags.sources {
		label, path, ok := strings.Cut(s, "=")
		if !ok && label != "" {
			// --source LABEL: the configured source with its paths,
			// excludes and options (what the generated units run).
			if err := snapshot.ValidLabel(label); err != nil {
				return nil, usagef("--source: %v", err)
			}
			cfg, err := env.config()
			if err != nil {
				return nil, err
			}
			src, ok := cfg.Sources[label]
			if !ok {
				return nil, usagef("--source %s: no source %q in %s (give LABEL=PATH, or one of: %s)", label, label,
					env.global.configPath, strings.Join(cfg.sourceLabels(), ", "))
			}
			if _, seen := at[label]; seen {
				return nil, usagef("--source %s: given twice", label)
			}
			at[label] = len(specs)
			fromConfig[label] = true
			specs = append(specs, src.spec(label))
			continue
		}
		if !ok || label == "" || path == "" {
			return nil, usagef("--source %q: want LABEL=PATH, or LABEL of a configured source", s)
		}
		if err := snapshot.ValidLabel(label); err != nil {
			return nil, usagef("--source: %v", err)
		}
		path = env.absPath(path)
		i, seen := at[label]
		if !seen {
			at[label] = len(specs)
			spec := snapshot.SourceSpec{Label: label, Path: path}
			if strings.ContainsAny(path, "*?[") {
				spec = snapshot.SourceSpec{Label: label, Paths: []string{path}}
			}
			specs = append(specs, spec)
			continue
		}
		sp := &specs[i]
		if fromConfig[label] {
			return nil, usagef("--source %s=%s: %s is a configured source; give it by its label alone, or use another label", label, path, label)
		}
		if sp.Path != "" {
			sp.Paths = append(sp.Paths, sp.Path)
			sp.Path = ""
		}
		sp.Paths = append(sp.Paths, path)
	}
	return specs, nil
}

// applyExcludeFlags adds --exclude, --exclude-file, --exclude-caches and
// --one-file-system to every source and checks the result.
func applyExcludeFlags(env *cmdEnv, specs []snapshot.SourceSpec) error {
	excludes := append([]string(nil), snapFlags.excludes...)
	for _, f := range snapFlags.excludeFiles {
		b, err := os.ReadFile(env.absPath(f))
		if err != nil {
			return usagef("--exclude-file: %v", err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			excludes = append(excludes, line)
		}
	}
	for i := range specs {
		sp := &specs[i]
		sp.Excludes = append(sp.Excludes, excludes...)
		sp.ExcludeCaches = sp.ExcludeCaches || snapFlags.excludeCaches
		sp.OneFileSystem = sp.OneFileSystem || snapFlags.oneFS
		if err := sp.Validate(); err != nil {
			return usagef("%s", strings.TrimPrefix(err.Error(), "snapshot: "))
		}
	}
	return nil
}

// validHost accepts a host name as snapshots record it: what hostname(1)
// prints, and nothing a listing or a path could misread.
func validHost(h string) bool {
	if len(h) == 0 || len(h) > 64 || h[0] == '.' || h[0] == '-' {
		return false
	}
	for _, c := range h {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// splitTags turns --tag values into tags: each value is a comma-separated
// list, as restic reads it and as `snapshots --tag a,b` filters (a tag
// holding a comma could never be selected). Duplicates are dropped; an
// empty tag or one with spaces or control characters is a usage error.
func splitTags(values []string) ([]string, error) {
	var tags []string
	for _, v := range values {
		for _, t := range strings.Split(v, ",") {
			if t == "" || strings.IndexFunc(t, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0 {
				return nil, usagef("--tag %q: want tags of letters, digits and punctuation, separated by commas", v)
			}
			if !slices.Contains(tags, t) {
				tags = append(tags, t)
			}
		}
	}
	return tags, nil
}
