package snapshot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"citadelfs/index"
)

// SourceSpec names what to snapshot under a label: one directory (Path),
// or files, directories and globs (Paths) kept under their absolute paths.
type SourceSpec struct {
	Label string
	// Path is a directory whose contents become the source's tree (the
	// directory itself is the root). A Path that is not a directory is
	// saved as a source of one path.
	Path string
	// Paths are files, directories and globs (path/filepath.Match syntax)
	// saved under their absolute paths: the tree's root is "/", and the
	// directories on the way keep their own metadata but hold only what
	// leads to a path. A glob that matches nothing is a warning. With
	// Paths, a Path given too is one more entry of the list.
	Paths []string
	// Excludes are patterns of entries left out (see exclude.go): without
	// a slash a base name at any depth, with one anchored to the root.
	Excludes []string
	// ExcludeCaches leaves out the contents of directories holding a
	// valid CACHEDIR.TAG, keeping the tag file.
	ExcludeCaches bool
	// OneFileSystem does not descend into mount points below a root: the
	// mount point is recorded as an empty directory. Each root given
	// counts as its own file system.
	OneFileSystem bool
}

// Validate checks the spec's globs and exclude patterns, so a typo is an
// error before anything is read.
func (s SourceSpec) Validate() error {
	if s.Path == "" && len(s.Paths) == 0 {
		return fmt.Errorf("snapshot: source %s: no path given", s.Label)
	}
	for _, p := range s.Paths {
		if p == "" {
			return fmt.Errorf("snapshot: source %s: empty path", s.Label)
		}
		if _, err := filepath.Match(p, ""); err != nil {
			return fmt.Errorf("snapshot: source %s: path %q: %v", s.Label, p, err)
		}
	}
	_, err := compileExcludes(s.Excludes)
	return err
}

// preparedSource is a checked spec with its compiled excludes.
type preparedSource struct {
	spec  SourceSpec
	rules []excludeRule
}

// Request describes one snapshot.
type Request struct {
	Sources []SourceSpec
	Tags    []string
	// Time is the time the snapshot represents (default: now).
	Time time.Time
	Host string
	// System is recorded in the manifest as given (nil: not recorded).
	System *SystemInfo
	// Workers is how many files are read and how many chunks compressed
	// at once in this snapshot (0: Options.Workers, default 2): the seed's
	// compression.parallel_jobs.
	Workers int
	// Progress, if set, is updated as the snapshot runs.
	Progress *Progress
	// Warn receives each warning (unreadable, vanished, changed files).
	Warn func(msg string)
	// ReadAll reads every file again instead of trusting the file-change
	// cache (same size, mtime, ctime, inode): for files changed in ways
	// that move none of those, such as stores through a shared mmap to a
	// page already dirty, which do not update mtime.
	ReadAll bool
}

// Progress is updated atomically by a running snapshot; a terminal
// renderer polls it.
type Progress struct {
	// Bytes and TotalBytes are data bytes: sparse holes are neither read
	// nor counted (TotalBytes from allocated blocks, see dataSize).
	Files, Bytes, ReadBytes, NewBytes, StoredBytes atomic.Int64
	// TotalFiles and TotalBytes grow as a concurrent scan walks the
	// sources; ScanDone says when they are final.
	TotalFiles, TotalBytes atomic.Int64
	ScanDone               atomic.Bool
	Start                  time.Time
}

// Result is what Snapshot returns.
type Result struct {
	Snapshot *Snapshot
	Warnings []string
	Duration time.Duration
	// Packs are the packs this snapshot wrote (data, trees, then the
	// manifest's), for VerifyPacks.
	Packs []index.ID
}

// ErrBusy: another writer holds the repository.
var ErrBusy = errors.New("another snapshot, forget or prune is running in this repository")

// TakeSnapshot takes one snapshot of req.Sources. Warnings (unreadable or
// vanished files) do not fail it; they come back in Result.Warnings.
// Nothing is visible until the final manifest commit, so a failure or a
// kill at any point leaves no partial snapshot, and the packs already
// committed are reused by the next run.
func (r *Repository) TakeSnapshot(ctx context.Context, req Request) (res *Result, err error) {
	if len(req.Sources) == 0 {
		return nil, errors.New("snapshot: no sources given")
	}
	seen := map[string]bool{}
	var prepared []preparedSource
	for _, s := range req.Sources {
		if err := ValidLabel(s.Label); err != nil {
			return nil, fmt.Errorf("snapshot: %w", err)
		}
		if seen[s.Label] {
			return nil, fmt.Errorf("snapshot: repeated source label %q", s.Label)
		}
		seen[s.Label] = true
		if err := s.Validate(); err != nil {
			return nil, err
		}
		rules, _ := compileExcludes(s.Excludes)
		prepared = append(prepared, preparedSource{spec: s, rules: rules})
	}
	if !r.writeMu.TryLock() {
		if req.Warn != nil {
			req.Warn("waiting for another snapshot, forget or prune in this repository to finish")
		}
		r.writeMu.Lock()
	}
	defer r.writeMu.Unlock()

	// New data must not eat the room that forget and prune need on a
	// full disk: without the reserve, refuse before writing anything.
	if err := r.idx.EnsureReserve(); err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}

	// A pack lost since the last snapshot must not be deduplicated
	// against: its chunks are stored again (see ForgetMissingPacks).
	if packs, blobs, ferr := r.idx.ForgetMissingPacks(); ferr != nil {
		return nil, ferr
	} else if len(packs) > 0 && req.Warn != nil {
		req.Warn(fmt.Sprintf("%d pack file(s) are missing from the repository (first %s); their %d chunks will be stored again from the sources, and the snapshots that used them stay damaged: run `citadelfs check`",
			len(packs), packs[0].Short(), blobs))
	}

	start := r.opts.Now()
	defer func() {
		if index.IsDiskFull(err) {
			// The disk filled: give the reserve back now, so that the
			// attempt record and the index's own flushes have room (in
			// the mount daemon, where the index stays open, a Pebble
			// that cannot write stops). The next snapshot refuses until
			// forget --prune has freed space and the reserve is held.
			r.idx.ReleaseReserve()
		}
		r.recordAttempts(req.Sources, res, start, err)
	}()
	if req.Time.IsZero() {
		req.Time = start
	}
	if req.Host == "" {
		req.Host, _ = os.Hostname()
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	workers := r.opts.Workers
	if req.Workers > 0 {
		workers = req.Workers
	}
	saver, err := newBlobSaver(r)
	if err != nil {
		return nil, err
	}
	if n := len(saver.heal); n > 0 && req.Warn != nil {
		req.Warn(fmt.Sprintf("%d chunk(s) are quarantined as damaged; files that use them are read again, to store good copies", n))
	}
	a := &archiver{r: r, ctx: ctx, cancel: cancel, saver: saver, progress: req.Progress, warnFn: req.Warn, readAll: req.ReadAll,
		fileCh: make(chan *fileJob, 64), chunkCh: make(chan *chunkJob, 2*workers)}
	if a.progress == nil {
		a.progress = &Progress{}
	}
	a.progress.Start = start
	a.bufPool.New = func() any { b := make([]byte, r.params.Max); return &b }
	if req.Progress != nil {
		go scanTotals(ctx, prepared, req.Progress)
	}
	// The workers report failures through a.fail (which cancels ctx), so
	// the groups only order their ends: all file workers are done before
	// chunkCh closes, and whoever made a channel closes it.
	var fileWorkers, chunkWorkers errgroup.Group
	for i := 0; i < workers; i++ {
		chunkWorkers.Go(func() error { a.chunkWorker(); return nil })
		fileWorkers.Go(func() error { a.fileWorker(); return nil })
	}
	m := &Manifest{Version: 1, Time: req.Time.UTC(), Host: req.Host, Tags: req.Tags, Program: "citadelfs", System: req.System}
	var walkErr error
	for _, ps := range prepared {
		src, err := a.saveSource(ps)
		if err != nil {
			walkErr = err
			break
		}
		if src != nil {
			m.Sources = append(m.Sources, *src)
		}
	}
	close(a.fileCh)
	fileWorkers.Wait()
	close(a.chunkCh)
	chunkWorkers.Wait()
	if walkErr == nil {
		walkErr = context.Cause(ctx)
	}
	if walkErr != nil {
		a.saver.Abort()
		if errors.Is(walkErr, context.Canceled) && a.firstErr() != nil {
			walkErr = a.firstErr()
		}
		return nil, walkErr
	}
	if err := a.saver.Flush(); err != nil {
		return nil, err
	}
	if err := a.writeFileCache(); err != nil {
		return nil, err
	}
	if len(m.Sources) == 0 {
		return nil, fmt.Errorf("snapshot: no source could be read (%d warnings)", len(a.warnings))
	}
	m.Created = r.opts.Now().UTC()
	id, mpack, err := r.writeManifestPack(m)
	if err != nil {
		return nil, err
	}
	packs := append(append([]index.ID(nil), a.saver.written...), mpack)
	return &Result{Snapshot: &Snapshot{ID: id, Manifest: *m}, Warnings: a.warnings, Duration: r.opts.Now().Sub(start), Packs: packs}, nil
}

type archiver struct {
	r        *Repository
	ctx      context.Context
	cancel   context.CancelCauseFunc
	saver    *blobSaver
	progress *Progress
	warnFn   func(string)
	readAll  bool // Request.ReadAll

	fileCh  chan *fileJob
	chunkCh chan *chunkJob
	bufPool sync.Pool

	mu         sync.Mutex
	warnings   []string
	err        error
	cacheBatch [][2][]byte
}

type sourceState struct {
	label         string
	excludes      []excludeRule
	excludeCaches bool
	oneFS         bool
	stats         SourceStats
	st            sync.Mutex
	warns         []string
}

func (s *sourceState) add(f func(*SourceStats)) {
	s.st.Lock()
	f(&s.stats)
	s.st.Unlock()
}

func (a *archiver) fail(err error) {
	a.mu.Lock()
	if a.err == nil {
		a.err = err
	}
	a.mu.Unlock()
	a.cancel(err)
}

func (a *archiver) firstErr() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err
}

func (a *archiver) warn(src *sourceState, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	a.mu.Lock()
	a.warnings = append(a.warnings, msg)
	a.mu.Unlock()
	if src != nil {
		src.st.Lock()
		if len(src.warns) < 100 { // the manifest keeps a sample; the caller gets all
			src.warns = append(src.warns, msg)
		}
		src.st.Unlock()
	}
	if a.warnFn != nil {
		a.warnFn(msg)
	}
}
