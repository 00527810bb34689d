package monitor

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"citadelfs/index"
)

// corruptSource is a backup source whose integrity record the test sets.
func corruptSource(t *testing.T, in *index.CorruptReads) *fakeBackup {
	src := &fakeBackup{}
	src.set(&BackupState{Repo: t.TempDir(), Integrity: in}, nil)
	return src
}

func TestBackupCorruptRule(t *testing.T) {
	clock, sys := newFakeClock(), &fakeSystem{}
	sys.set(cpuAt(10), nil)
	src := corruptSource(t, nil)
	o := testOptions(clock, sys)
	o.Backup = src
	m := mustNew(t, o)

	// Nothing watches reads (a monitor outside the daemon): no alert.
	r := collect(t, m)
	if a := findAlert(r.Alerts, RuleBackupCorrupt, SubjectRepository); a != nil || r.Backup.Integrity != nil {
		t.Fatalf("no integrity record: alert %+v integrity %+v", a, r.Backup.Integrity)
	}
	// Reads watched, none corrupt: no alert.
	src.set(&BackupState{Repo: t.TempDir(), Integrity: &index.CorruptReads{}}, nil)
	r = collect(t, m)
	if a := findAlert(r.Alerts, RuleBackupCorrupt, SubjectRepository); a != nil || r.Health != HealthOK {
		t.Fatalf("no corrupt read: alert %+v health %s", a, r.Health)
	}

	// A corrupt read a minute ago: critical, firing at once, naming the
	// file and the error.
	seen := clock.Now().Add(-time.Minute)
	in := &index.CorruptReads{Reads: 3, Files: 1, LastTime: seen, LastPath: "/latest/models/w.bin",
		LastError: "snapshot: chunk 1a2b3c4d in pack 5e6f fails its hash check: corrupt data"}
	src.set(&BackupState{Repo: t.TempDir(), Integrity: in}, nil)
	r = collect(t, m)
	a := findAlert(r.Alerts, RuleBackupCorrupt, SubjectRepository)
	if a == nil || a.State != StateFiring || a.Severity != SeverityCritical || r.Health != HealthCritical {
		t.Fatalf("recent corrupt read: alert %+v health %s", a, r.Health)
	}
	for _, want := range []string{"/latest/models/w.bin", "fails its hash check", "3 corrupt reads"} {
		if !strings.Contains(a.Message, want) {
			t.Errorf("message %q does not mention %q", a.Message, want)
		}
	}
	if is := r.Backup.Integrity; is == nil || is.AgeSeconds == nil || *is.AgeSeconds != 60 || is.WindowSeconds != 86400 || is.LastPath != in.LastPath {
		t.Fatalf("integrity status %+v", is)
	}

	// Still within the default 24h window: still firing.
	clock.Advance(23 * time.Hour)
	if a := findAlert(collect(t, m).Alerts, RuleBackupCorrupt, SubjectRepository); a == nil || a.State != StateFiring {
		t.Fatalf("23h after: alert %+v, want firing", a)
	}
	// A failing backup source keeps it firing (no data is not "fixed").
	src.set(nil, context.DeadlineExceeded)
	clock.Advance(2 * time.Hour)
	if a := findAlert(collect(t, m).Alerts, RuleBackupCorrupt, SubjectRepository); a == nil || a.State != StateFiring {
		t.Fatalf("backup source failing: alert %+v, want still firing", a)
	}
	// Past the window with the source back: resolved.
	src.set(&BackupState{Repo: t.TempDir(), Integrity: in}, nil)
	r = collect(t, m)
	if a := findAlert(r.Alerts, RuleBackupCorrupt, SubjectRepository); a != nil {
		t.Fatalf("25h after the last corrupt read: alert %+v, want resolved", a)
	}
	var resolved bool
	for _, ev := range r.Events {
		if ev.Rule == RuleBackupCorrupt && ev.To == StateResolved {
			resolved = strings.Contains(ev.Message, "no corrupt data read in the last 24h")
		}
	}
	if !resolved {
		t.Fatalf("no resolved event saying why: %+v", r.Events)
	}

	// A new corrupt read fires it again.
	in2 := *in
	in2.Reads, in2.LastTime, in2.LastPath = 4, clock.Now(), "/latest/models/x.bin"
	src.set(&BackupState{Repo: t.TempDir(), Integrity: &in2}, nil)
	if a := findAlert(collect(t, m).Alerts, RuleBackupCorrupt, SubjectRepository); a == nil || !strings.Contains(a.Message, "x.bin") {
		t.Fatalf("new corrupt read: alert %+v", a)
	}
}

func TestBackupCorruptWindowAndSeverityFromConfig(t *testing.T) {
	c, err := decode(t, `
monitor:
  backup_corrupt_window: 1h
  thresholds:
    backup_corrupt: {severity: warning}
`)
	if err != nil {
		t.Fatal(err)
	}
	clock, sys := newFakeClock(), &fakeSystem{}
	sys.set(cpuAt(10), nil)
	o := testOptions(clock, sys)
	o.Config.BackupCorruptWindow, o.Config.Thresholds = c.BackupCorruptWindow, c.Thresholds
	o.Backup = corruptSource(t, &index.CorruptReads{Reads: 1, Files: 1, LastTime: clock.Now(), LastPath: "/a", LastError: "corrupt data"})
	m := mustNew(t, o)
	if a := findAlert(collect(t, m).Alerts, RuleBackupCorrupt, SubjectRepository); a == nil || a.Severity != SeverityWarning {
		t.Fatalf("alert %+v, want a warning", a)
	}
	clock.Advance(time.Hour)
	if a := findAlert(collect(t, m).Alerts, RuleBackupCorrupt, SubjectRepository); a != nil {
		t.Fatalf("1h window, 1h after: alert %+v, want resolved", a)
	}

	if d := (Config{}).WithDefaults(); d.BackupCorruptWindow != 24*time.Hour || d.Thresholds.BackupCorrupt.Severity != SeverityCritical ||
		d.Thresholds.BackupCorrupt.For == nil || *d.Thresholds.BackupCorrupt.For != 0 {
		t.Fatalf("defaults: window %s rule %+v", d.BackupCorruptWindow, d.Thresholds.BackupCorrupt)
	}
	bad := Config{BackupCorruptWindow: -time.Hour}.WithDefaults()
	if err := bad.Validate(); err == nil {
		t.Fatalf("negative backup_corrupt_window accepted")
	}
}

func TestBackupCorruptMetrics(t *testing.T) {
	now := time.Date(2026, 11, 27, 4, 2, 11, 0, time.UTC)
	s := richSample(now)
	fams := parseProm(t, metricsText(t, s, nil))
	for _, name := range []string{"citadelfs_backup_corrupt_reads_total", "citadelfs_backup_last_corrupt_read_timestamp_seconds"} {
		if _, ok := fams[name]; ok {
			t.Errorf("%s present although reads are not watched", name)
		}
	}

	// Watched, nothing corrupt: the counter is there at 0 (so rate() works
	// from the start), the timestamp is absent.
	s.Backup.Integrity = &IntegrityStatus{WindowSeconds: 86400}
	fams = parseProm(t, metricsText(t, s, nil))
	if got := value(t, fams, "citadelfs_backup_corrupt_reads_total"); got != 0 {
		t.Errorf("corrupt reads = %v, want 0", got)
	}
	if _, ok := fams["citadelfs_backup_last_corrupt_read_timestamp_seconds"]; ok {
		t.Errorf("last corrupt timestamp present without a corrupt read")
	}

	last := now.Add(-90 * time.Second)
	s.Backup.Integrity = &IntegrityStatus{CorruptReads: 7, CorruptFiles: 2, LastTime: last,
		LastPath: "/latest/models/w \"odd\".bin", LastError: "corrupt data", AgeSeconds: f64(90), WindowSeconds: 86400}
	fams = parseProm(t, metricsText(t, s, nil))
	if got := fams["citadelfs_backup_corrupt_reads_total"].GetType(); got != dto.MetricType_COUNTER {
		t.Errorf("citadelfs_backup_corrupt_reads_total type %v, want counter", got)
	}
	if got := fams["citadelfs_backup_last_corrupt_read_timestamp_seconds"].GetType(); got != dto.MetricType_GAUGE {
		t.Errorf("last corrupt timestamp type %v, want gauge", got)
	}
	for _, c := range []struct {
		name string
		want float64
	}{
		{"citadelfs_backup_corrupt_reads_total", 7},
		{"citadelfs_backup_corrupt_files", 2},
		{"citadelfs_backup_last_corrupt_read_timestamp_seconds", float64(last.Unix())},
	} {
		if got := value(t, fams, c.name, "repo", s.Backup.Repo); got != c.want {
			t.Errorf("%s = %v, want %v", c.name, got, c.want)
		}
	}
}

// metrics.json and alerts.json carry the record and the alert.
func TestBackupCorruptInStatusFiles(t *testing.T) {
	clock, sys := newFakeClock(), &fakeSystem{}
	sys.set(cpuAt(10), nil)
	o := testOptions(clock, sys)
	o.Backup = corruptSource(t, &index.CorruptReads{Reads: 1, Files: 1, LastTime: clock.Now(), LastPath: "/latest/a", LastError: "corrupt data"})
	m := mustNew(t, o)
	collect(t, m)
	b, err := m.Render(context.Background(), FileMetricsJSON)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Backup struct {
			Integrity map[string]any `json:"integrity"`
		} `json:"backup"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	in := doc.Backup.Integrity
	if in["corrupt_reads"] != 1.0 || in["last_path"] != "/latest/a" || in["last_error"] != "corrupt data" || in["last_time"] == nil {
		t.Fatalf("metrics.json integrity %v", in)
	}
	b, err = m.Render(context.Background(), FileAlertsJSON)
	if err != nil {
		t.Fatal(err)
	}
	var alerts []Alert
	if err := json.Unmarshal(b, &alerts); err != nil {
		t.Fatal(err)
	}
	a := findAlert(alerts, RuleBackupCorrupt, SubjectRepository)
	if a == nil || a.State != StateFiring || !strings.Contains(a.Message, "/latest/a") {
		t.Fatalf("alerts.json %s", b)
	}
	for _, f := range []string{FileAlerts, FileHealth} {
		b, err := m.Render(context.Background(), f)
		if err != nil || !strings.Contains(string(b), "/latest/a") {
			t.Fatalf("status/%s does not name the file (%v):\n%s", f, err, b)
		}
	}
}
