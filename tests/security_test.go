package tests

import (
	"os"
	"path/filepath"
	"testing"
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
