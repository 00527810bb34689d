package monitor

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"citadelfs/index"
)

// check_stale: the weekly check timer that stopped running. The last
// check's start (a later run that kept standing errors counts) is older
// than check_max_age (8 days), or no check ran since the repository was
// made that long ago.
func TestCheckStale(t *testing.T) {
	clock, sys := newFakeClock(), &fakeSystem{}
	sys.set(cpuAt(10), nil)
	src := &fakeBackup{}
	repo := t.TempDir()
	now := clock.Now()
	o := testOptions(clock, sys)
	o.Backup = src
	m := mustNew(t, o)
	day := 24 * time.Hour

	for _, c := range []struct {
		name  string
		st    BackupState
		fires bool
		says  string
	}{
		{"new repository, no check yet", BackupState{Repo: repo, Created: now.Add(-2 * day)}, false, ""},
		{"no check in 9 days since init", BackupState{Repo: repo, Created: now.Add(-9 * day)}, true, "no check since the repository was made"},
		{"weekly check 7 days ago", BackupState{Repo: repo, Created: now.Add(-90 * day), LastCheck: &index.CheckRecord{Time: now.Add(-7 * day), Result: index.CheckOK}}, false, ""},
		{"last check 9 days ago", BackupState{Repo: repo, Created: now.Add(-90 * day), LastCheck: &index.CheckRecord{Time: now.Add(-9 * day), Result: index.CheckOK}}, true, "last check 216h ago"},
		{"old errors, checks still run", BackupState{Repo: repo, LastCheck: &index.CheckRecord{Time: now.Add(-30 * day), LastRun: now.Add(-2 * day), Result: index.CheckErrors, Errors: 1}}, false, ""},
		{"unknown creation, no check", BackupState{Repo: repo}, false, ""},
	} {
		src.set(&c.st, nil)
		r := collect(t, m)
		a := findAlert(r.Alerts, RuleCheckStale, SubjectRepository)
		if (a != nil) != c.fires {
			t.Fatalf("%s: alert %+v, want firing %v", c.name, a, c.fires)
		}
		if a != nil && (a.State != StateFiring || a.Severity != SeverityWarning || !strings.Contains(a.Message, c.says) || !strings.Contains(a.Message, "citadelfs-check.timer")) {
			t.Fatalf("%s: alert %+v", c.name, a)
		}
	}
}

// retention_failed: per operation, while its last run failed; the next
// passing run resolves it.
func TestRetentionFailed(t *testing.T) {
	clock, sys := newFakeClock(), &fakeSystem{}
	sys.set(cpuAt(10), nil)
	src := &fakeBackup{}
	repo := t.TempDir()
	at := clock.Now().Add(-time.Hour)
	o := testOptions(clock, sys)
	o.Backup = src
	m := mustNew(t, o)

	src.set(&BackupState{Repo: repo, Maintenance: []MaintenanceState{
		{Op: "forget", Time: at, Result: index.MaintenanceOK},
		{Op: "prune", Time: at, Result: index.MaintenanceFailed, Error: "delete packs/ab/cd.pack: input/output error"},
	}}, nil)
	r := collect(t, m)
	a := findAlert(r.Alerts, RuleRetentionFailed, "prune")
	if a == nil || a.State != StateFiring || a.Severity != SeverityWarning || !strings.Contains(a.Message, "input/output error") {
		t.Fatalf("failed prune: %+v", a)
	}
	if findAlert(r.Alerts, RuleRetentionFailed, "forget") != nil {
		t.Fatalf("a passing forget alerts")
	}
	fams := parseProm(t, metricsText(t, m.Latest(), r.Alerts))
	if value(t, fams, "citadelfs_backup_maintenance_last_result", "op", "prune", "result", "failed") != 1 {
		t.Errorf("metrics do not say prune failed")
	}

	clock.Advance(time.Hour)
	src.set(&BackupState{Repo: repo, Maintenance: []MaintenanceState{{Op: "prune", Time: clock.Now(), Result: index.MaintenanceOK}}}, nil)
	r = collect(t, m)
	if a := findAlert(r.Alerts, RuleRetentionFailed, "prune"); a != nil {
		t.Fatalf("prune passed, alert still %+v", a)
	}
}

// status/alerts.json keeps the seed's array shape, oldest first, so that
// its operations guide's `jq '.[-5:]'` shows the latest alerts: active
// ones and those resolved in the last day, by their last change.
func TestAlertsJSONIsTheSeedsArray(t *testing.T) {
	clock, sys := newFakeClock(), &fakeSystem{}
	o := testOptions(clock, sys)
	o.Config.Thresholds.CPU = Rule{For: dur(0)}
	o.Config.Thresholds.Memory = Rule{For: dur(0)}
	m := mustNew(t, o)
	render := func() []Alert {
		b, err := m.Render(context.Background(), FileAlertsJSON)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(bytes.TrimSpace(b), []byte("[")) {
			t.Fatalf("alerts.json is not an array:\n%s", b)
		}
		var out []Alert
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	if got := render(); len(got) != 0 {
		t.Fatalf("before any sample: %+v", got)
	}
	sys.set(cpuAt(95), nil)
	collect(t, m) // cpu_high fires at 04:00
	clock.Advance(time.Minute)
	sys.set(cpuAt(10), nil)
	collect(t, m) // and resolves at 04:01
	clock.Advance(time.Minute)
	st := cpuAt(95)
	st.Memory.UsedPercent = 95
	sys.set(st, nil)
	collect(t, m) // both fire at 04:02

	got := render()
	if len(got) != 3 || got[0].Rule != RuleCPUHigh || got[0].State != StateResolved || got[0].ResolvedAt.IsZero() || got[0].FiredAt.IsZero() {
		t.Fatalf("alerts.json %+v: want the resolved cpu_high first", got)
	}
	for _, a := range got[1:] {
		if a.State != StateFiring || !a.FiredAt.Equal(clock.Now()) {
			t.Fatalf("alerts.json %+v: want the two firing alerts last", got)
		}
	}
	clock.Advance(25 * time.Hour)
	collect(t, m)
	if got := render(); len(got) != 2 {
		t.Fatalf("a day later: %+v, want the resolved alert gone", got)
	}

	// The seed's guide, verbatim.
	jq, err := exec.LookPath("jq")
	if err != nil {
		t.Skip("jq not installed")
	}
	b, _ := m.Render(context.Background(), FileAlertsJSON)
	cmd := exec.Command(jq, "-c", ".[-5:] | map(.rule)")
	cmd.Stdin = bytes.NewReader(b)
	out, err := cmd.Output()
	if err != nil || !strings.Contains(string(out), RuleCPUHigh) || !strings.Contains(string(out), RuleMemoryHigh) {
		t.Fatalf("jq '.[-5:]': %v %s", err, out)
	}
}
