package tests

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The mount shows every host's snapshots under hosts/<host>/ (its day
// folders and latest/), while the top-level day folders and latest/ are
// the mounting host's own (--host, default the hostname). A local
// repository records hosts too (snapshot --host), so this needs no store.
func TestMountHostsTree(t *testing.T) {
	needMount(t)
	dir := t.TempDir()
	srcA, srcB := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	corpus(t, "-out", srcA, "-models-mb", "1", "-logs-mb", "1", "-configs", "20", "-seed", "1")
	corpus(t, "-out", srcB, "-models-mb", "1", "-logs-mb", "1", "-configs", "20", "-seed", "2")
	repo := initRepo(t, dir)
	takeSnapshot(t, repo, append([]string{"--host", "a"}, sourceFlags(srcA, "configs", "models")...)...)
	takeSnapshot(t, repo, append([]string{"--host", "b"}, sourceFlags(srcB, "configs")...)...)

	mp := filepath.Join(dir, "mnt")
	startMount(t, repo, mp, monitorConfig(t, dir), "--host", "a")

	if got := readDirNames(t, filepath.Join(mp, "hosts")); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("hosts/ = %q, want [a b]", got)
	}
	// b's newest is under hosts/b/latest; the top level stays a's, though
	// b's snapshot is newer.
	diffTrees(t, filepath.Join(srcB, "configs"), filepath.Join(mp, "hosts", "b", "latest", "configs"))
	diffTrees(t, filepath.Join(srcA, "configs"), filepath.Join(mp, "latest", "configs"))
	diffTrees(t, filepath.Join(srcA, "models"), filepath.Join(mp, "hosts", "a", "latest", "models"))
	if _, err := os.Stat(filepath.Join(mp, "hosts", "b", "latest", "models")); !os.IsNotExist(err) {
		t.Errorf("hosts/b/latest/models: %v; b never snapshotted models", err)
	}
	days := readDirNames(t, filepath.Join(mp, "hosts", "b"))
	if len(days) != 2 || days[1] != "latest" {
		t.Fatalf("hosts/b = %q, want [<day> latest]", days)
	}
	diffTrees(t, filepath.Join(srcB, "configs"), filepath.Join(mp, "hosts", "b", days[0], "configs"))
	// snapshots/ keeps every host's.
	if got := readDirNames(t, filepath.Join(mp, "snapshots")); len(got) != 2 {
		t.Errorf("snapshots/ = %q, want both hosts' two", got)
	}
	// cp -a out of another host's tree works.
	out := filepath.Join(t.TempDir(), "out")
	if r := runCmd(t, os.Environ(), "cp", "-a", filepath.Join(mp, "hosts", "b", "latest", "configs"), out); r.code != 0 {
		t.Fatalf("cp -a: %s", r)
	}
	assertSameTree(t, filepath.Join(srcB, "configs"), out)

	// A new snapshot of b, run through the daemon, shows in hosts/b/latest
	// at once and leaves a's latest/ alone.
	added := filepath.Join(srcB, "configs", "added-by-b.yaml")
	if err := os.WriteFile(added, []byte("b: 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	takeSnapshot(t, repo, append([]string{"--host", "b"}, sourceFlags(srcB, "configs")...)...)
	if data, err := os.ReadFile(filepath.Join(mp, "hosts", "b", "latest", "configs", "added-by-b.yaml")); string(data) != "b: 2\n" {
		t.Errorf("b's new snapshot is not in hosts/b/latest: %q %v", data, err)
	}
	if _, err := os.Stat(filepath.Join(mp, "latest", "configs", "added-by-b.yaml")); !os.IsNotExist(err) {
		t.Errorf("latest/ shows host b's snapshot: %v", err)
	}
}

// A --host that is not a host name is one line and exit 2, before
// anything is mounted.
func TestMountBadHost(t *testing.T) {
	dir := t.TempDir()
	repo := initRepo(t, dir)
	r := citadel(t, "mount", "--repo", repo, "--host", "../x", filepath.Join(dir, "mnt"))
	if r.code != 2 || !oneLine(r.stderr) || !strings.Contains(r.stderr, "--host") {
		t.Errorf("mount --host ../x: %s", r)
	}
}

func readDirNames(t *testing.T, p string) []string {
	t.Helper()
	ents, err := os.ReadDir(p)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}
