package monitor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"citadelfs/index"
)

// BackupSource tells the monitor about the repository. cmd/citadelfs
// implements it from the open repository (the monitor imports nothing but
// index); it is called once per cycle and must be cheap: read what the
// repository already records, do not walk pack files.
type BackupSource interface {
	BackupState(ctx context.Context) (*BackupState, error)
}

// BackupState is the repository's view of the backups.
type BackupState struct {
	// Repo is the repository directory. The monitor measures the file
	// system holding it (backup_storage) itself.
	Repo string
	// RepoBytes is the repository's size on disk (packs and index); 0 when
	// the implementation cannot tell.
	RepoBytes uint64
	// Sources is one entry per configured source, including sources that
	// have never been snapshotted (LastResult "").
	Sources []SourceState
	// Integrity is what reads of the repository's data found, as the mount
	// daemon records them; nil when nothing watches reads (a monitor
	// running outside the daemon), which raises no backup_corrupt.
	Integrity *index.CorruptReads
	// LastCheck is the outcome of the repository's last `citadelfs check`
	// (nil: no check recorded). A check that found errors raises
	// backup_corrupt until a later check passes; one older than
	// check_max_age raises check_stale.
	LastCheck *index.CheckRecord
	// Created is when the repository was made: with no check recorded,
	// check_stale counts from it (zero: unknown, no alert).
	Created time.Time
	// Maintenance is the last forget and prune run (none: never run); a
	// failed one raises retention_failed until the next run of it passes.
	Maintenance []MaintenanceState
	// IndexProblem is the last background failure of the repository's
	// Pebble index (a flush or compaction that failed), kept until a
	// check that verifies the whole index clears it (nil: none). It
	// raises backup_corrupt.
	IndexProblem *IndexProblemState
	// LastTestRestore is the outcome of the last `citadelfs test-restore`
	// (nil: none recorded); TestRestoreExpected says the config asks for
	// one a month (validation.test_restore_monthly), so a record older
	// than test_restore_max_age raises test_restore.
	LastTestRestore     *TestRestoreState
	TestRestoreExpected bool
}

// IndexProblemState is a background failure of the index.
type IndexProblemState struct {
	Time  time.Time `json:"time,omitzero"`
	Error string    `json:"error"`
	// Corrupt says Pebble found damage; `repair index` is the remedy.
	Corrupt bool `json:"corrupt,omitempty"`
}

// TestRestoreState is the repository's record of its last test restore.
type TestRestoreState struct {
	Time time.Time `json:"time"`
	// Result uses the check words: index.CheckOK, CheckErrors (damaged
	// files found), CheckFailed (it could not run).
	Result     string `json:"result"`
	Files      int    `json:"files"`
	Bytes      int64  `json:"bytes"`
	Errors     int    `json:"errors"`
	FirstError string `json:"first_error,omitempty"`
	// SourceDiffers counts files whose source changed under an unchanged
	// mtime (a note, not damage).
	SourceDiffers int `json:"source_differs,omitempty"`
}

// MaintenanceState is the repository's record of the last run of a
// maintenance operation.
type MaintenanceState struct {
	// Op is "forget" or "prune".
	Op string `json:"op"`
	// Time is when it started.
	Time time.Time `json:"time"`
	// Result is index.MaintenanceOK or index.MaintenanceFailed.
	Result string `json:"result"`
	// Error is why it failed, one line.
	Error string `json:"error,omitempty"`
}

// SourceState is one source's latest snapshot attempt, derived from its
// stored record (index.Attempt) and what else the repository knows: its
// last committed snapshot and the age its schedule allows.
type SourceState struct {
	// Label is the source's name in the config ("models").
	Label string `json:"label"`
	// LastTime is when the last attempt started (zero: never attempted).
	LastTime time.Time `json:"last_time,omitzero"`
	// LastResult is index.AttemptOK, AttemptPartial, AttemptFailed (the
	// words the attempt record is stored with), or "" for never.
	LastResult string `json:"last_result"`
	// LastError is the failure's one-line reason.
	LastError string `json:"last_error,omitempty"`
	// LastSnapshot is the id of the snapshot the last attempt committed
	// ("" when it committed none).
	LastSnapshot string `json:"last_snapshot,omitempty"`
	// LastDuration is how long the last attempt took.
	LastDuration time.Duration `json:"-"`
	// LastSuccess is when the last committed snapshot (ok or partial) was
	// taken (zero: none).
	LastSuccess time.Time `json:"last_success,omitzero"`
	// MaxAge is the age the source's schedule allows before its backups
	// are stale (0: the config's backup_max_age).
	MaxAge time.Duration `json:"-"`
}

// backupCollector turns a BackupSource's state into a BackupStatus.
type backupCollector struct {
	src    BackupSource
	reason string // why src is nil
	statfs *statfser
	clock  func() time.Time
	maxAge time.Duration
	// corruptWindow is how long after a corrupt read backup_corrupt fires.
	corruptWindow time.Duration
	// testRestoreMaxAge is the age of the last test restore at which
	// test_restore fires, when one is expected.
	testRestoreMaxAge time.Duration
}

func (b *backupCollector) collect(ctx context.Context) (*BackupStatus, error) {
	if b.src == nil {
		return &BackupStatus{Configured: false, Reason: b.reason, Sources: []SourceStatus{}}, nil
	}
	st, err := b.src.BackupState(ctx)
	if err != nil {
		return nil, fmt.Errorf("monitor: backup state: %w", err)
	}
	if st == nil {
		return &BackupStatus{Configured: false, Reason: b.reason, Sources: []SourceStatus{}}, nil
	}
	now := b.clock()
	out := &BackupStatus{Configured: true, Repo: st.Repo, Sources: make([]SourceStatus, 0, len(st.Sources))}
	if st.RepoBytes > 0 {
		n := st.RepoBytes
		out.RepoBytes = &n
	}
	if st.Repo != "" {
		u, err := b.statfs.usage(st.Repo)
		switch {
		case errors.Is(err, errAbsent):
			out.FSError = "repository directory does not exist"
		case err != nil:
			out.FSError = err.Error()
		default:
			out.FS = u
		}
	}
	for _, s := range st.Sources {
		ss := SourceStatus{SourceState: s, MaxAgeSeconds: b.maxAge.Seconds(), LastDurationSeconds: s.LastDuration.Seconds()}
		if s.MaxAge > 0 {
			ss.MaxAgeSeconds = s.MaxAge.Seconds()
		}
		if !s.LastSuccess.IsZero() {
			age := max(now.Sub(s.LastSuccess).Seconds(), 0)
			ss.AgeSeconds = &age
		}
		out.Sources = append(out.Sources, ss)
	}
	if in := st.Integrity; in != nil {
		is := &IntegrityStatus{CorruptReads: in.Reads, CorruptFiles: in.Files, CorruptFilesCapped: in.Capped,
			LastTime: in.LastTime, LastPath: in.LastPath, LastError: in.LastError, WindowSeconds: b.corruptWindow.Seconds()}
		if !in.LastTime.IsZero() {
			age := max(now.Sub(in.LastTime).Seconds(), 0)
			is.AgeSeconds = &age
		}
		out.Integrity = is
	}
	if c := st.LastCheck; c != nil {
		cs := &CheckStatus{Time: c.Time, Result: c.Result, Errors: c.Errors, FirstError: c.FirstError,
			ReadData: c.ReadData, Subset: c.Subset, LastRun: c.LastRun, DurationSeconds: c.Duration.Seconds()}
		if !c.Time.IsZero() {
			age := max(now.Sub(c.Time).Seconds(), 0)
			cs.AgeSeconds = &age
		}
		out.LastCheck = cs
	}
	if p := st.IndexProblem; p != nil {
		cp := *p
		out.IndexProblem = &cp
	}
	if st.LastTestRestore != nil || st.TestRestoreExpected {
		ts := &TestRestoreStatus{Expected: st.TestRestoreExpected, MaxAgeSeconds: b.testRestoreMaxAge.Seconds()}
		if c := st.LastTestRestore; c != nil {
			ts.Last = c
			age := max(now.Sub(c.Time).Seconds(), 0)
			ts.AgeSeconds = &age
		}
		out.TestRestore = ts
	}
	out.Created = st.Created
	out.Maintenance = append([]MaintenanceState(nil), st.Maintenance...)
	return out, nil
}
