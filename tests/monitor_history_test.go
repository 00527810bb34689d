package tests

import (
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// tinyRepo makes a repository with one snapshot of a 3 MiB incompressible
// file (one pack over 1 MiB, for largestPack) and returns its path and id.
func tinyRepo(t *testing.T, env []string) (repo, id string) {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 3<<20)
	rand.Read(b)
	if err := os.WriteFile(filepath.Join(src, "shard.bin"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	repo = filepath.Join(dir, "repo")
	for _, args := range [][]string{{"init", "--encryption", "none", "--repo", repo}, {"snapshot", "--repo", repo, "--source", "models=" + src}} {
		if r := citadelEnv(t, env, args...); r.code != 0 {
			t.Fatalf("citadelfs %s: %s", strings.Join(args, " "), r)
		}
	}
	var rc struct {
		ID string `json:"id"`
	}
	data, err := os.ReadFile(filepath.Join(repo, "citadel.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &rc); err != nil || rc.ID == "" {
		t.Fatalf("citadel.json: no id (%v): %s", err, data)
	}
	return repo, rc.ID
}

// statusDoc is the part of `status --json` and `monitor --once --json`
// these tests read.
type statusDoc struct {
	Alerts []alertJSON `json:"alerts"`
	Recent []struct {
		Rule  string `json:"rule"`
		State string `json:"state"`
	} `json:"recent_events"`
}

func statusOf(t *testing.T, env []string, args ...string) (statusDoc, result) {
	t.Helper()
	r := citadelEnv(t, env, append(args, "--json")...)
	var doc statusDoc
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		t.Fatalf("citadelfs %s --json: %v\n%s", strings.Join(args, " "), err, r)
	}
	return doc, r
}

// mentions reports whether doc has an alert or a recent event of rule.
func (doc statusDoc) mentions(rule string) bool {
	for _, a := range doc.Alerts {
		if a.Rule == rule {
			return true
		}
	}
	for _, e := range doc.Recent {
		if e.Rule == rule {
			return true
		}
	}
	return false
}

// TestMonitorHistoryPerRepository: the monitor's history is kept per
// repository id. A backup_corrupt that fired for one repository used to be
// stored in one host-wide history, so every other repository's `status`
// listed it among its recent events.
func TestMonitorHistoryPerRepository(t *testing.T) {
	env := []string{"CITADELFS_STATE_DIR=" + t.TempDir()}
	bad, badID := tinyRepo(t, env)
	good, goodID := tinyRepo(t, env)
	if badID == goodID {
		t.Fatalf("two repositories share id %s", badID)
	}
	pack, size := largestPack(t, bad)
	flip4(t, pack, size)
	if r := citadelEnv(t, env, "check", "--repo", bad, "--read-data"); r.code != 4 {
		t.Fatalf("check --read-data of a damaged pack: want exit 4\n%s", r)
	}

	doc, r := statusOf(t, env, "monitor", "--once", "--repo", bad)
	if r.code != 5 || !doc.mentions("backup_corrupt") {
		t.Fatalf("monitor --once of the damaged repository: want exit 5 and backup_corrupt\n%s", r)
	}
	// The damaged repository's own history has it: status lists it.
	if doc, r := statusOf(t, env, "status", "--repo", bad); !doc.mentions("backup_corrupt") {
		t.Fatalf("status of the damaged repository does not show backup_corrupt\n%s", r)
	}
	for _, args := range [][]string{{"status", "--repo", good}, {"monitor", "--once", "--repo", good}, {"status", "--repo", good}} {
		doc, r := statusOf(t, env, args...)
		if doc.mentions("backup_corrupt") {
			t.Fatalf("citadelfs %s shows the other repository's backup_corrupt\n%s", strings.Join(args, " "), r)
		}
	}
}

// TestStateStaysInStateDir: with $CITADELFS_STATE_DIR set, the monitor's
// history goes to <state>/monitor/<repository id> and nowhere under
// /var/lib/citadelfs. The end-to-end tests used to write the host's
// /var/lib/citadelfs/monitor, and a test's firing alert showed up in the
// host's real `citadelfs status`.
func TestStateStaysInStateDir(t *testing.T) {
	state := t.TempDir()
	env := []string{"CITADELFS_STATE_DIR=" + state}
	repo, id := tinyRepo(t, env)
	citadelEnv(t, env, "monitor", "--once", "--repo", repo)
	if _, r := statusOf(t, env, "status", "--repo", repo); r.code != 0 && r.code != 5 {
		t.Fatalf("status: %s", r)
	}

	hist := filepath.Join(state, "monitor", id)
	ents, err := os.ReadDir(hist)
	if err != nil || len(ents) == 0 {
		t.Fatalf("no monitor history in %s (%v): it went elsewhere", hist, err)
	}
	top, _ := os.ReadDir(state)
	if len(top) != 1 || top[0].Name() != "monitor" {
		t.Errorf("state dir holds %v, want only monitor/", top)
	}
	host := filepath.Join("/var/lib/citadelfs/monitor", id)
	if _, err := os.Lstat(host); err == nil {
		t.Errorf("%s exists: the host's state was written", host)
	}

	// A relative state dir would land wherever the timer's cwd is.
	r := citadelEnv(t, []string{"CITADELFS_STATE_DIR=rel/state"}, "monitor", "--once", "--repo", repo)
	if r.code != 2 || !oneLine(r.stderr) || !strings.Contains(r.stderr, "CITADELFS_STATE_DIR") {
		t.Fatalf("relative $CITADELFS_STATE_DIR: want exit 2 and one line naming it\n%s", r)
	}
}
