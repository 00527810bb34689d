package monitor

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"citadelfs/index"
)

// status/backup asks the backup source at every open, so a snapshot
// committed after the last cycle shows at once, and it is WriteBackup's
// lines, which citadelfs status prints as its BACKUPS section.
func TestBackupFileIsFreshAndShared(t *testing.T) {
	clock, sys := newFakeClock(), &fakeSystem{}
	sys.set(cpuAt(10), nil)
	src := &fakeBackup{}
	repo := t.TempDir()
	src.set(&BackupState{Repo: repo, Sources: []SourceState{{Label: "models"}}}, nil)
	o := testOptions(clock, sys)
	o.Backup = src
	m := mustNew(t, o)
	collect(t, m)
	ctx := context.Background()
	render := func() string {
		t.Helper()
		b, err := m.Render(ctx, FileBackup)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if got := render(); !strings.Contains(got, "models  never") {
		t.Errorf("before any snapshot:\n%s", got)
	}
	at := clock.Now().Add(-2 * time.Minute)
	src.set(&BackupState{Repo: repo, Sources: []SourceState{{Label: "models", LastTime: at, LastResult: index.AttemptFailed,
		LastError: "disk full", LastDuration: 3 * time.Second}}}, nil)
	got := render() // no new cycle
	for _, want := range []string{"repository " + repo, "SOURCE", "models  failed", "(took 3s)", "disk full"} {
		if !strings.Contains(got, want) {
			t.Errorf("status/backup lacks %q:\n%s", want, got)
		}
	}
	// The same lines as WriteBackup gives citadelfs status, indented.
	st, err := m.backup.collect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	WriteBackup(&b, st, "  ", "", nil)
	if strings.TrimPrefix(strings.ReplaceAll(b.String(), "\n  ", "\n"), "  ") != got {
		t.Errorf("indented:\n%s\nfile:\n%s", b.String(), got)
	}
}

func TestGPUCells(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	u := func(v uint64) *uint64 { return &v }
	c := GPUCellsOf(GPU{UtilizationPercent: f(87), MemoryUsed: u(70 << 30), MemoryTotal: u(80 << 30), TemperatureC: f(85), PowerWatts: f(310), PowerLimitWatts: f(400)})
	if c != (GPUCells{Util: "87%", Memory: "70.0GiB/80.0GiB (88%)", Temp: "85C", Power: "310/400W"}) {
		t.Errorf("cells %+v", c)
	}
	if c := GPUCellsOf(GPU{}); c != (GPUCells{"-", "-", "-", "-"}) {
		t.Errorf("empty GPU: %+v", c)
	}
}
