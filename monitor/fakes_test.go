package monitor

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"
)

// fakeClock is the injected clock: tests move it by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 11, 27, 4, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fakeSystem returns whatever the test last set.
type fakeSystem struct {
	mu  sync.Mutex
	st  *SystemStats
	err error
}

func (f *fakeSystem) set(st *SystemStats, err error) {
	f.mu.Lock()
	f.st, f.err = st, err
	f.mu.Unlock()
}

func (f *fakeSystem) System(context.Context) (*SystemStats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st, f.err
}

// cpuAt is a system sample with the given total CPU percent and nothing
// alarming elsewhere.
func cpuAt(pct float64) *SystemStats {
	return &SystemStats{
		CPU:    &CPUStats{Cores: 2, TotalPercent: pct, PerCore: []float64{pct, pct}},
		Memory: &MemoryStats{Total: 1 << 30, Available: 1 << 29, UsedPercent: 50},
		Paths:  []PathUsage{}, Mounts: []MountUsage{}, Disks: []DiskIO{}, Network: []NetworkIO{},
	}
}

type noGPUs struct{}

func (noGPUs) GPUs(context.Context) (*GPUStats, error) {
	return &GPUStats{Available: false, Reason: "NVML library not found (no NVIDIA driver installed)", Devices: []GPU{}}, nil
}
func (noGPUs) Close() error { return nil }

type fakeModels struct {
	mu sync.Mutex
	ms []ModelStatus
}

func (f *fakeModels) set(ms ...ModelStatus) {
	f.mu.Lock()
	f.ms = ms
	f.mu.Unlock()
}

func (f *fakeModels) Models(context.Context) ([]ModelStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]ModelStatus(nil), f.ms...), nil
}

type fakeUnits []UnitStatus

func (f fakeUnits) Units(context.Context) ([]UnitStatus, error) { return f, nil }

type fakeBackup struct {
	mu  sync.Mutex
	st  *BackupState
	err error
}

func (f *fakeBackup) set(st *BackupState, err error) {
	f.mu.Lock()
	f.st, f.err = st, err
	f.mu.Unlock()
}

func (f *fakeBackup) BackupState(context.Context) (*BackupState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st, f.err
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// testOptions wires fakes for every source; tests override what they test.
func testOptions(clock *fakeClock, sys *fakeSystem) Options {
	return Options{
		Config: Config{Models: map[string]int{}, Paths: []string{}},
		Clock:  clock.Now,
		System: sys,
		GPUs:   noGPUs{},
		Models: &fakeModels{},
		Units:  fakeUnits{},
		Logger: quietLogger(),
	}
}

func mustNew(t testing.TB, o Options) *Monitor {
	t.Helper()
	m, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func collect(t testing.TB, m *Monitor) *Report {
	t.Helper()
	r, err := m.CollectOnce(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func findAlert(alerts []Alert, rule, subject string) *Alert {
	for i := range alerts {
		if alerts[i].Rule == rule && alerts[i].Subject == subject {
			return &alerts[i]
		}
	}
	return nil
}

func f64(v float64) *float64 { return &v }
func u64(v uint64) *uint64   { return &v }
