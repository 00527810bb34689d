package monitor

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"citadelfs/index"
)

func transitions(evs []Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, fmt.Sprintf("%s %s:%s->%s", e.Rule, e.Subject, e.From, e.To))
	}
	return out
}

func sameStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestRulePendingFiringResolved(t *testing.T) {
	clock, sys := newFakeClock(), &fakeSystem{}
	m := mustNew(t, testOptions(clock, sys)) // cpu: threshold 90, clear 85, for 5m
	t0 := clock.Now()

	steps := []struct {
		advance time.Duration
		cpu     float64
		state   string // cpu_high's state after the step ("" = none)
		events  []string
		health  string
	}{
		{0, 95, StatePending, []string{"cpu_high cpu:inactive->pending"}, HealthOK},
		{time.Minute, 96, StatePending, nil, HealthOK},
		{4 * time.Minute, 92, StateFiring, []string{"cpu_high cpu:pending->firing"}, HealthWarning},
		{time.Minute, 88, StateFiring, nil, HealthWarning}, // below threshold, above clear: holds
		{time.Minute, 85, "", []string{"cpu_high cpu:firing->resolved"}, HealthOK},
		{time.Minute, 89, "", nil, HealthOK}, // below threshold: nothing starts
	}
	for i, st := range steps {
		clock.Advance(st.advance)
		sys.set(cpuAt(st.cpu), nil)
		r := collect(t, m)
		a := findAlert(r.Alerts, RuleCPUHigh, "cpu")
		switch {
		case st.state == "" && a != nil:
			t.Fatalf("step %d: alert %s, want none", i, a.State)
		case st.state != "" && (a == nil || a.State != st.state):
			t.Fatalf("step %d: alert %+v, want %s", i, a, st.state)
		}
		if got := transitions(r.Events); !sameStrings(got, st.events) {
			t.Fatalf("step %d: events %v, want %v", i, got, st.events)
		}
		if r.Health != st.health {
			t.Fatalf("step %d: health %s, want %s", i, r.Health, st.health)
		}
		if a != nil {
			if !a.ActiveSince.Equal(t0) {
				t.Fatalf("step %d: active since %v, want %v", i, a.ActiveSince, t0)
			}
			if a.State == StateFiring && !a.FiredAt.Equal(t0.Add(5*time.Minute)) {
				t.Fatalf("step %d: fired at %v, want t0+5m", i, a.FiredAt)
			}
			if a.Value == nil || *a.Value != st.cpu {
				t.Fatalf("step %d: value %v, want %v", i, a.Value, st.cpu)
			}
		}
	}
}

// A value hovering around the threshold must fire once and stay firing;
// with the clear point at the threshold (no hysteresis) the same series
// flaps, which shows the test can tell the difference.
func TestRuleHysteresisNoFlapping(t *testing.T) {
	series := []float64{91, 89, 90.5, 88, 92, 86, 90.1, 89.9, 91, 87}
	run := func(clear float64) (fired, resolved int, final string) {
		clock, sys := newFakeClock(), &fakeSystem{}
		o := testOptions(clock, sys)
		o.Config.Thresholds.CPU = Rule{Threshold: 90, Clear: clear, For: dur(0)}
		m := mustNew(t, o)
		for _, v := range series {
			sys.set(cpuAt(v), nil)
			r := collect(t, m)
			for _, e := range r.Events {
				switch e.To {
				case StateFiring:
					fired++
				case StateResolved:
					resolved++
				}
			}
			clock.Advance(time.Minute)
		}
		final = ""
		if a := findAlert(m.Alerts(), RuleCPUHigh, "cpu"); a != nil {
			final = a.State
		}
		return fired, resolved, final
	}
	fired, resolved, final := run(85)
	if fired != 1 || resolved != 0 || final != StateFiring {
		t.Fatalf("with hysteresis: fired %d, resolved %d, final %q; want 1, 0, firing", fired, resolved, final)
	}
	fired, resolved, _ = run(90)
	if fired < 3 || resolved < 3 {
		t.Fatalf("without hysteresis: fired %d, resolved %d; the series should flap", fired, resolved)
	}
}

func TestRulePendingCancelledAndHysteresisWhilePending(t *testing.T) {
	clock, sys := newFakeClock(), &fakeSystem{}
	m := mustNew(t, testOptions(clock, sys))

	sys.set(cpuAt(93), nil)
	collect(t, m)
	clock.Advance(2 * time.Minute)
	sys.set(cpuAt(80), nil)
	r := collect(t, m)
	if got := transitions(r.Events); !sameStrings(got, []string{"cpu_high cpu:pending->inactive"}) {
		t.Fatalf("events %v, want the pending alert to go back to inactive", got)
	}
	if len(r.Alerts) != 0 {
		t.Fatalf("alerts %v, want none", r.Alerts)
	}

	// Pending, then hovering between clear and threshold: it keeps
	// pending and fires once `for` has passed since it started.
	clock.Advance(time.Minute)
	sys.set(cpuAt(91), nil)
	collect(t, m)
	for range 5 {
		clock.Advance(time.Minute)
		sys.set(cpuAt(87), nil)
		r = collect(t, m)
	}
	if a := findAlert(r.Alerts, RuleCPUHigh, "cpu"); a == nil || a.State != StateFiring {
		t.Fatalf("alert %+v, want firing after 5m above the clear point", a)
	}
}

func TestRuleClearFor(t *testing.T) {
	clock, sys := newFakeClock(), &fakeSystem{}
	o := testOptions(clock, sys)
	o.Config.Thresholds.CPU = Rule{Threshold: 90, Clear: 85, For: dur(0), ClearFor: 3 * time.Minute}
	m := mustNew(t, o)
	sys.set(cpuAt(95), nil)
	collect(t, m)
	// Minutes 1-6: clear, clear, above again (restarts the clear
	// countdown), then clear from minute 4: never clear for 3 minutes.
	for i, v := range []float64{50, 50, 95, 50, 50, 50} {
		clock.Advance(time.Minute)
		sys.set(cpuAt(v), nil)
		r := collect(t, m)
		if a := findAlert(r.Alerts, RuleCPUHigh, "cpu"); a == nil || a.State != StateFiring {
			t.Fatalf("minute %d (value %v): alert %+v, want still firing within clear_for", i+1, v, a)
		}
	}
	clock.Advance(time.Minute) // clear since minute 4, now minute 7
	r := collect(t, m)
	if a := findAlert(r.Alerts, RuleCPUHigh, "cpu"); a != nil {
		t.Fatalf("alert %+v, want resolved after clear_for", a)
	}
	if got := transitions(r.Events); !sameStrings(got, []string{"cpu_high cpu:firing->resolved"}) {
		t.Fatalf("events %v", got)
	}
}

func TestCollectorFailureKeepsAlertState(t *testing.T) {
	clock, sys := newFakeClock(), &fakeSystem{}
	o := testOptions(clock, sys)
	o.Config.Thresholds.CPU = Rule{For: dur(0)}
	m := mustNew(t, o)
	sys.set(cpuAt(99), nil)
	collect(t, m)

	clock.Advance(time.Minute)
	sys.set(nil, errors.New("monitor: /proc unreadable"))
	r := collect(t, m)
	if a := findAlert(r.Alerts, RuleCPUHigh, "cpu"); a == nil || a.State != StateFiring {
		t.Fatalf("cpu alert %+v: a failed collector must not resolve it", a)
	}
	ce := findAlert(r.Alerts, RuleCollectorError, CollectorSystem)
	if ce == nil || ce.State != StatePending || ce.Message != "monitor: /proc unreadable" {
		t.Fatalf("collector_error %+v, want pending with the collector's error", ce)
	}
	if r.System != nil || r.collectorOK(CollectorSystem) {
		t.Fatalf("sample keeps a failed collector's part: %+v", r.System)
	}
	// The other collectors still reported.
	if !r.collectorOK(CollectorGPU) || r.GPUs == nil {
		t.Fatalf("gpu collector did not report alongside the failed one")
	}
}

func TestPanickingCollectorFailsAlone(t *testing.T) {
	clock, sys := newFakeClock(), &fakeSystem{}
	o := testOptions(clock, sys)
	o.GPUs = panicGPUs{}
	m := mustNew(t, o)
	sys.set(cpuAt(10), nil)
	r := collect(t, m)
	if r.collectorOK(CollectorGPU) || !r.collectorOK(CollectorSystem) {
		t.Fatalf("collectors %+v: want gpu failed, system ok", r.Collectors)
	}
}

type panicGPUs struct{}

func (panicGPUs) GPUs(context.Context) (*GPUStats, error) { panic("nvml: invalid device handle") }
func (panicGPUs) Close() error                            { return nil }

func TestVanishedSubjectResolves(t *testing.T) {
	clock, sys := newFakeClock(), &fakeSystem{}
	models := &fakeModels{}
	o := testOptions(clock, sys)
	o.Models = models
	o.Config.Thresholds.ModelUnhealthy = Rule{For: dur(0)}
	m := mustNew(t, o)
	sys.set(cpuAt(10), nil)
	models.set(ModelStatus{Name: "mixtral", Port: 11400, State: ModelDown, Error: "connection refused"})
	r := collect(t, m)
	a := findAlert(r.Alerts, RuleModelUnhealthy, "mixtral")
	if a == nil || a.State != StateFiring || a.Severity != SeverityCritical || r.Health != HealthCritical {
		t.Fatalf("alert %+v health %s: want critical firing", a, r.Health)
	}
	if a.Value != nil {
		t.Fatalf("a yes/no rule shows no value: %v", *a.Value)
	}
	clock.Advance(time.Minute)
	models.set()
	r = collect(t, m)
	if len(r.Alerts) != 0 || !sameStrings(transitions(r.Events), []string{"model_unhealthy mixtral:firing->resolved"}) {
		t.Fatalf("alerts %v events %v: want the alert of a removed model resolved", r.Alerts, transitions(r.Events))
	}
}

func TestUnitRules(t *testing.T) {
	clock, sys := newFakeClock(), &fakeSystem{}
	o := testOptions(clock, sys)
	o.Units = fakeUnits{{Name: "a.service", State: UnitUnknown, Reason: "systemd is not running"}, {Name: "b.service", State: "inactive"}}
	m := mustNew(t, o)
	sys.set(cpuAt(10), nil)
	if r := collect(t, m); len(r.Alerts) != 0 {
		t.Fatalf("unknown/inactive units raised %v", r.Alerts)
	}

	o.Units = fakeUnits{{Name: "a.service", State: UnitFailed}}
	m = mustNew(t, o)
	r := collect(t, m)
	a := findAlert(r.Alerts, RuleUnitFailed, "a.service")
	if a == nil || a.State != StateFiring || r.Health != HealthCritical {
		t.Fatalf("failed unit: alert %+v health %s", a, r.Health)
	}
}

func TestBackupRules(t *testing.T) {
	clock, sys := newFakeClock(), &fakeSystem{}
	sys.set(cpuAt(10), nil)
	now := clock.Now()

	// No repository: the backup part says so and nothing alerts.
	m := mustNew(t, testOptions(clock, sys))
	r := collect(t, m)
	if r.Backup == nil || r.Backup.Configured || r.Backup.Reason != "no repository configured" || len(r.Alerts) != 0 {
		t.Fatalf("no repo: backup %+v alerts %v", r.Backup, r.Alerts)
	}

	src := &fakeBackup{}
	src.set(&BackupState{Repo: t.TempDir(), RepoBytes: 12345, Sources: []SourceState{
		{Label: "configs", LastTime: now.Add(-10 * time.Minute), LastResult: index.AttemptOK, LastSuccess: now.Add(-10 * time.Minute), MaxAge: 30 * time.Minute},
		{Label: "logs", LastTime: now.Add(-time.Hour), LastResult: index.AttemptFailed, LastError: "disk full", LastSuccess: now.Add(-49 * time.Hour)},
		{Label: "models", LastTime: now.Add(-2 * time.Hour), LastResult: index.AttemptOK, LastSuccess: now.Add(-2 * time.Hour)},
		{Label: "new"},
	}}, nil)
	o := testOptions(clock, sys)
	o.Backup = src
	o.Config.BackupStorageThreshold = 0.001 // any real file system is fuller than that
	m = mustNew(t, o)
	r = collect(t, m)
	want := map[[2]string]string{
		{RuleBackupFailed, "logs"}:         SeverityCritical,
		{RuleBackupStale, "logs"}:          SeverityWarning, // 49h > 26h default
		{RuleBackupStale, "new"}:           SeverityWarning, // never succeeded
		{RuleBackupStorage, r.Backup.Repo}: SeverityWarning,
	}
	if len(r.Alerts) != len(want) {
		t.Fatalf("alerts %+v, want %d", r.Alerts, len(want))
	}
	for k, sev := range want {
		a := findAlert(r.Alerts, k[0], k[1])
		if a == nil || a.Severity != sev || a.State != StateFiring {
			t.Fatalf("%v: alert %+v, want %s firing", k, a, sev)
		}
	}
	if r.Backup.FS == nil || r.Backup.RepoBytes == nil || *r.Backup.RepoBytes != 12345 {
		t.Fatalf("backup status %+v: want the repo's file system measured and its size", r.Backup)
	}
	// configs: 10m old with a 30m schedule is fine; once 40m old it is stale.
	clock.Advance(30 * time.Minute)
	r = collect(t, m)
	if a := findAlert(r.Alerts, RuleBackupStale, "configs"); a == nil {
		t.Fatalf("configs 40m old with a 30m schedule: no backup_stale")
	}

	// A failing backup source is a collector failure, not a backup alert.
	src.set(nil, errors.New("index: repository locked"))
	r = collect(t, m)
	if r.collectorOK(CollectorBackup) {
		t.Fatalf("backup collector OK despite error")
	}
	if a := findAlert(r.Alerts, RuleBackupFailed, "logs"); a == nil || a.State != StateFiring {
		t.Fatalf("backup_failed %+v: must keep firing while the source cannot be read", a)
	}
}
