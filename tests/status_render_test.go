package tests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestStatusBackupMatchesStatusCommand: status/backup in the mount and the
// BACKUPS section of citadelfs status are one renderer's lines (they were
// two: the adapter's table of attempts and cmd's own section), so they
// show the same sources, results, snapshot and errors.
func TestStatusBackupMatchesStatusCommand(t *testing.T) {
	needMount(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "configs")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "a.yaml"), []byte("a: 1\n"), 0o644)
	repo := initRepo(t, dir)
	snap := takeSnapshot(t, repo, "--source", "configs="+src)
	if r := citadel(t, "snapshot", "--repo", repo, "--source", "logs="+filepath.Join(dir, "gone")); r.code == 0 {
		t.Fatalf("snapshot of a missing source: %s", r)
	}
	mp := filepath.Join(dir, "mnt")
	startMount(t, repo, mp, fastMonitorConfig(t, dir))

	section := func() []string {
		r := citadel(t, "status", "--repo", repo)
		if r.code != 0 && r.code != 5 {
			t.Fatalf("status: %s", r)
		}
		_, rest, ok := strings.Cut(r.stdout, "\nBACKUPS\n")
		if !ok && strings.Contains(r.stdout, "no sample collected yet") {
			return nil // the daemon's monitor has not sampled yet
		}
		if !ok {
			t.Fatalf("status has no BACKUPS section:\n%s", r.stdout)
		}
		var out []string
		for _, l := range strings.Split(strings.TrimRight(rest, "\n"), "\n") {
			out = append(out, strings.TrimPrefix(l, "  "))
		}
		return out
	}
	file := func() []string {
		b, err := os.ReadFile(filepath.Join(mp, "status", "backup"))
		if err != nil {
			t.Fatal(err)
		}
		return strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	}
	// status inside the daemon reads its monitor's last sample (every
	// second here); the file is rendered at open.
	var got, want []string
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(300 * time.Millisecond) {
		got, want = section(), file()
		if strings.Join(got, "\n") == strings.Join(want, "\n") {
			break
		}
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("citadelfs status BACKUPS:\n%s\nstatus/backup:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	all := strings.Join(want, "\n")
	for _, w := range []string{"repository " + repo, "configs", "ok", snap.ID[:8], "logs", "failed"} {
		if !strings.Contains(all, w) {
			t.Errorf("status/backup lacks %q:\n%s", w, all)
		}
	}
}
