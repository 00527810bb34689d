package monitor

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
)

// runner returns a SystemctlRunner that answers as systemctl would and
// records the arguments.
func runner(stdout, stderr string, err error, got *[]string) SystemctlRunner {
	return func(ctx context.Context, args ...string) ([]byte, []byte, error) {
		*got = args
		return []byte(stdout), []byte(stderr), err
	}
}

func TestSystemdUnits(t *testing.T) {
	units := []string{"citadelfs-mount.service", "ollama.service", "citadelfs-snapshot.timer"}
	exit3 := &exec.ExitError{} // is-active exits 3 when a unit is not active
	for _, c := range []struct {
		name            string
		stdout, stderr  string
		err             error
		want            []string // states
		reason          string   // for unknown
		collectorFailed bool
	}{
		{"all active", "active\nactive\nactive\n", "", nil, []string{"active", "active", "active"}, "", false},
		{"one failed", "active\nfailed\ninactive\n", "", exit3, []string{"active", "failed", "inactive"}, "", false},
		{"no systemd", "", "", ErrNoSystemd, []string{"unknown", "unknown", "unknown"}, "systemd is not running", false},
		{"not booted with systemd", "", "System has not been booted with systemd as init system (PID 1). Can't operate.\nFailed to connect to bus: Host is down\n", exit3,
			[]string{"unknown", "unknown", "unknown"}, "System has not been booted with systemd as init system (PID 1). Can't operate.", false},
		{"no systemctl", "", "", &exec.Error{Name: "systemctl", Err: exec.ErrNotFound}, []string{"unknown", "unknown", "unknown"}, "systemctl not found", false},
		{"odd answer", "active\nbogus\nactive\n", "", exit3, []string{"active", "unknown", "active"}, "systemctl said bogus", false},
		{"runner broke", "", "", errors.New("fork: resource temporarily unavailable"), []string{"unknown", "unknown", "unknown"}, "fork: resource temporarily unavailable", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			var args []string
			src := NewSystemdUnits(units, runner(c.stdout, c.stderr, c.err, &args))
			got, err := src.Units(context.Background())
			if (err != nil) != c.collectorFailed {
				t.Fatalf("err %v, want failure %v", err, c.collectorFailed)
			}
			if strings.Join(args, " ") != "is-active -- citadelfs-mount.service ollama.service citadelfs-snapshot.timer" {
				t.Fatalf("ran systemctl %v", args)
			}
			for i, u := range got {
				if u.Name != units[i] || u.State != c.want[i] {
					t.Fatalf("unit %d: %+v, want %s", i, u, c.want[i])
				}
				if u.State == UnitUnknown && u.Reason != c.reason {
					t.Fatalf("unit %d reason %q, want %q", i, u.Reason, c.reason)
				}
			}
		})
	}
}

// A machine without systemd (like most containers) reports unknown units
// and raises nothing, through the real runner.
func TestSystemdAbsentRaisesNothing(t *testing.T) {
	clock, sys := newFakeClock(), &fakeSystem{}
	sys.set(cpuAt(10), nil)
	o := testOptions(clock, sys)
	o.Units = nil
	o.Config.SystemdUnits = []string{"citadelfs-mount.service"}
	m := mustNew(t, o)
	r := collect(t, m)
	if len(r.Units) != 1 {
		t.Fatalf("units %+v", r.Units)
	}
	t.Logf("this machine: %+v", r.Units[0])
	if r.Units[0].State == UnitUnknown && len(r.Alerts) != 0 {
		t.Fatalf("unknown unit raised %+v", r.Alerts)
	}
	if !r.collectorOK(CollectorSystemd) {
		t.Fatalf("systemd collector failed: %+v", r.Collectors)
	}
}
