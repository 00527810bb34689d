package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"citadelfs/index"
)

// snapshot --verify, and validation.verify_after_backup without it: a
// byte the disk stores wrong in a freshly written pack is exit 4 with one
// line, and the next verified snapshot (a sound disk) heals it.
func TestSnapshotVerify(t *testing.T) {
	dir := t.TempDir()
	repo := filepath.Join(dir, "repo")
	if code, _, errOut := runCLI(t, "init", "--encryption", "none", "--repo", repo); code != 0 {
		t.Fatal(errOut)
	}
	src := filepath.Join(dir, "src")
	os.MkdirAll(src, 0o755)
	data := make([]byte, 2<<20)
	for i := range data {
		data[i] = byte(i*7919 + i>>9)
	}
	os.WriteFile(filepath.Join(src, "a"), data, 0o644)
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, []byte("repo: "+repo+"\nsources:\n  d: "+src+"\nbackup_config:\n  validation:\n    verify_after_backup: true\n"), 0o600)

	// From the config key alone.
	code, out, errOut := runCLI(t, "snapshot", "--config", cfg)
	if code != 0 || !strings.Contains(out, "verified ") {
		t.Fatalf("verify_after_backup: exit %d\n%s%s", code, out, errOut)
	}
	// Without it nothing is read back.
	code, out, _ = runCLI(t, "snapshot", "--repo", repo, "--source", "d="+src)
	if code != 0 || strings.Contains(out, "verified") {
		t.Fatalf("no --verify: exit %d\n%s", code, out)
	}

	var fs *index.FaultyStore
	testWrapStore = func(s index.Store) index.Store {
		fs = index.NewFaultyStore(s, index.Fault{Op: index.OpWrite, Nth: 1, Corrupt: true})
		return fs
	}
	defer func() { testWrapStore = nil }()
	for i := range data[:4096] {
		data[i] ^= 0xff
	}
	os.WriteFile(filepath.Join(src, "b"), data, 0o644)
	code, out, errOut = runCLI(t, "snapshot", "--repo", repo, "--source", "d="+src, "--verify", "--json")
	if code != exitDamaged {
		t.Fatalf("a flipped byte: exit %d, want %d\n%s%s", code, exitDamaged, out, errOut)
	}
	if lines := strings.Split(strings.TrimSpace(errOut), "\n"); len(lines) != 1 || !strings.Contains(lines[0], "read back damaged") || !strings.Contains(lines[0], "quarantined") {
		t.Errorf("stderr:\n%s", errOut)
	}
	var sum snapshotSummary
	if err := json.Unmarshal([]byte(out), &sum); err != nil || sum.Verified == nil || len(sum.Verified.Problems) == 0 {
		t.Fatalf("--json: %v\n%s", err, out)
	}

	testWrapStore = nil
	code, out, errOut = runCLI(t, "snapshot", "--repo", repo, "--source", "d="+src, "--verify")
	if code != 0 || !strings.Contains(out, "verified ") {
		t.Fatalf("healing snapshot: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := runCLI(t, "check", "--repo", repo, "--read-data"); code != 0 {
		t.Fatalf("check after healing: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := runCLI(t, "restore", "--repo", repo, sum.ID, filepath.Join(dir, "r")); code != 0 {
		t.Fatalf("restore of the verified-bad snapshot after healing: exit %d\n%s%s", code, out, errOut)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "r", "d", "b")); string(b) != string(data) {
		t.Fatal("restored wrong bytes")
	}
}
