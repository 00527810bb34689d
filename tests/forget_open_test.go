package tests

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A file held open in a snapshot that is then forgotten and pruned (the
// nightly forget --prune handed to the daemon) answers ESTALE, as NFS does
// for a file deleted under an open handle: not EIO, and not a corrupt-data
// alert, since nothing is damaged.
func TestForgottenSnapshotOpenFileIsStale(t *testing.T) {
	needMount(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	os.MkdirAll(src, 0o755)
	rng := rand.NewChaCha8([32]byte{9})
	write := func() {
		data := make([]byte, 4<<20)
		rng.Read(data) // incompressible and new: chunks of its own
		if err := os.WriteFile(filepath.Join(src, "weights.bin"), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	repo := initRepo(t, dir)
	write()
	old := takeSnapshot(t, repo, "--source", "data="+src)
	write()
	takeSnapshot(t, repo, "--source", "data="+src)

	cfg := fastMonitorConfig(t, dir)
	mp := filepath.Join(dir, "mnt")
	m := startMount(t, repo, mp, cfg)
	defer m.stop(t)

	times, err := os.ReadDir(filepath.Join(mp, "snapshots"))
	if err != nil || len(times) != 2 {
		t.Fatalf("snapshots/: %v %v", times, err)
	}
	f, err := os.Open(filepath.Join(mp, "snapshots", times[0].Name(), "data", "weights.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	if r := citadel(t, "forget", "--repo", repo, "--prune", old.ID); r.code != 0 {
		t.Fatalf("forget --prune: %s", r)
	}
	_, err = f.Read(make([]byte, 1<<20))
	if !errors.Is(err, syscall.ESTALE) {
		t.Fatalf("read of an open file whose snapshot was forgotten and pruned: %v, want ESTALE", err)
	}
	time.Sleep(2500 * time.Millisecond) // two monitor cycles
	b, err := os.ReadFile(filepath.Join(mp, "status", "alerts.json"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), `"backup_corrupt"`) && strings.Contains(string(b), `"firing"`) {
		t.Fatalf("a forgotten snapshot's read raised backup_corrupt:\n%s", b)
	}
	if strings.Contains(m.stderr.String(), "corrupt") {
		t.Errorf("daemon logged corruption for a forgotten snapshot:\n%s", m.stderr)
	}
}
