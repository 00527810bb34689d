package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"citadelfs/internal/testutil"
)

// TestPlantedLockAndWritableRepository: a user who can write the
// repository planted <repo>/lock as a symlink to a file of root's, and
// root's next check truncated it. Now the symlink is refused with one
// line, and so is a repository other users can write, unless
// --insecure-repo-permissions says to go on.
func TestPlantedLockAndWritableRepository(t *testing.T) {
	dir := t.TempDir()
	repo := initRepo(t, dir)
	victim := filepath.Join(dir, "victim")
	os.WriteFile(victim, []byte("root's\n"), 0o644)
	os.Remove(filepath.Join(repo, "lock"))
	if err := os.Symlink(victim, filepath.Join(repo, "lock")); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range [][]string{{"check"}, {"snapshots"}, {"snapshot", "--source", "s=" + dir}} {
		assertOneLineError(t, citadel(t, append(cmd, "--repo", repo)...), 1, "symlink")
	}
	if b, _ := os.ReadFile(victim); string(b) != "root's\n" {
		t.Fatalf("the file a planted lock pointed at now holds %q", b)
	}
	os.Remove(filepath.Join(repo, "lock"))

	os.Chmod(repo, 0o777)
	assertOneLineError(t, citadel(t, "check", "--repo", repo), 1, "writable", "--insecure-repo-permissions")
	mustCitadel(t, "check", "--repo", repo, "--insecure-repo-permissions")
}

// TestFakeDaemonIsRefused: a user who can write the repository bound
// <repo>/daemon.sock, and root's check, snapshot and restore sent it their
// arguments and working directory and printed what it answered, with its
// exit code. The client now checks the server's SO_PEERCRED first.
func TestFakeDaemonIsRefused(t *testing.T) {
	testutil.NeedRoot(t, "to run a server as another user")
	setpriv := testutil.Setpriv(t)
	dir := testutil.NobodyDir(t)
	fake := filepath.Join(dir, "fakedaemon")
	build := exec.Command("go", "build", "-o", fake, "./tests/testdata/fakedaemon")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the fake daemon: %v\n%s", err, out)
	}
	src := filepath.Join(dir, "src")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "a.txt"), []byte("a\n"), 0o644)
	repo := initRepo(t, dir)
	mustCitadel(t, "snapshot", "--repo", repo, "--source", "s="+src)
	// The operator's mistake: the repository is open to everyone.
	os.Chmod(repo, 0o777)
	logDir := filepath.Join(dir, "log")
	os.Mkdir(logDir, 0o755)
	os.Chmod(logDir, 0o777)
	log := filepath.Join(logDir, "received")
	srv := exec.Command(setpriv, testutil.AsNobody(fake, filepath.Join(repo, "daemon.sock"), log)...)
	srv.Stderr = os.Stderr
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(log + ".ready"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the fake daemon did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, args := range [][]string{
		{"check"},
		{"snapshot", "--source", "s=" + src},
		{"restore", "latest", filepath.Join(dir, "out")},
		// The flag that opens a writable repository does not make its
		// socket trusted.
		{"check", "--insecure-repo-permissions"},
	} {
		r := citadel(t, append(args, "--repo", repo)...)
		if strings.Contains(r.stdout, "FAKE") {
			t.Errorf("%v printed the fake daemon's answer: %s", args, r)
		}
		assertOneLineError(t, r, 1, "uid 65534", "refusing")
	}
	if b, _ := os.ReadFile(log); len(b) > 0 {
		t.Fatalf("the fake daemon received %d bytes: %q", len(b), b)
	}
}

// TestRestoreRefusesPlantedSymlink: a user who can write the restore
// target put a symlink to a directory of root's where the snapshot has a
// directory. Restore refuses it in one line, exit 1, and root's files
// stay as they were; the rest of the guarantee (a directory swapped
// during the restore) is TestRestoreRaceWithRenamer in snapshot/.
func TestRestoreRefusesPlantedSymlink(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(filepath.Join(src, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(src, "d", "f"), []byte("from the snapshot\n"), 0o644)
	repo := initRepo(t, dir)
	s := takeSnapshot(t, repo, "--source", "s="+src)
	outside := filepath.Join(dir, "outside")
	os.Mkdir(outside, 0o700)
	os.WriteFile(filepath.Join(outside, "f"), []byte("root's\n"), 0o600)
	target := filepath.Join(dir, "target")
	os.MkdirAll(filepath.Join(target, "s"), 0o755)
	if err := os.Symlink(outside, filepath.Join(target, "s", "d")); err != nil {
		t.Fatal(err)
	}
	assertOneLineError(t, citadel(t, "restore", "--repo", repo, s.ID, target), 1, "s/d", "not a directory", "refusing")
	if b, _ := os.ReadFile(filepath.Join(outside, "f")); string(b) != "root's\n" {
		t.Fatalf("restore wrote through the planted symlink: root's file now holds %q", b)
	}
	if fi, _ := os.Stat(outside); fi.Mode().Perm() != 0o700 {
		t.Fatalf("restore changed the mode of root's directory to %v", fi.Mode())
	}
}
