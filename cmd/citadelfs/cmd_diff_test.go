package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func run(t *testing.T, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	if code := runMain(t.Context(), args, &out, &errb); code != 0 {
		t.Fatalf("%v: exit %d: %s", args, code, errb.String())
	}
	return out.String()
}

// diffRepo makes a repository with an empty config and returns the
// flags every command needs for it.
func diffRepo(t *testing.T, dir string) []string {
	t.Helper()
	repo := filepath.Join(dir, "repo")
	cfg := filepath.Join(dir, "none.yaml")
	os.WriteFile(cfg, nil, 0o600)
	common := []string{"--repo", repo, "--config", cfg}
	run(t, append([]string{"init", "--encryption", "none"}, common...)...)
	return common
}

// snapshotIDs lists the repository's snapshot ids, oldest first.
func snapshotIDs(t *testing.T, common []string) []string {
	t.Helper()
	var ids []string
	for _, l := range strings.Split(run(t, append([]string{"snapshots"}, common...)...), "\n")[1:] {
		if f := strings.Fields(l); len(f) > 0 && len(f[0]) == 8 {
			ids = append(ids, f[0])
		}
	}
	return ids
}

func TestDiffListsChanges(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	os.MkdirAll(filepath.Join(src, "keep"), 0o755)
	os.WriteFile(filepath.Join(src, "keep", "same"), []byte("same"), 0o644)
	os.WriteFile(filepath.Join(src, "edit"), []byte("v1"), 0o644)
	os.WriteFile(filepath.Join(src, "gone"), []byte("x"), 0o644)
	common := diffRepo(t, dir)
	run(t, append([]string{"snapshot", "--source", "d=" + src, "--time", "2026-01-01T00:00:00Z"}, common...)...)
	os.WriteFile(filepath.Join(src, "edit"), []byte("version 2"), 0o644)
	os.Remove(filepath.Join(src, "gone"))
	os.WriteFile(filepath.Join(src, "new"), []byte("n"), 0o644)
	run(t, append([]string{"snapshot", "--source", "d=" + src, "--time", "2026-01-02T00:00:00Z"}, common...)...)
	ids := snapshotIDs(t, common)
	if len(ids) != 2 {
		t.Fatalf("snapshots: %v", ids)
	}
	out := run(t, append([]string{"diff", ids[0], ids[1]}, common...)...)
	for _, want := range []string{"M d/edit\n", "- d/gone\n", "+ d/new\n", "1 added, 1 removed, 1 modified"} {
		if !strings.Contains(out, want) {
			t.Errorf("diff output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "same") {
		t.Errorf("unchanged file listed:\n%s", out)
	}
}

// A source in one snapshot only is listed and counted as one entry.
func TestDiffCountsWholeSources(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	os.MkdirAll(a, 0o755)
	os.MkdirAll(b, 0o755)
	common := diffRepo(t, dir)
	run(t, append([]string{"snapshot", "--source", "models=" + a, "--time", "2026-01-01T00:00:00Z"}, common...)...)
	run(t, append([]string{"snapshot", "--source", "configs=" + b, "--time", "2026-01-02T00:00:00Z"}, common...)...)
	ids := snapshotIDs(t, common)
	out := run(t, append([]string{"diff", ids[0], ids[1]}, common...)...)
	for _, want := range []string{"- models/\n", "+ configs/\n", "1 added, 1 removed, 0 modified"} {
		if !strings.Contains(out, want) {
			t.Errorf("diff output lacks %q:\n%s", want, out)
		}
	}
	// latest is each source's newest snapshot, as in the mount's latest/:
	// models is still there.
	out = run(t, append([]string{"diff", ids[0], "latest"}, common...)...)
	if !strings.Contains(out, "+ configs/\n") || !strings.Contains(out, "1 added, 0 removed, 0 modified") {
		t.Errorf("diff against latest:\n%s", out)
	}
}
