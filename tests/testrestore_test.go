package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTestRestore: test-restore passes on a sound repository, fails with
// exit 4 on a damaged pack, cleans up its temp dir, and its record reaches
// monitor --once --json (test_restore alert) and status.
func TestTestRestore(t *testing.T) {
	env := []string{"CITADELFS_STATE_DIR=" + t.TempDir()}
	repo, _ := tinyRepo(t, env)
	dir := t.TempDir()
	tmp := filepath.Join(dir, "tmp")
	os.MkdirAll(tmp, 0o755)
	cfg := filepath.Join(dir, "config.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`repo: %s
backup_config:
  storage:
    temp_dir: %s
  validation:
    test_restore_monthly: true
monitor:
  models: {}
  paths: []
`, repo, tmp)), 0o644)

	r := citadelEnv(t, env, "test-restore", "--config", cfg, "--json")
	if r.code != 0 {
		t.Fatalf("test-restore of a sound repository: %s", r)
	}
	var out struct {
		OK             bool     `json:"ok"`
		Files          int      `json:"files"`
		Snapshots      []string `json:"snapshots"`
		SourceCompared int      `json:"source_compared"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || !out.OK || out.Files != 1 || out.SourceCompared != 1 || len(out.Snapshots) != 1 {
		t.Fatalf("test-restore --json: %v\n%s", err, r)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Fatalf("storage.temp_dir not cleaned up: %v", left)
	}
	type trDoc struct {
		Alerts []alertJSON `json:"alerts"`
		Backup struct {
			TestRestore *struct {
				Expected bool `json:"expected"`
				Last     *struct {
					Result string `json:"result"`
					Files  int    `json:"files"`
				} `json:"last"`
			} `json:"test_restore"`
		} `json:"backup"`
	}
	monitorDoc := func() (trDoc, result) {
		t.Helper()
		r := citadelEnv(t, env, "monitor", "--once", "--json", "--config", cfg)
		var doc trDoc
		if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
			t.Fatalf("monitor --once --json: %v\n%s", err, r)
		}
		return doc, r
	}
	doc, mr := monitorDoc()
	if tr := doc.Backup.TestRestore; tr == nil || !tr.Expected || tr.Last == nil || tr.Last.Result != "ok" || tr.Last.Files != 1 {
		t.Fatalf("monitor --once --json after a good test restore:\n%s", mr)
	}
	for _, a := range doc.Alerts {
		if a.Rule == "test_restore" {
			t.Fatalf("test_restore fires after a good run: %+v", a)
		}
	}
	if r := citadelEnv(t, env, "status", "--config", cfg); !strings.Contains(r.stdout, "test restore: ok") {
		t.Fatalf("status does not show the test restore:\n%s", r)
	}

	pack, size := largestPack(t, repo)
	flip4(t, pack, size)
	r = citadelEnv(t, env, "test-restore", "--config", cfg, "--sample", "100%")
	if r.code != 4 || !strings.Contains(r.stdout, "error: models/shard.bin") || !strings.Contains(r.stdout, "1 damaged") {
		t.Fatalf("test-restore of a damaged pack: want exit 4 naming the file\n%s", r)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Fatalf("temp dir not cleaned up after damage: %v", left)
	}
	doc, mr = monitorDoc()
	var fired *alertJSON
	for i, a := range doc.Alerts {
		if a.Rule == "test_restore" {
			fired = &doc.Alerts[i]
		}
	}
	if mr.code != 5 || fired == nil || !strings.Contains(fired.Message, "models/shard.bin") || doc.Backup.TestRestore.Last.Result != "errors" {
		t.Fatalf("monitor --once after a failed test restore: want exit 5 and test_restore naming the file\n%s", mr)
	}
	if r := citadelEnv(t, env, "status", "--config", cfg); !strings.Contains(r.stdout, "test restore: errors") {
		t.Fatalf("status after a failed test restore:\n%s", r)
	}

	for _, bad := range []string{"0", "-3", "101%", "many"} {
		assertOneLineError(t, citadelEnv(t, env, "test-restore", "--config", cfg, "--sample", bad), 2, "--sample")
	}
}
