package main

// The monitor's backup source: what the repository records about its
// backups (attempts, snapshots, the last check, corrupt reads), as
// monitor.BackupState.

import (
	"context"
	"errors"
	"time"

	"citadelfs/index"
	"citadelfs/internal/fsadapter"
	"citadelfs/monitor"
	"citadelfs/snapshot"
)

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
	integrity *fsadapter.CorruptReadRecord
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
	if rs, err := fsadapter.ReadRepoStats(b.r); err == nil {
		st.RepoBytes = uint64(rs.Stored)
	}
	switch {
	case b.integrity != nil:
		st.Integrity = b.integrity.State()
	default:
		// Outside the daemon: what its reads recorded.
		c, err := b.r.LoadCorruptReads()
		if err != nil {
			return nil, err
		}
		st.Integrity = c
	}
	lc, err := b.r.LastCheck()
	if err != nil {
		return nil, err
	}
	st.LastCheck = lc // the record as stored; the monitor derives its view
	if c := b.r.Index().Config; c != nil {
		st.Created = c.Created
	}
	ms, err := b.r.MaintenanceRecords()
	if err != nil {
		return nil, err
	}
	for _, m := range ms {
		st.Maintenance = append(st.Maintenance, monitor.MaintenanceState{Op: m.Op, Time: m.Time, Result: m.Result, Error: m.Error})
	}
	ip, err := b.r.Index().KV.Problem()
	if errors.Is(err, index.ErrCorrupt) {
		// The damage keeps the record itself from being read (a table
		// whose key range follows it): that is the problem to raise.
		ip, err = &index.Problem{Time: time.Now().UTC(), Error: err.Error(), Corrupt: true}, nil
	}
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
	var integrity *fsadapter.CorruptReadRecord
	if env.daemon != nil {
		integrity = env.daemon.integrity
	}
	return &repoBackupSource{r: repo, labels: labels, maxAge: maxAge, expireAfter: expire, integrity: integrity, testRestore: testRestore}, release, nil
}
