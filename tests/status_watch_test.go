package tests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"citadelfs/internal/testutil"
)

// tmuxPane drives one tmux server of its own (-L: parallel tests and a
// person's tmux never meet) holding one pane.
type tmuxPane struct {
	t      *testing.T
	socket string
}

func (p *tmuxPane) tmux(args ...string) string {
	p.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-L", p.socket, "-f", "/dev/null"}, args...)...).CombinedOutput()
	if err != nil {
		p.t.Fatalf("tmux %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// waitFor polls the pane (capture-pane with flags: -e escapes, -J wrapped
// lines joined) until ok holds, and fails with the last capture after a
// few seconds.
func (p *tmuxPane) waitFor(what string, ok func(lines []string) bool, flags ...string) []string {
	p.t.Helper()
	args := append([]string{"capture-pane", "-p", "-t", "dash"}, flags...)
	var lines []string
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		lines = strings.Split(strings.TrimSuffix(p.tmux(args...), "\n"), "\n")
		if ok(lines) {
			return lines
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("pane never showed %s:\n%s", what, strings.Join(lines, "\n"))
		}
	}
}

// fitted says the dashboard fills exactly h lines of at most w columns:
// its footer is the last line.
func fitted(lines []string, w, h int) bool {
	if len(lines) != h || !strings.HasPrefix(lines[h-1], "q quit") {
		return false
	}
	for _, l := range lines {
		if utf8.RuneCountInString(l) > w {
			return false
		}
	}
	return true
}

// dashboardRepo is a small repository with one source backed up and one
// whose snapshot failed (a critical backup_failed alert), and a config.
func dashboardRepo(t *testing.T) (dir, repo, cfg string) {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("tmux is not installed (apt-get install tmux)")
	}
	dir = t.TempDir()
	src := filepath.Join(dir, "configs")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "a.yaml"), []byte("a: 1\n"), 0o644)
	repo = initRepo(t, dir)
	takeSnapshot(t, repo, "--source", "configs="+src)
	if r := citadel(t, "snapshot", "--repo", repo, "--source", "logs="+filepath.Join(dir, "gone")); r.code == 0 {
		t.Fatalf("snapshot of a missing source: %s", r)
	}
	return dir, repo, fastMonitorConfig(t, dir)
}

// startDashboard runs `status --watch` in a 100x30 tmux pane after a line
// of the shell's own, and echoes its exit code when it ends.
func startDashboard(t *testing.T, repo, cfg string) *tmuxPane {
	t.Helper()
	return startDashboardEnv(t, "-u NO_COLOR", repo, cfg)
}

// startDashboardEnv is startDashboard with env(1)'s arguments envArgs.
func startDashboardEnv(t *testing.T, envArgs, repo, cfg string) *tmuxPane {
	t.Helper()
	p := &tmuxPane{t: t, socket: fmt.Sprintf("citadelfs-test-%d-%d", os.Getpid(), time.Now().UnixNano())}
	shell := fmt.Sprintf("printf 'BEFORE-DASHBOARD\\n'; env %s TZ=UTC CITADELFS_STATE_DIR='%s' '%s' status --watch --interval 1s --repo '%s' --config '%s'; echo EXIT=$?; sleep 60",
		envArgs, stateDir, citadelBin, repo, cfg)
	p.tmux("new-session", "-d", "-s", "dash", "-x", "100", "-y", "30", shell)
	t.Cleanup(func() { exec.Command("tmux", "-L", p.socket, "kill-server").Run() })
	return p
}

// quit presses q and checks the shell's screen is back and the exit 0.
func (p *tmuxPane) quit() {
	p.t.Helper()
	p.tmux("send-keys", "-t", "dash", "q")
	lines := p.waitFor("the shell's screen after q", func(l []string) bool {
		return strings.Contains(strings.Join(l, "\n"), "EXIT=")
	})
	text := strings.Join(lines, "\n")
	if !strings.Contains(text, "BEFORE-DASHBOARD\nEXIT=0") || strings.Contains(text, "ALERTS") {
		p.t.Fatalf("after q: want the shell's screen back and exit 0:\n%s", text)
	}
}

// TestStatusWatchDashboard: `status --watch` on a terminal is a full-screen
// dashboard (it printed frame after frame into the scrollback): under tmux
// at 100x30 it fills the 30 lines, none wider than 100 columns, the alerts
// right below the header with the critical one in red; resized to 60x20
// it refits; q leaves the alternate screen, the shell's screen is back as
// it was, and the exit is 0.
func TestStatusWatchDashboard(t *testing.T) {
	_, repo, cfg := dashboardRepo(t)
	p := startDashboard(t, repo, cfg)

	lines := p.waitFor("the dashboard at 100x30", func(l []string) bool {
		return fitted(l, 100, 30) && strings.HasPrefix(l[0], "citadelfs status") && strings.Contains(strings.Join(l, "\n"), "BACKUPS")
	})
	// Critical first (another test's full disk may add host alerts).
	if lines[2] != "ALERTS" || !strings.HasPrefix(lines[3], "  CRITICAL ") || !strings.Contains(strings.Join(lines, "\n"), "\n  CRITICAL backup_failed logs") {
		t.Fatalf("alerts are not first, the critical one on top:\n%s", strings.Join(lines, "\n"))
	}
	if strings.Contains(strings.Join(lines, "\n"), "BEFORE-DASHBOARD") {
		t.Fatalf("the dashboard is not on the alternate screen:\n%s", strings.Join(lines, "\n"))
	}
	red := regexp.MustCompile(`\x1b\[[0-9;]*31m(\x1b\[[0-9;]*m)*CRITICAL(\x1b\[[0-9;]*m)* backup_failed`)
	p.waitFor("CRITICAL in red", func(l []string) bool { return red.MatchString(strings.Join(l, "\n")) }, "-e")

	p.tmux("resize-window", "-t", "dash", "-x", "60", "-y", "20")
	p.waitFor("the dashboard refitted to 60x20", func(l []string) bool {
		return fitted(l, 60, 20) && l[2] == "ALERTS"
	})
	p.quit()
}

// TestStatusWatchDashboardWithDaemon: where a mount daemon owns the
// repository, plain status is handed to it, and so was --watch, whose
// frames the daemon wrote down the socket as plain text; the dashboard
// now runs in the client, which owns the terminal, and reads the
// daemon's live state (status --json over the socket) at every redraw.
func TestStatusWatchDashboardWithDaemon(t *testing.T) {
	needMount(t)
	dir, repo, cfg := dashboardRepo(t)
	m := startMount(t, repo, filepath.Join(dir, "mnt"), cfg)
	p := startDashboard(t, repo, cfg)
	p.waitFor("the dashboard at 100x30", func(l []string) bool {
		return fitted(l, 100, 30) && strings.HasPrefix(l[0], "citadelfs status") && l[2] == "ALERTS"
	})
	if log := m.stderr.String(); !strings.Contains(log, "ran a command for a client") || !strings.Contains(log, "status --json") {
		t.Fatalf("the dashboard did not ask the daemon:\n%s", log)
	}
	p.quit()
}

// TestStatusWatchPlainFrames: where stdout is no terminal, --watch prints
// status' text every --interval, without escape codes, until SIGINT (exit 0).
func TestStatusWatchPlainFrames(t *testing.T) {
	_, repo, cfg := dashboardRepo(t)
	cmd := exec.Command(citadelBin, "status", "--watch", "--interval", "500ms", "--repo", repo, "--config", cfg)
	cmd.Env = append(testEnv(), "NO_COLOR=")
	var out testutil.SyncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	for deadline := time.Now().Add(15 * time.Second); strings.Count(out.String(), "citadelfs status ") < 2; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no second frame:\n%s", out.String())
		}
	}
	cmd.Process.Signal(os.Interrupt)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("status --watch after SIGINT: %v\n%s", err, out.String())
	}
	if strings.Contains(out.String(), "\x1b") || !strings.Contains(out.String(), "\nBACKUPS\n") {
		t.Fatalf("plain frames with escapes, or without their sections:\n%s", out.String())
	}
}

// TestStatusWatchDashboardBadConfig: a configuration that cannot be used
// is status' one line and exit 2 before the screen changes, not an error
// inside a dashboard.
func TestStatusWatchDashboardBadConfig(t *testing.T) {
	dir, repo, _ := dashboardRepo(t)
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("monitor:\n  interval: banana\n"), 0o600)
	p := startDashboard(t, repo, bad)
	// -J: the message is wider than the pane.
	lines := p.waitFor("the exit", func(l []string) bool { return strings.Contains(strings.Join(l, "\n"), "EXIT=") }, "-J")
	text := strings.Join(lines, "\n")
	if lines[0] != "BEFORE-DASHBOARD" || lines[1] != "citadelfs status: "+bad+`:2: "banana" is not a duration like 30s or 5m` ||
		!strings.Contains(text, "\nEXIT=2") || strings.Contains(text, "ALERTS") {
		t.Fatalf("bad config under --watch:\n%s", text)
	}
}

// TestStatusWatchDashboardNoColor: NO_COLOR set, the dashboard has no
// colour (bold headings only).
func TestStatusWatchDashboardNoColor(t *testing.T) {
	_, repo, cfg := dashboardRepo(t)
	p := startDashboardEnv(t, "NO_COLOR=1", repo, cfg)
	lines := p.waitFor("the dashboard", func(l []string) bool {
		return strings.Contains(strings.Join(l, "\n"), "CRITICAL backup_failed")
	}, "-e")
	if colour := regexp.MustCompile(`\x1b\[[0-9;]*3[1-7]m`); colour.MatchString(strings.Join(lines, "\n")) {
		t.Fatalf("colours with NO_COLOR set:\n%q", strings.Join(lines, "\n"))
	}
	p.quit()
}
