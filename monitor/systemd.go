package monitor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// UnitSource reads systemd unit states. A machine without systemd answers
// UnitUnknown for every unit, without an error.
type UnitSource interface {
	Units(ctx context.Context) ([]UnitStatus, error)
}

// SystemctlRunner runs systemctl with args and returns its standard output
// and error. A non-zero exit is not by itself an error for `is-active`
// (it exits 3 when a unit is inactive), so implementations return the
// output together with the *exec.ExitError.
type SystemctlRunner func(ctx context.Context, args ...string) (stdout, stderr []byte, err error)

// ErrNoSystemd is returned by a SystemctlRunner when systemd is not the
// init system (containers, other inits).
var ErrNoSystemd = errors.New("monitor: systemd is not running")

// ExecSystemctl is the default SystemctlRunner: it checks that systemd
// booted the machine (as sd_booted(3) does) and runs systemctl from $PATH.
func ExecSystemctl(ctx context.Context, args ...string) ([]byte, []byte, error) {
	if _, err := os.Stat("/run/systemd/system"); err != nil {
		return nil, nil, ErrNoSystemd
	}
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, "systemctl", args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Env = append(os.Environ(), "SYSTEMD_PAGER=", "SYSTEMD_COLORS=0")
	err := cmd.Run()
	return out.Bytes(), errb.Bytes(), err
}

type systemdUnits struct {
	units []string
	run   SystemctlRunner
}

// NewSystemdUnits returns the UnitSource that asks `systemctl is-active`.
func NewSystemdUnits(units []string, run SystemctlRunner) UnitSource {
	if run == nil {
		run = ExecSystemctl
	}
	return &systemdUnits{units: units, run: run}
}

// knownUnitStates are the answers of `systemctl is-active`.
var knownUnitStates = map[string]bool{
	"active": true, "reloading": true, "inactive": true, "failed": true, "activating": true,
	"deactivating": true, "maintenance": true, "refreshing": true,
}

func (s *systemdUnits) Units(ctx context.Context) ([]UnitStatus, error) {
	out := make([]UnitStatus, len(s.units))
	if len(s.units) == 0 {
		return out, nil
	}
	unknown := func(reason string) []UnitStatus {
		for i, u := range s.units {
			out[i] = UnitStatus{Name: u, State: UnitUnknown, Reason: reason}
		}
		return out
	}
	stdout, stderr, err := s.run(ctx, append([]string{"is-active", "--"}, s.units...)...)
	var ee *exec.ExitError
	switch {
	case errors.Is(err, ErrNoSystemd):
		return unknown("systemd is not running"), nil
	case errors.Is(err, exec.ErrNotFound):
		return unknown("systemctl not found"), nil
	case err != nil && !errors.As(err, &ee):
		return unknown(err.Error()), fmt.Errorf("monitor: systemctl is-active: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(stdout)), "\n")
	if len(lines) != len(s.units) {
		// systemctl printed no per-unit answer: it could not reach the
		// system manager (not booted with systemd, no D-Bus). That is the
		// "no systemd" case, not an alert.
		reason := firstLine(stderr)
		if reason == "" {
			reason = "systemctl gave no answer"
		}
		return unknown(reason), nil
	}
	for i, u := range s.units {
		state := strings.TrimSpace(lines[i])
		if !knownUnitStates[state] {
			out[i] = UnitStatus{Name: u, State: UnitUnknown, Reason: "systemctl said " + state}
			continue
		}
		out[i] = UnitStatus{Name: u, State: state}
	}
	return out, nil
}

func firstLine(b []byte) string {
	s := strings.TrimSpace(string(b))
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}
