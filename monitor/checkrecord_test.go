package monitor

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"citadelfs/index"
)

// A check that found errors raises backup_corrupt until a later check
// passes, with or without the mount's corrupt-read record.
func TestBackupCorruptFromLastCheck(t *testing.T) {
	clock, sys := newFakeClock(), &fakeSystem{}
	sys.set(cpuAt(10), nil)
	src := &fakeBackup{}
	repo := t.TempDir()
	src.set(&BackupState{Repo: repo}, nil)
	o := testOptions(clock, sys)
	o.Backup = src
	m := mustNew(t, o)

	// No check record and no read watch: nothing to say.
	r := collect(t, m)
	if a := findAlert(r.Alerts, RuleBackupCorrupt, SubjectRepository); a != nil || r.Backup.LastCheck != nil {
		t.Fatalf("no check record: alert %+v last_check %+v", a, r.Backup.LastCheck)
	}

	// The weekly check found two corrupt chunks, a day ago: critical at
	// once, naming the check's time and first error.
	at := clock.Now().Add(-24 * time.Hour).Truncate(time.Second)
	bad := &index.CheckRecord{Time: at, Duration: 3 * time.Second, Result: index.CheckErrors, Errors: 2, ReadData: true, Subset: 0.1,
		FirstError: "pack 5e6f7a8b: blob 1a2b3c4d fails its hash check"}
	src.set(&BackupState{Repo: repo, LastCheck: bad}, nil)
	r = collect(t, m)
	a := findAlert(r.Alerts, RuleBackupCorrupt, SubjectRepository)
	if a == nil || a.State != StateFiring || a.Severity != SeverityCritical || r.Health != HealthCritical {
		t.Fatalf("failed check: alert %+v health %s", a, r.Health)
	}
	for _, want := range []string{at.UTC().Format(time.RFC3339), "2 errors", "blob 1a2b3c4d fails its hash check"} {
		if !strings.Contains(a.Message, want) {
			t.Errorf("message %q does not mention %q", a.Message, want)
		}
	}
	lc := r.Backup.LastCheck
	if lc == nil || lc.Result != index.CheckErrors || lc.Errors != 2 || !lc.ReadData || lc.DurationSeconds != 3 ||
		lc.AgeSeconds == nil || *lc.AgeSeconds != 86400 {
		t.Fatalf("last_check %+v", lc)
	}
	j, _ := json.Marshal(r.Backup)
	for _, want := range []string{`"last_check":{`, `"result":"errors"`, `"errors":2`, `"read_data":true`, `"first_error":"pack 5e6f7a8b`} {
		if !strings.Contains(string(j), want) {
			t.Errorf("backup JSON %s lacks %s", j, want)
		}
	}

	// No window: a week later it still fires, mount record or not.
	clock.Advance(7 * 24 * time.Hour)
	src.set(&BackupState{Repo: repo, LastCheck: bad, Integrity: &index.CorruptReads{}}, nil)
	if a := findAlert(collect(t, m).Alerts, RuleBackupCorrupt, SubjectRepository); a == nil || a.State != StateFiring {
		t.Fatalf("a week after the failed check: alert %+v, want firing", a)
	}

	// A later check passes: resolved.
	good := &index.CheckRecord{Time: clock.Now().Add(-time.Minute), Result: index.CheckOK, ReadData: true}
	src.set(&BackupState{Repo: repo, LastCheck: good, Integrity: &index.CorruptReads{}}, nil)
	r = collect(t, m)
	if a := findAlert(r.Alerts, RuleBackupCorrupt, SubjectRepository); a != nil {
		t.Fatalf("after a passing check: alert %+v, want resolved", a)
	}
	var resolved bool
	for _, ev := range r.Events {
		if ev.Rule == RuleBackupCorrupt && ev.To == StateResolved {
			resolved = strings.Contains(ev.Message, "found no errors")
		}
	}
	if !resolved {
		t.Errorf("no resolved event naming the passing check: %+v", r.Events)
	}

	// A recent corrupt read still fires while the last check passed.
	src.set(&BackupState{Repo: repo, LastCheck: good, Integrity: &index.CorruptReads{Reads: 1, Files: 1,
		LastTime: clock.Now().Add(-time.Minute), LastPath: "/latest/m/w.bin", LastError: "corrupt data"}}, nil)
	if a := findAlert(collect(t, m).Alerts, RuleBackupCorrupt, SubjectRepository); a == nil || a.State != StateFiring ||
		!strings.Contains(a.Message, "/latest/m/w.bin") {
		t.Fatalf("corrupt read after a passing check: alert %+v, want firing", a)
	}
}

// A check that could not run is no finding of corruption.
func TestBackupCorruptIgnoresCheckThatDidNotFinish(t *testing.T) {
	clock, sys := newFakeClock(), &fakeSystem{}
	sys.set(cpuAt(10), nil)
	src := &fakeBackup{}
	src.set(&BackupState{Repo: t.TempDir(), LastCheck: &index.CheckRecord{Time: clock.Now(), Result: index.CheckFailed,
		FirstError: "index: get: disk on fire"}}, nil)
	o := testOptions(clock, sys)
	o.Backup = src
	r := collect(t, mustNew(t, o))
	if a := findAlert(r.Alerts, RuleBackupCorrupt, SubjectRepository); a != nil {
		t.Fatalf("check that did not finish: alert %+v", a)
	}
	if r.Backup.LastCheck == nil || r.Backup.LastCheck.Result != index.CheckFailed {
		t.Fatalf("last_check %+v", r.Backup.LastCheck)
	}
}

func TestBackupLastCheckMetrics(t *testing.T) {
	now := time.Date(2026, 11, 27, 4, 2, 11, 0, time.UTC)
	s := richSample(now)
	fams := parseProm(t, metricsText(t, s, nil))
	for _, name := range []string{"citadelfs_backup_last_check_timestamp_seconds", "citadelfs_backup_last_check_errors"} {
		if _, ok := fams[name]; ok {
			t.Errorf("%s present without a check record", name)
		}
	}
	at := now.Add(-time.Hour)
	s.Backup.LastCheck = &CheckStatus{Time: at, Result: index.CheckErrors, Errors: 3, FirstError: "x"}
	fams = parseProm(t, metricsText(t, s, nil))
	if got := value(t, fams, "citadelfs_backup_last_check_timestamp_seconds", "repo", s.Backup.Repo); got != float64(at.Unix()) {
		t.Errorf("last check timestamp = %v, want %v", got, at.Unix())
	}
	if got := value(t, fams, "citadelfs_backup_last_check_errors", "repo", s.Backup.Repo); got != 3 {
		t.Errorf("last check errors = %v, want 3", got)
	}
}

// A background failure of the index (a compaction that failed) raises
// backup_corrupt, with the remedy for damage or for a passing cause, and
// it is gone once the record is (a check that verified the index).
func TestBackupCorruptFromIndexProblem(t *testing.T) {
	clock, sys := newFakeClock(), &fakeSystem{}
	sys.set(cpuAt(10), nil)
	src := &fakeBackup{}
	repo := t.TempDir()
	ok := &index.CheckRecord{Time: clock.Now().Add(-time.Hour), Result: index.CheckOK}
	src.set(&BackupState{Repo: repo, LastCheck: ok}, nil)
	o := testOptions(clock, sys)
	o.Backup = src
	m := mustNew(t, o)
	if a := findAlert(collect(t, m).Alerts, RuleBackupCorrupt, SubjectRepository); a != nil && a.State == StateFiring {
		t.Fatalf("no problem: alert %+v", a)
	}
	for _, c := range []struct {
		corrupt bool
		remedy  string
	}{{true, "repair index"}, {false, "citadelfs check"}} {
		ip := &IndexProblemState{Time: clock.Now().Add(-time.Minute), Error: "pebble: could not open table 000005: checksum mismatch", Corrupt: c.corrupt}
		src.set(&BackupState{Repo: repo, LastCheck: ok, IndexProblem: ip}, nil)
		r := collect(t, m)
		a := findAlert(r.Alerts, RuleBackupCorrupt, SubjectRepository)
		if a == nil || a.State != StateFiring || !strings.Contains(a.Message, "000005") || !strings.Contains(a.Message, c.remedy) {
			t.Fatalf("index problem (corrupt %v): alert %+v", c.corrupt, a)
		}
		if r.Backup.IndexProblem == nil || r.Backup.IndexProblem.Error != ip.Error {
			t.Fatalf("backup.index_problem %+v", r.Backup.IndexProblem)
		}
	}
	src.set(&BackupState{Repo: repo, LastCheck: ok}, nil)
	if a := findAlert(collect(t, m).Alerts, RuleBackupCorrupt, SubjectRepository); a != nil && a.State == StateFiring {
		t.Fatalf("after the record is cleared: alert %+v, want it resolved", a)
	}
}
