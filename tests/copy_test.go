package tests

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"citadelfs/index"
)

// copySummary is the part of `copy --json` the tests read.
type copySummary struct {
	To      string   `json:"to"`
	Copied  []string `json:"copied"`
	Skipped []string `json:"skipped"`
	Blobs   int64    `json:"blobs"`
	Bytes   int64    `json:"bytes"`
	Present int64    `json:"blobs_present"`
}

func parseCopy(t *testing.T, r result) copySummary {
	t.Helper()
	var s copySummary
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		t.Fatalf("copy --json: %v\n%s", err, r)
	}
	return s
}

func snapshotIDs(t *testing.T, repo string) []string {
	t.Helper()
	var ids []string
	for _, s := range listSnapshots(t, repo) {
		ids = append(ids, s.ID)
	}
	return ids
}

// copy into a second local repository: the snapshots keep their ids and
// restore identical from the target; a second copy transfers nothing;
// one more snapshot then transfers only its new chunks.
func TestCopyLocalToLocal(t *testing.T) {
	dir := t.TempDir()
	src := smallCorpus(t, dir)
	repo := initRepo(t, dir)
	target := filepath.Join(dir, "target")
	mustCitadel(t, "init", "--encryption", "none", "--repo", target)
	takeSnapshot(t, repo, sourceFlags(src, "models")...)
	takeSnapshot(t, repo, sourceFlags(src, "configs", "logs")...)

	first := parseCopy(t, mustCitadel(t, "copy", "--repo", repo, "--to", target, "--json"))
	if len(first.Copied) != 2 || len(first.Skipped) != 0 || first.Blobs == 0 || first.Bytes == 0 {
		t.Fatalf("first copy: %+v", first)
	}
	if a, b := strings.Join(snapshotIDs(t, repo), ","), strings.Join(snapshotIDs(t, target), ","); a != b {
		t.Fatalf("snapshot ids differ: source %s, target %s", a, b)
	}
	for _, id := range snapshotIDs(t, target) {
		out := restore(t, target, id)
		for _, l := range listSnapshotsSources(t, target, id) {
			assertSameTree(t, filepath.Join(src, l), filepath.Join(out, l))
		}
	}
	if r := citadel(t, "check", "--repo", target, "--read-data"); r.code != 0 {
		t.Fatalf("check --read-data of the target: %s", r)
	}

	again := parseCopy(t, mustCitadel(t, "copy", "--repo", repo, "--to", target, "--json"))
	if len(again.Copied) != 0 || len(again.Skipped) != 2 || again.Blobs != 0 || again.Bytes != 0 {
		t.Fatalf("second copy transferred something: %+v", again)
	}

	// A new snapshot of the same models: no chunk is new (only trees,
	// whose entries carry atimes, may be).
	s3 := takeSnapshot(t, repo, sourceFlags(src, "models")...)
	third := parseCopy(t, mustCitadel(t, "copy", "--repo", repo, "--to", target, "--json", s3.ID[:12]))
	if len(third.Copied) != 1 || third.Copied[0] != s3.ID || third.Bytes*100 > first.Bytes || third.Present == 0 {
		t.Fatalf("copy of an unchanged snapshot transferred chunks: %+v", third)
	}

	// Bad input: no target, the source itself, a target that is no repository.
	for _, args := range [][]string{
		{"copy", "--repo", repo},
		{"copy", "--repo", repo, "--to", repo},
	} {
		if r := citadel(t, args...); r.code != 2 || !oneLine(r.stderr) {
			t.Errorf("citadelfs %s: want exit 2 and one line: %s", strings.Join(args, " "), r)
		}
	}
	if r := citadel(t, "copy", "--repo", repo, "--to", filepath.Join(dir, "nosuch")); r.code != 10 || !oneLine(r.stderr) {
		t.Errorf("copy to a missing repository: want exit 10 and one line: %s", r)
	}
}

// listSnapshotsSources is the source labels of snapshot id in repo.
func listSnapshotsSources(t *testing.T, repo, id string) []string {
	t.Helper()
	for _, s := range listSnapshots(t, repo) {
		if s.ID == id {
			return s.Sources
		}
	}
	t.Fatalf("snapshot %s not in %s", id, repo)
	return nil
}

// A copy killed with SIGKILL after some of its packs landed leaves no
// snapshot in the target; the rerun adopts those packs, transfers only
// the rest, and the target checks clean and restores identical.
func TestCopyKill9Resume(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	corpus(t, "-out", src, "-models-mb", "96", "-logs-mb", "1", "-configs", "20")
	repo := initRepo(t, dir)
	target := filepath.Join(dir, "target")
	mustCitadel(t, "init", "--encryption", "none", "--repo", target)
	snap := takeSnapshot(t, repo, sourceFlags(src)...)
	basePacks, _ := packFiles(t, target)

	cmd := exec.Command(citadelBin, "copy", "--repo", repo, "--to", target, "--json")
	cmd.Env = testEnv()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	hit := whenPacks(1, 0)(t, target, basePacks, exited)
	if hit {
		cmd.Process.Signal(syscall.SIGKILL)
	}
	<-exited
	if ws := cmd.ProcessState.Sys().(syscall.WaitStatus); !hit || !ws.Signaled() {
		t.Fatalf("copy finished (%s) before the first pack landed; the corpus is too small to exercise the kill: %s", cmd.ProcessState, stderr.String())
	}
	committed, partial := packFiles(t, target)
	t.Logf("killed with %d packs in the target, %d partial", committed-basePacks, partial)
	if ids := snapshotIDs(t, target); len(ids) != 0 {
		t.Fatalf("a killed copy left snapshots in the target: %v", ids)
	}

	resumed := parseCopy(t, mustCitadel(t, "copy", "--repo", repo, "--to", target, "--json"))
	if len(resumed.Copied) != 1 || resumed.Copied[0] != snap.ID || resumed.Present == 0 {
		t.Fatalf("the rerun did not reuse what the killed copy wrote: %+v", resumed)
	}
	if r := citadel(t, "check", "--repo", target, "--read-data"); r.code != 0 {
		t.Fatalf("check --read-data of the target: %s", r)
	}
	out := restore(t, target, snap.ID)
	for _, l := range labels {
		assertSameTree(t, filepath.Join(src, l), filepath.Join(out, l))
	}
}

// local → RGW → a second local repository: identical, and the bucket's
// copy back transfers nothing to a target that has it all.
func TestCopyLocalToS3AndBack(t *testing.T) {
	t.Parallel()
	r := newS3Repo(t)
	dir := t.TempDir()
	src := smallCorpus(t, dir)
	repo := initRepo(t, dir)
	snap := takeSnapshot(t, repo, sourceFlags(src)...)
	cache := filepath.Join(dir, "cache")
	r.must(t, cache, "init", "--encryption", "none", "--insecure-no-encryption")

	up := parseCopy(t, mustCitadelEnv(t, r.env, "copy", "--repo", repo, "--to", r.url, "--s3-endpoint", r.endpoint,
		"--to-cache-dir", filepath.Join(dir, "tocache"), "--json"))
	if len(up.Copied) != 1 || up.Blobs == 0 {
		t.Fatalf("copy to RGW: %+v", up)
	}
	// The bucket's own view (another cache) has the snapshot with its id.
	var snaps []snapInfo
	if err := json.Unmarshal([]byte(r.must(t, cache, "snapshots", "--json").stdout), &snaps); err != nil || len(snaps) != 1 || snaps[0].ID != snap.ID {
		t.Fatalf("snapshots in the bucket: %v %+v", err, snaps)
	}
	if res := r.run(t, cache, "check", "--read-data"); res.code != 0 {
		t.Fatalf("check --read-data of the bucket: %s", res)
	}

	second := filepath.Join(dir, "second")
	mustCitadel(t, "init", "--encryption", "none", "--repo", second)
	down := parseCopy(t, r.must(t, cache, "copy", "--to", second, "--json"))
	if len(down.Copied) != 1 || down.Copied[0] != snap.ID || down.Blobs != up.Blobs {
		t.Fatalf("copy back from RGW: %+v (up: %+v)", down, up)
	}
	out := restore(t, second, snap.ID)
	for _, l := range labels {
		assertSameTree(t, filepath.Join(src, l), filepath.Join(out, l))
	}
	if again := parseCopy(t, mustCitadelEnv(t, r.env, "copy", "--repo", repo, "--to", r.url, "--s3-endpoint", r.endpoint,
		"--to-cache-dir", filepath.Join(dir, "tocache"), "--json")); again.Blobs != 0 || len(again.Skipped) != 1 {
		t.Fatalf("second copy to RGW transferred something: %+v", again)
	}
}

func mustCitadelEnv(t *testing.T, env []string, args ...string) result {
	t.Helper()
	r := citadelEnv(t, env, args...)
	if r.code != 0 {
		t.Fatalf("citadelfs %s: %s", strings.Join(args, " "), r)
	}
	return r
}

// A source chunk whose bytes were flipped is caught by the verifier
// before it is written: exit 4, and the target gets no snapshot. (A
// target chunked with other parameters is copied by re-chunking:
// copy_rechunk_test.go.)
func TestCopyRefusesDamage(t *testing.T) {
	dir := t.TempDir()
	src := smallCorpus(t, dir)
	repo := initRepo(t, dir)
	takeSnapshot(t, repo, sourceFlags(src)...)

	// Damage the source's largest pack (the models' chunks).
	packs, _ := filepath.Glob(filepath.Join(repo, "packs", "*", "*.pack"))
	var largest string
	var size int64
	for _, p := range packs {
		if fi, err := os.Stat(p); err == nil && fi.Size() > size {
			largest, size = p, fi.Size()
		}
	}
	flipByte(t, largest, size/2)
	target := filepath.Join(dir, "target")
	mustCitadel(t, "init", "--encryption", "none", "--repo", target)
	r := citadel(t, "copy", "--repo", repo, "--to", target)
	if r.code != 4 || !oneLine(r.stderr) {
		t.Fatalf("copy of a damaged source: want exit 4 and one line: %s", r)
	}
	if ids := snapshotIDs(t, target); len(ids) != 0 {
		t.Fatalf("a copy that met damage committed snapshots: %v", ids)
	}
	if r := citadel(t, "check", "--repo", target, "--read-data"); r.code != 0 {
		t.Fatalf("the target after a refused damaged copy: %s", r)
	}
}

// While the mount daemon owns the source (the copy timer's usual case),
// copy is handed to it and succeeds; the target restores identical.
func TestCopyFromMountedRepository(t *testing.T) {
	dir := t.TempDir()
	src := smallCorpus(t, dir)
	repo := initRepo(t, dir)
	snap := takeSnapshot(t, repo, sourceFlags(src, "configs")...)
	target := filepath.Join(dir, "target")
	mustCitadel(t, "init", "--encryption", "none", "--repo", target)
	mp := filepath.Join(dir, "mnt")
	os.MkdirAll(mp, 0o755)
	m := startMount(t, repo, mp, monitorConfig(t, dir))
	defer m.stop(t)
	got := parseCopy(t, mustCitadel(t, "copy", "--repo", repo, "--to", target, "--json"))
	if len(got.Copied) != 1 || got.Copied[0] != snap.ID {
		t.Fatalf("copy beside the mount: %+v", got)
	}
	out := restore(t, target, snap.ID)
	assertSameTree(t, filepath.Join(src, "configs"), filepath.Join(out, "configs"))

	// An encrypted target whose passphrase is in the client's
	// $CITADELFS_TO_PASSWORD_FILE: the daemon runs the copy, and gets the
	// file from the client (commands handed over the socket carry no
	// environment).
	pw := filepath.Join(dir, "pw")
	enc := initEncrypted(t, filepath.Join(dir, "enc"), pw, "beside the mount")
	got = parseCopy(t, mustCitadelEnv(t, []string{"CITADELFS_TO_PASSWORD_FILE=" + pw}, "copy", "--repo", repo, "--to", enc, "--json"))
	if len(got.Copied) != 1 || got.Copied[0] != snap.ID {
		t.Fatalf("copy beside the mount into an encrypted target: %+v", got)
	}
}

// A copy to RGW killed with SIGKILL after its first pack is in the
// bucket: no snapshot there; the rerun indexes that pack from its
// trailer (its index object was never put), skips its chunks, and the
// bucket checks clean and restores identical.
func TestCopyToS3Kill9Resume(t *testing.T) {
	t.Parallel()
	r := newS3Repo(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	corpus(t, "-out", src, "-models-mb", "96", "-logs-mb", "1", "-configs", "20")
	repo := initRepo(t, dir)
	snap := takeSnapshot(t, repo, sourceFlags(src)...)
	cache := filepath.Join(dir, "cache")
	r.must(t, cache, "init", "--encryption", "none", "--insecure-no-encryption")
	args := []string{"copy", "--repo", repo, "--to", r.url, "--s3-endpoint", r.endpoint, "--to-cache-dir", filepath.Join(dir, "tocache"), "--json"}

	cmd := exec.Command(citadelBin, args...)
	cmd.Env = append(testEnv(), r.env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	hit := poll(exited, func() bool {
		packs, err := index.ListStorePacks(r.store)
		return err == nil && len(packs) > 0
	})
	if hit {
		cmd.Process.Signal(syscall.SIGKILL)
	}
	<-exited
	if ws := cmd.ProcessState.Sys().(syscall.WaitStatus); !hit || !ws.Signaled() {
		t.Fatalf("copy finished (%s) before its first pack was in the bucket: %s", cmd.ProcessState, stderr.String())
	}
	var snaps []snapInfo
	if err := json.Unmarshal([]byte(r.must(t, cache, "snapshots", "--json").stdout), &snaps); err != nil || len(snaps) != 0 {
		t.Fatalf("a killed copy left snapshots in the bucket: %v %+v", err, snaps)
	}
	resumed := parseCopy(t, mustCitadelEnv(t, r.env, args...))
	if len(resumed.Copied) != 1 || resumed.Copied[0] != snap.ID || resumed.Present == 0 {
		t.Fatalf("the rerun did not reuse the pack the killed copy put: %+v", resumed)
	}
	if res := r.run(t, cache, "check", "--read-data"); res.code != 0 {
		t.Fatalf("check --read-data of the bucket: %s", res)
	}
	out := filepath.Join(t.TempDir(), "restore")
	r.must(t, cache, "restore", snap.ID, out)
	for _, l := range labels {
		assertSameTree(t, filepath.Join(src, l), filepath.Join(out, l))
	}
}
