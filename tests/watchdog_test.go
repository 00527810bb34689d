package tests

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Under WatchdogSec= systemd passes WATCHDOG_USEC; the real daemon must
// send WATCHDOG=1 to $NOTIFY_SOCKET (here a unixgram socket in the test's
// directory) after READY=1, at half the interval, and none when
// WATCHDOG_PID names another process.
func TestMountWatchdogPings(t *testing.T) {
	needMount(t)
	dir := t.TempDir()
	repo := initRepo(t, dir)
	config := monitorConfig(t, dir)

	m := startMountEnv(t, []string{"WATCHDOG_USEC=100000"}, repo, filepath.Join(dir, "mnt"), config)
	deadline := time.Now().Add(20 * time.Second)
	for strings.Count(m.notify.String(), "WATCHDOG=1") < 3 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	got := m.notify.String()
	if n := strings.Count(got, "WATCHDOG=1"); n < 3 {
		t.Fatalf("%d WATCHDOG=1 pings in 20s at WATCHDOG_USEC=100000:\n%s\n%s", n, got, m.stderr)
	}
	if strings.Index(got, "READY=1") > strings.Index(got, "WATCHDOG=1") {
		t.Errorf("a ping before READY=1:\n%s", got)
	}
	m.stop(t)

	other := startMountEnv(t, []string{"WATCHDOG_USEC=100000", "WATCHDOG_PID=1"}, repo, filepath.Join(dir, "mnt2"), config)
	// Ten intervals without a ping.
	time.Sleep(500 * time.Millisecond)
	if strings.Contains(other.notify.String(), "WATCHDOG=1") {
		t.Errorf("pings for WATCHDOG_PID=1:\n%s", other.notify.String())
	}
	other.stop(t)
}
