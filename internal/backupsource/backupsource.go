// Package backupsource is the monitor's backup source over a repository:
// what the repository records about its backups (attempts, snapshots, the
// last check, corrupt reads, maintenance runs, the index's problem, the
// last test restore) as monitor.BackupState, the one record the backup
// rules read. cmd wires it from the config (labels, allowed ages from the
// schedules, the stale-label expiry); it imports index, snapshot, monitor
// and fsadapter (the mount's corrupt-read record), nothing above.
package backupsource

import (
	"context"
	"errors"
	"time"

	"citadelfs/index"
	"citadelfs/internal/fsadapter"
	"citadelfs/monitor"
	"citadelfs/snapshot"
)

// Source gives the monitor the repository's backup state.
type Source struct {
	// Repo is the repository; Labels the configured sources, each
	// reported even before its first attempt.
	Repo   *snapshot.Repository
	Labels []string
	// maxAge is each configured source's allowed age from its schedule
	// (cmd's freshness.go), to which the last attempt's duration is added; nil
	// leaves every source at monitor.backup_max_age.
	MaxAge map[string]time.Duration
	// ExpireAfter: the attempt of a label the config does not have (a
	// typo on the command line, a retired source) is reported for this
	// long after it started, then no more; 0 never expires (no sources
	// configured, so nothing to tell them from).
	ExpireAfter time.Duration
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Integrity is the mount's record of corrupt reads (nil outside the
	// mount daemon, which reads the record the daemon stored).
	Integrity *fsadapter.CorruptReadRecord
	// TestRestore: the config asks for a monthly test restore.
	TestRestore bool
}

// allowedAge is label's MaxAge: its schedule's, plus how long its last
// attempt took (a daily snapshot that runs for hours commits that much
// later each day); 0 for a label without a schedule here.
func (b *Source) allowedAge(label string, lastDuration time.Duration) time.Duration {
	a, ok := b.MaxAge[label]
	if !ok {
		return 0
	}
	return a + max(lastDuration, 0)
}

func (b *Source) BackupState(ctx context.Context) (*monitor.BackupState, error) {
	atts, err := b.Repo.Attempts()
	if err != nil {
		return nil, err
	}
	snaps, err := b.Repo.Snapshots()
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
	st := &monitor.BackupState{Repo: b.Repo.Dir()}
	seen := map[string]bool{}
	configured := map[string]bool{}
	for _, l := range b.Labels {
		configured[l] = true
	}
	now := time.Now
	if b.Now != nil {
		now = b.Now
	}
	for _, a := range atts {
		if b.ExpireAfter > 0 && len(configured) > 0 && !configured[a.Label] && now().Sub(a.Start) > b.ExpireAfter {
			continue
		}
		seen[a.Label] = true
		st.Sources = append(st.Sources, monitor.SourceState{Label: a.Label, LastTime: a.Start, LastResult: a.Result,
			LastError: a.Error, LastSnapshot: a.Snapshot, LastDuration: a.Duration, LastSuccess: lastOK[a.Label], MaxAge: b.allowedAge(a.Label, a.Duration)})
	}
	for _, l := range b.Labels {
		if !seen[l] {
			st.Sources = append(st.Sources, monitor.SourceState{Label: l, LastSuccess: lastOK[l], MaxAge: b.allowedAge(l, 0)})
		}
	}
	if rs, err := fsadapter.ReadRepoStats(b.Repo); err == nil {
		st.RepoBytes = uint64(rs.Stored)
	}
	switch {
	case b.Integrity != nil:
		st.Integrity = b.Integrity.State()
	default:
		// Outside the daemon: what its reads recorded.
		c, err := b.Repo.LoadCorruptReads()
		if err != nil {
			return nil, err
		}
		st.Integrity = c
	}
	lc, err := b.Repo.LastCheck()
	if err != nil {
		return nil, err
	}
	st.LastCheck = lc // the record as stored; the monitor derives its view
	if c := b.Repo.Index().Config; c != nil {
		st.Created = c.Created
	}
	ms, err := b.Repo.MaintenanceRecords()
	if err != nil {
		return nil, err
	}
	for _, m := range ms {
		st.Maintenance = append(st.Maintenance, monitor.MaintenanceState{Op: m.Op, Time: m.Time, Result: m.Result, Error: m.Error})
	}
	ip, err := b.Repo.Index().KV.Problem()
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
	tr, err := b.Repo.LastTestRestore()
	if err != nil {
		return nil, err
	}
	st.TestRestoreExpected = b.TestRestore
	if tr != nil {
		st.LastTestRestore = &monitor.TestRestoreState{Time: tr.Time, Result: tr.Result, Files: tr.Files, Bytes: tr.Bytes,
			Errors: tr.Errors, FirstError: tr.FirstError, SourceDiffers: tr.SourceDiffers}
	}
	return st, nil
}
