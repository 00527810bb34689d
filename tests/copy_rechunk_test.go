package tests

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"citadelfs/index"
)

// initOtherChunker makes a local repository whose chunker cuts elsewhere
// than the default one (other sizes, another gear table), as a repository
// with other keys does: a copy into it must re-chunk.
func initOtherChunker(t *testing.T, dir string) string {
	t.Helper()
	if _, err := index.InitWithReserve(dir, index.ChunkerParams{Min: 128 << 10, Avg: 256 << 10, Max: 1 << 20, Seed: 0x5eed}, time.Now(), 0); err != nil {
		t.Fatal(err)
	}
	return dir
}

// rechunkSummary is the part of `copy --json` a re-chunking copy adds.
type rechunkSummary struct {
	copySummary
	Targets    []string `json:"targets"`
	Rechunked  bool     `json:"rechunked"`
	PlainBytes int64    `json:"plain_bytes"`
}

func parseRechunk(t *testing.T, r result) rechunkSummary {
	t.Helper()
	var s rechunkSummary
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		t.Fatalf("copy --json: %v\n%s", err, r)
	}
	return s
}

// copy into a repository that chunks differently re-chunks: the snapshot
// gets a new id there, restores identical, checks clean; a second copy
// and a copy back transfer nothing.
func TestCopyRechunksOtherChunker(t *testing.T) {
	dir := t.TempDir()
	src := smallCorpus(t, dir)
	repo := initRepo(t, dir)
	other := initOtherChunker(t, filepath.Join(dir, "other"))
	snap := takeSnapshot(t, repo, sourceFlags(src)...)

	first := parseRechunk(t, mustCitadel(t, "copy", "--repo", repo, "--to", other, "--json"))
	if !first.Rechunked || len(first.Copied) != 1 || first.Copied[0] != snap.ID || len(first.Targets) != 1 || first.Targets[0] == snap.ID || first.Blobs == 0 || first.PlainBytes < 16<<20 {
		t.Fatalf("copy into another chunking: %+v", first)
	}
	if ids := snapshotIDs(t, other); len(ids) != 1 || ids[0] != first.Targets[0] {
		t.Fatalf("snapshots of the target: %v, want %s", ids, first.Targets[0])
	}
	if r := citadel(t, "check", "--repo", other, "--read-data"); r.code != 0 {
		t.Fatalf("check --read-data of the target: %s", r)
	}
	out := restore(t, other, first.Targets[0])
	for _, l := range labels {
		assertSameTree(t, filepath.Join(src, l), filepath.Join(out, l))
	}
	if again := parseRechunk(t, mustCitadel(t, "copy", "--repo", repo, "--to", other, "--json")); len(again.Copied) != 0 || len(again.Skipped) != 1 || again.Blobs != 0 || again.PlainBytes != 0 {
		t.Fatalf("second copy: %+v", again)
	}
	if back := parseRechunk(t, mustCitadel(t, "copy", "--repo", other, "--to", repo, "--json")); len(back.Copied) != 0 || len(back.Skipped) != 1 || back.Blobs != 0 {
		t.Fatalf("copy back into the repository it came from: %+v", back)
	}
}

// A re-chunking copy into an encrypted repository killed with SIGKILL
// after some of its packs landed leaves no snapshot; the rerun dedups
// against those packs, completes, and the target checks clean and
// restores identical.
func TestCopyRechunkKill9Resume(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	corpus(t, "-out", src, "-models-mb", "64", "-logs-mb", "1", "-configs", "20")
	repo := initRepo(t, dir)
	pw := filepath.Join(dir, "pw")
	target := initEncrypted(t, filepath.Join(dir, "target"), pw, "kill nine")
	snap := takeSnapshot(t, repo, sourceFlags(src)...)

	cmd := exec.Command(citadelBin, "copy", "--repo", repo, "--to", target, "--to-password-file", pw, "--json")
	cmd.Env = testEnv()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	hit := whenPacks(1, 0)(t, target, 0, exited)
	if hit {
		cmd.Process.Signal(syscall.SIGKILL)
	}
	<-exited
	if ws := cmd.ProcessState.Sys().(syscall.WaitStatus); !hit || !ws.Signaled() {
		t.Fatalf("copy finished (%s) before the first pack landed; the corpus is too small to exercise the kill: %s", cmd.ProcessState, stderr.String())
	}
	if r := mustCitadel(t, "snapshots", "--repo", target, "--password-file", pw, "--json"); strings.TrimSpace(r.stdout) != "[]" {
		t.Fatalf("a killed copy left snapshots in the target: %s", r.stdout)
	}
	resumed := parseRechunk(t, mustCitadel(t, "copy", "--repo", repo, "--to", target, "--to-password-file", pw, "--json"))
	if !resumed.Rechunked || len(resumed.Copied) != 1 || resumed.Copied[0] != snap.ID || resumed.Present == 0 {
		t.Fatalf("the rerun did not reuse what the killed copy wrote: %+v", resumed)
	}
	if r := citadel(t, "check", "--repo", target, "--password-file", pw, "--read-data"); r.code != 0 {
		t.Fatalf("check --read-data of the target: %s", r)
	}
	out := restoreWith(t, target, pw, resumed.Targets[0])
	for _, l := range labels {
		assertSameTree(t, filepath.Join(src, l), filepath.Join(out, l))
	}
}
