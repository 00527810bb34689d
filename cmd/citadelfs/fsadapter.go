package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	iofs "io/fs"
	"sync"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	cfs "citadelfs/fs"
	"citadelfs/index"
	"citadelfs/monitor"
	"citadelfs/snapshot"
)

// repoStatus renders status/snapshots and status/repo (status/backup is
// the monitor's, rendered as citadelfs status renders it).
type repoStatus struct {
	r *snapshot.Repository
}

func newRepoStatus(r *snapshot.Repository) cfs.StatusSource { return &repoStatus{r: r} }

func (s *repoStatus) StatusFiles() []string { return []string{"snapshots", "repo"} }

func (s *repoStatus) Render(ctx context.Context, name string) ([]byte, error) {
	var b bytes.Buffer
	switch name {
	case "snapshots":
		snaps, err := s.r.Snapshots()
		if err != nil {
			return nil, err
		}
		writeSnapshotTable(&b, snaps)
	case "repo":
		st, err := repoStats(s.r)
		if err != nil {
			return nil, err
		}
		tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "repository\t%s\n", s.r.Dir())
		fmt.Fprintf(tw, "snapshots\t%d\n", st.Snapshots)
		fmt.Fprintf(tw, "logical size\t%s\t(all snapshots, as files)\n", humanBytes(st.Logical))
		fmt.Fprintf(tw, "unique data\t%s\t(before compression)\n", humanBytes(st.Raw))
		fmt.Fprintf(tw, "stored size\t%s\t(pack files)\n", humanBytes(st.Stored))
		fmt.Fprintf(tw, "dedup ratio\t%.2fx\n", ratio(st.Logical, st.Raw))
		fmt.Fprintf(tw, "compression ratio\t%.3f\t(stored / unique)\n", 1/max(ratio(st.Raw, st.Stored), 1e-9))
		fmt.Fprintf(tw, "packs\t%d\n", st.Packs)
		fmt.Fprintf(tw, "chunks\t%d\n", st.Blobs)
		fmt.Fprintf(tw, "free space\t%s of %s\n", humanBytes(st.Free), humanBytes(st.Total))
		tw.Flush()
	default:
		return nil, fmt.Errorf("citadelfs: no status file %q", name)
	}
	return b.Bytes(), nil
}

func ratio(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

type repoStat struct {
	Snapshots            int
	Logical, Raw, Stored int64
	Packs, Blobs         int
	Free, Total          int64
}

// repoStats reads sizes from the index (one scan of the blob entries,
// about 50 bytes per MiB stored) and the file system.
func repoStats(r *snapshot.Repository) (*repoStat, error) {
	st := &repoStat{}
	snaps, err := r.Snapshots()
	if err != nil {
		return nil, err
	}
	st.Snapshots = len(snaps)
	for _, s := range snaps {
		for _, src := range s.Sources {
			st.Logical += src.Stats.Bytes
		}
	}
	packs := map[index.ID]bool{}
	err = r.Index().Blobs(func(b index.BlobRef) error {
		st.Blobs++
		st.Raw += int64(b.RawLength)
		st.Stored += int64(b.Length)
		packs[b.Pack] = true
		return nil
	})
	if err != nil {
		return nil, err
	}
	st.Packs = len(packs)
	var sfs unix.Statfs_t
	if unix.Statfs(r.Dir(), &sfs) == nil {
		st.Free = int64(sfs.Bavail) * sfs.Bsize
		st.Total = int64(sfs.Blocks) * sfs.Bsize
	}
	return st, nil
}

// repoBackupSource gives the monitor the repository's backup state.
type repoBackupSource struct {
	r      *snapshot.Repository
	labels []string
	// maxAge is each configured source's allowed age from its schedule
	// (freshness.go), to which the last attempt's duration is added; nil
	// leaves every source at monitor.backup_max_age.
	maxAge map[string]time.Duration
	// expireAfter: the attempt of a label the config does not have (a
	// typo on the command line, a retired source) is reported for this
	// long after it started, then no more; 0 never expires (no sources
	// configured, so nothing to tell them from).
	expireAfter time.Duration
	now         func() time.Time
	// integrity is the mount's record of corrupt reads (nil outside the
	// mount daemon, which reads the record the daemon stored).
	integrity *integrityRecord
	// testRestore: the config asks for a monthly test restore.
	testRestore bool
}

// allowedAge is label's MaxAge: its schedule's, plus how long its last
// attempt took (a daily snapshot that runs for hours commits that much
// later each day); 0 for a label without a schedule here.
func (b *repoBackupSource) allowedAge(label string, lastDuration time.Duration) time.Duration {
	a, ok := b.maxAge[label]
	if !ok {
		return 0
	}
	return a + max(lastDuration, 0)
}

func (b *repoBackupSource) BackupState(ctx context.Context) (*monitor.BackupState, error) {
	atts, err := b.r.Attempts()
	if err != nil {
		return nil, err
	}
	snaps, err := b.r.Snapshots()
	if err != nil {
		return nil, err
	}
	lastOK := map[string]time.Time{}
	for _, s := range snaps {
		for _, src := range s.Sources {
			if s.Created.After(lastOK[src.Label]) {
				lastOK[src.Label] = s.Created
			}
		}
	}
	st := &monitor.BackupState{Repo: b.r.Dir()}
	seen := map[string]bool{}
	configured := map[string]bool{}
	for _, l := range b.labels {
		configured[l] = true
	}
	now := time.Now
	if b.now != nil {
		now = b.now
	}
	for _, a := range atts {
		if b.expireAfter > 0 && len(configured) > 0 && !configured[a.Label] && now().Sub(a.Start) > b.expireAfter {
			continue
		}
		seen[a.Label] = true
		st.Sources = append(st.Sources, monitor.SourceState{Label: a.Label, LastTime: a.Start, LastResult: a.Result,
			LastError: a.Error, LastSnapshot: a.Snapshot, LastDuration: a.Duration, LastSuccess: lastOK[a.Label], MaxAge: b.allowedAge(a.Label, a.Duration)})
	}
	for _, l := range b.labels {
		if !seen[l] {
			st.Sources = append(st.Sources, monitor.SourceState{Label: l, LastSuccess: lastOK[l], MaxAge: b.allowedAge(l, 0)})
		}
	}
	if rs, err := repoStats(b.r); err == nil {
		st.RepoBytes = uint64(rs.Stored)
	}
	switch {
	case b.integrity != nil:
		st.Integrity = b.integrity.state()
	default:
		// Outside the daemon: what its reads recorded.
		c, err := b.r.LoadCorruptReads()
		if err != nil {
			return nil, err
		}
		if c != nil {
			st.Integrity = integrityState(*c)
		}
	}
	lc, err := b.r.LastCheck()
	if err != nil {
		return nil, err
	}
	if lc != nil {
		st.LastCheck = &monitor.CheckState{Time: lc.Time, Duration: lc.Duration, Result: lc.Result, Errors: lc.Errors,
			FirstError: lc.FirstError, ReadData: lc.ReadData, Subset: lc.Subset}
	}
	ip, err := b.r.Index().KV.Problem()
	if err != nil {
		return nil, err
	}
	if ip != nil {
		st.IndexProblem = &monitor.IndexProblemState{Time: ip.Time, Error: ip.Error, Corrupt: ip.Corrupt}
	}
	tr, err := b.r.LastTestRestore()
	if err != nil {
		return nil, err
	}
	st.TestRestoreExpected = b.testRestore
	if tr != nil {
		st.LastTestRestore = &monitor.TestRestoreState{Time: tr.Time, Result: tr.Result, Files: tr.Files, Bytes: tr.Bytes,
			Errors: tr.Errors, FirstError: tr.FirstError, SourceDiffers: tr.SourceDiffers}
	}
	return st, nil
}

// maxIntegrityFiles bounds the distinct paths an integrityRecord
// remembers: a repository that rots wholesale must not grow the daemon.
const maxIntegrityFiles = 1024

// maxIntegrityError bounds the error text kept for the alert message.
const maxIntegrityError = 300

// integrityRecord counts the mount's reads that failed verification
// (snapshot.ErrCorrupt), for the monitor's backup_corrupt alert. It is the
// mount's fs.Options.OnError, called on the FUSE request's goroutine, so it
// only takes a short lock, and writes to the repository only on the first
// read of each damaged file (and at most once a minute besides): the
// record survives a restart of the daemon.
type integrityRecord struct {
	clock func() time.Time
	store corruptReadStore // nil: memory only

	mu       sync.Mutex
	reads    uint64
	base     int                 // distinct files counted by earlier daemons
	files    map[string]struct{} // distinct paths, at most maxIntegrityFiles
	capped   bool                // a path was not added for the bound
	lastTime time.Time
	lastPath string
	lastErr  string
	saved    time.Time // when the record was last written to store
}

// corruptReadStore is where an integrityRecord keeps its counts (the
// repository).
type corruptReadStore interface {
	SaveCorruptReads(snapshot.CorruptReads) error
	LoadCorruptReads() (*snapshot.CorruptReads, error)
}

// integritySaveEvery is how often repeated corrupt reads of files already
// recorded update the stored record (its count and last time).
const integritySaveEvery = time.Minute

// newIntegrityRecord starts from what store recorded (nil store: from
// nothing, in memory only).
func newIntegrityRecord(clock func() time.Time, store corruptReadStore) *integrityRecord {
	if clock == nil {
		clock = time.Now
	}
	r := &integrityRecord{clock: clock, store: store, files: map[string]struct{}{}}
	if store != nil {
		if c, err := store.LoadCorruptReads(); err == nil && c != nil {
			r.reads, r.base, r.capped = c.Reads, c.Files, c.Capped
			r.lastTime, r.lastPath, r.lastErr = c.LastTime, c.LastPath, c.LastError
			r.saved = r.clock()
		}
	}
	return r
}

// onError records err if it says the repository's data is corrupt. Other
// failures (a missing name, a cancelled read, a disk I/O error) are not
// about the backup's integrity and are only logged, by fs.
func (r *integrityRecord) onError(path string, err error) {
	if !errors.Is(err, snapshot.ErrCorrupt) || errors.Is(err, iofs.ErrNotExist) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return
	}
	msg := snapshot.OneLine(err.Error(), maxIntegrityError)
	now := r.clock()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reads++
	save := now.Sub(r.saved) >= integritySaveEvery
	if _, ok := r.files[path]; !ok {
		if len(r.files) < maxIntegrityFiles {
			r.files[path] = struct{}{}
			save = true
		} else if !r.capped {
			r.capped, save = true, true
		}
	}
	r.lastTime, r.lastPath, r.lastErr = now, path, msg
	if save && r.store != nil {
		// Under the lock, so that an older count never overwrites a
		// newer one; this runs once per damaged file.
		if r.store.SaveCorruptReads(r.recordLocked()) == nil {
			r.saved = now
		}
	}
}

func (r *integrityRecord) recordLocked() snapshot.CorruptReads {
	return snapshot.CorruptReads{Reads: r.reads, Files: r.base + len(r.files), Capped: r.capped,
		LastTime: r.lastTime, LastPath: r.lastPath, LastError: r.lastErr}
}

// reset forgets every corrupt read: a full check --read-data has just
// found every chunk sound (and removed the stored record).
func (r *integrityRecord) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reads, r.base, r.capped = 0, 0, false
	r.files = map[string]struct{}{}
	r.lastTime, r.lastPath, r.lastErr = time.Time{}, "", ""
}

// state is a copy of the record for the monitor.
func (r *integrityRecord) state() *monitor.IntegrityState {
	r.mu.Lock()
	defer r.mu.Unlock()
	return integrityState(r.recordLocked())
}

func integrityState(c snapshot.CorruptReads) *monitor.IntegrityState {
	return &monitor.IntegrityState{CorruptReads: c.Reads, CorruptFiles: c.Files, CorruptFilesCapped: c.Capped,
		LastTime: c.LastTime, LastPath: c.LastPath, LastError: c.LastError}
}

// backupSourceFor gives the monitor the repository's backup state: the
// repository env names (the daemon's own inside the mount daemon), the
// configured sources and their allowed ages, and inside the daemon the
// mount's corrupt-read record. release is called when the command ends.
func backupSourceFor(ctx context.Context, env *cmdEnv) (monitor.BackupSource, func(), error) {
	repo, release, err := openRepo(ctx, env)
	if err != nil {
		return nil, nil, err
	}
	var labels []string
	testRestore := false
	var maxAge map[string]time.Duration
	var expire time.Duration
	if cfg, err := env.config(); err == nil {
		labels, testRestore = cfg.sourceLabels(), cfg.TestRestore
		maxAge = sourceMaxAges(cfg, time.Now())
		expire = cfg.Monitor.WithDefaults().BackupMaxAge
	}
	// In the mount daemon (its own monitor, or a command handed to
	// it) the monitor sees the mount's corrupt reads.
	var integrity *integrityRecord
	if env.daemon != nil {
		integrity = env.daemon.integrity
	}
	return &repoBackupSource{r: repo, labels: labels, maxAge: maxAge, expireAfter: expire, integrity: integrity, testRestore: testRestore}, release, nil
}
