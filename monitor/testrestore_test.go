package monitor

import (
	"strings"
	"testing"
	"time"

	"citadelfs/index"
)

// test_restore: a run that found damage or could not run fires; an old
// good run fires only when a monthly one is expected; none yet is quiet.
func TestTestRestoreRule(t *testing.T) {
	clock, sys := newFakeClock(), &fakeSystem{}
	sys.set(cpuAt(10), nil)
	src := &fakeBackup{}
	repo := t.TempDir()
	o := testOptions(clock, sys)
	o.Backup = src
	m := mustNew(t, o)
	state := func(expected bool, last *TestRestoreState) *Alert {
		t.Helper()
		src.set(&BackupState{Repo: repo, TestRestoreExpected: expected, LastTestRestore: last}, nil)
		return findAlert(collect(t, m).Alerts, RuleTestRestore, SubjectRepository)
	}
	if a := state(true, nil); a != nil {
		t.Fatalf("none yet: %+v", a)
	}
	good := &TestRestoreState{Time: clock.Now().Add(-24 * time.Hour), Result: index.CheckOK, Files: 60}
	if a := state(true, good); a != nil {
		t.Fatalf("a good run a day ago: %+v", a)
	}
	bad := &TestRestoreState{Time: clock.Now().Add(-time.Hour), Result: index.CheckErrors, Files: 59, Errors: 1,
		FirstError: "models/mixtral/model.safetensors (snapshot 1a2b3c4d): snapshot: restore: 1 files could not be restored"}
	a := state(false, bad)
	if a == nil || a.State != StateFiring || a.Severity != SeverityCritical || !strings.Contains(a.Message, "1 damaged of 60 files") ||
		!strings.Contains(a.Message, "model.safetensors") {
		t.Fatalf("damage found: %+v", a)
	}
	if a := state(false, &TestRestoreState{Time: clock.Now(), Result: index.CheckFailed, FirstError: "no space left on device"}); a == nil || !strings.Contains(a.Message, "could not run: no space") {
		t.Fatalf("could not run: %+v", a)
	}
	old := &TestRestoreState{Time: clock.Now().Add(-36 * 24 * time.Hour), Result: index.CheckOK, Files: 60}
	if a := state(false, old); a != nil {
		t.Fatalf("an old run, none expected: %+v", a)
	}
	if a := state(true, old); a == nil || !strings.Contains(a.Message, "test_restore_monthly allows 840h") {
		t.Fatalf("an old run, monthly expected: %+v", a)
	}
	if a := state(true, good); a != nil {
		t.Fatalf("after a fresh good run: %+v", a)
	}
}

func TestTestRestoreMetrics(t *testing.T) {
	now := time.Date(2026, 11, 27, 4, 2, 11, 0, time.UTC)
	s := richSample(now)
	if fams := parseProm(t, metricsText(t, s, nil)); fams["citadelfs_backup_last_test_restore_errors"] != nil {
		t.Error("test restore metrics without a record")
	}
	at := now.Add(-time.Hour)
	s.Backup.TestRestore = &TestRestoreStatus{Expected: true, Last: &TestRestoreState{Time: at, Result: index.CheckErrors, Errors: 2, Files: 18}}
	fams := parseProm(t, metricsText(t, s, nil))
	if got := value(t, fams, "citadelfs_backup_last_test_restore_timestamp_seconds", "repo", s.Backup.Repo); got != float64(at.Unix()) {
		t.Errorf("timestamp = %v", got)
	}
	if got := value(t, fams, "citadelfs_backup_last_test_restore_errors", "repo", s.Backup.Repo); got != 2 {
		t.Errorf("errors = %v, want 2", got)
	}
	s.Backup.TestRestore.Last = &TestRestoreState{Time: at, Result: index.CheckFailed, FirstError: "no space"}
	if got := value(t, parseProm(t, metricsText(t, s, nil)), "citadelfs_backup_last_test_restore_errors", "repo", s.Backup.Repo); got != 1 {
		t.Errorf("a run that could not run: errors = %v, want 1", got)
	}
}
