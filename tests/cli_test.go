package tests

import (
	"encoding/json"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// The CLI's habits through the binary a user runs: global flags before the
// command, usage errors on stderr with exit 2, a stray argument refused,
// and version from the build information.
func TestCLIGlobalFlagsAndUsageErrors(t *testing.T) {
	dir := t.TempDir()
	repo := initRepo(t, dir)
	r := mustCitadel(t, "--repo", repo, "--json", "snapshots")
	var snaps []any
	if err := json.Unmarshal([]byte(r.stdout), &snaps); err != nil || len(snaps) != 0 {
		t.Fatalf("--repo R --json snapshots: %v\n%s", err, r)
	}
	for _, args := range [][]string{
		{"--repo", repo, "snapshots", "extra"},
		{"--repo", repo, "prune", "extra"},
		{"--repo", repo, "mount", "--json", filepath.Join(dir, "mnt")},
		{"--repo", repo},
		{"--repo", repo, "snapshots", "--nope"},
		{"--log-level", "loud", "--repo", repo, "snapshots"},
		{"--repo", repo, "snapshots", "--log-format", "xml"},
	} {
		r := citadel(t, args...)
		if r.code != 2 || r.stdout != "" || r.stderr == "" {
			t.Errorf("citadelfs %s: want exit 2, nothing on stdout and the error on stderr; %s", strings.Join(args, " "), r)
		}
	}
}

func TestCLIVersion(t *testing.T) {
	r := mustCitadel(t, "version", "--json")
	var v struct{ Version, Module, GoVersion string }
	var raw map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &raw); err != nil {
		t.Fatalf("version --json: %v\n%s", err, r)
	}
	v.Module, _ = raw["module"].(string)
	v.GoVersion, _ = raw["go_version"].(string)
	v.Version, _ = raw["version"].(string)
	_, hasCommit := raw["commit"]
	_, hasModified := raw["modified"]
	if v.Module != "citadelfs" || v.GoVersion != runtime.Version() || v.Version == "" || !hasCommit || !hasModified || raw["module_version"] == nil {
		t.Errorf("version --json: %s", r.stdout)
	}
	text := mustCitadel(t, "version").stdout
	if !strings.HasPrefix(text, "citadelfs "+v.Version+"\n") || !strings.Contains(text, runtime.Version()) || !strings.Contains(text, "commit:") {
		t.Errorf("version: %q", text)
	}
	if alt := mustCitadel(t, "--version").stdout; alt != text {
		t.Errorf("--version %q differs from version %q", alt, text)
	}
}

// With the mount daemon owning the repository, commands given global flags
// before their name, and ls/find, run in the daemon like any other; a
// stray argument is refused there too.
func TestCLIThroughMountDaemon(t *testing.T) {
	_, repo, _, _, m := mountFixture(t)
	r := mustCitadel(t, "--repo", repo, "--json", "snapshots", "--source", "configs")
	var snaps []struct{ ID string }
	if err := json.Unmarshal([]byte(r.stdout), &snaps); err != nil || len(snaps) != 1 {
		t.Fatalf("--repo R --json snapshots through the daemon: %v\n%s", err, r)
	}
	if r := mustCitadel(t, "--repo", repo, "ls", "--recursive=false", "latest:configs"); !strings.HasPrefix(r.stdout, "/configs\n") {
		t.Errorf("ls through the daemon: %s", r)
	}
	if r := mustCitadel(t, "--repo", repo, "find", "--json", "*.yaml"); !strings.Contains(r.stdout, `"matches"`) {
		t.Errorf("find through the daemon: %s", r)
	}
	if r := citadel(t, "--repo", repo, "prune", "extra"); r.code != 2 || r.stdout != "" {
		t.Errorf("prune extra: %s", r)
	}
	if !strings.Contains(m.stderr.String(), "args=\"[ls --repo="+repo) && !strings.Contains(m.stderr.String(), "args=[ls --repo="+repo) {
		t.Errorf("ls did not run in the daemon:\n%s", m.stderr)
	}
}
