package tests

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"citadelfs/index"
)

// prune on host a while host b's snapshot is in flight and b's lock no
// longer counts (deleted from the bucket, as an expired lock is ignored):
// b's packs are uploaded but named by no manifest yet. prune keeps them,
// since they are younger than the grace, and says so; b's snapshot then
// commits, and a third host's check --read-data and restore of it pass.
// Without the grace prune deleted b's packs and b committed a snapshot
// whose data was gone; now such a commit is refused (the second half).
func TestS3PruneBesideInFlightSnapshotWithExpiredLock(t *testing.T) {
	t.Parallel() // RGW round trips overlap
	r := newS3Repo(t)
	dir := t.TempDir()
	small := smallCorpus(t, dir)
	big := filepath.Join(dir, "big")
	corpus(t, "-out", big, "-models-mb", "96", "-logs-mb", "1", "-configs", "20", "-seed", "7")
	cacheA := filepath.Join(dir, "cache-a")
	r.must(t, cacheA, "init", "--encryption", "none", "--insecure-no-encryption")
	r.must(t, cacheA, append([]string{"snapshot", "--host", "a"}, sourceFlags(small, "configs")...)...)
	packs0, err := index.ListStorePacks(r.store)
	if err != nil {
		t.Fatal(err)
	}

	cmd, bOut, exited := startStopped(t, r, filepath.Join(dir, "cache-b"), sourceFlags(big, "models"))
	inFlight, err := index.ListStorePacks(r.store)
	if err != nil {
		t.Fatal(err)
	}

	res := r.must(t, cacheA, "prune", "--json")
	var pr struct {
		Deleted int    `json:"packs_deleted"`
		Young   int    `json:"packs_kept_young"`
		Grace   string `json:"grace"`
	}
	if err := json.Unmarshal([]byte(res.stdout), &pr); err != nil || pr.Young < len(inFlight)-len(packs0) || pr.Deleted != 0 || pr.Grace != "2h0m0s" {
		t.Fatalf("prune beside b's snapshot: %v %s", err, res)
	}
	for _, p := range inFlight {
		if _, err := r.store.Stat(index.PackName(p.ID)); err != nil {
			t.Fatalf("b's pack %s: %v", p.ID.Short(), err)
		}
	}

	cmd.Process.Signal(syscall.SIGCONT)
	<-exited
	if !cmd.ProcessState.Success() {
		t.Fatalf("b's snapshot after the prune: %s", bOut.String())
	}
	cacheC := filepath.Join(dir, "cache-c")
	if res := r.run(t, cacheC, "check", "--read-data"); res.code != 0 {
		t.Fatalf("check --read-data after the prune: %s", res)
	}
	out := filepath.Join(t.TempDir(), "restore")
	r.must(t, cacheC, "restore", "latest", out) // b's, the newest
	assertSameTree(t, filepath.Join(big, "models"), filepath.Join(out, "models"))

	// The same with --grace 0: prune deletes d's in-flight packs, and d's
	// commit notices they are gone and refuses (exit 11, nothing
	// committed) instead of naming them; its rerun stores them again.
	other := filepath.Join(dir, "other")
	corpus(t, "-out", other, "-models-mb", "48", "-logs-mb", "1", "-configs", "10", "-seed", "8")
	cacheD := filepath.Join(dir, "cache-d")
	d, dOut, dExited := startStopped(t, r, cacheD, sourceFlags(other, "models"))
	res = r.must(t, cacheA, "prune", "--json", "--grace", "0")
	if err := json.Unmarshal([]byte(res.stdout), &pr); err != nil || pr.Deleted == 0 {
		t.Fatalf("prune --grace 0 beside d's snapshot: %v %s", err, res)
	}
	d.Process.Signal(syscall.SIGCONT)
	<-dExited
	if code := d.ProcessState.ExitCode(); code != 11 || !strings.Contains(dOut.String(), "deleted from the store") {
		t.Fatalf("d's commit after its packs were pruned: exit %d\n%s", code, dOut.String())
	}
	r.must(t, cacheD, append([]string{"snapshot", "--host", "d"}, sourceFlags(other, "models")...)...)
	if res := r.run(t, filepath.Join(dir, "cache-e"), "check", "--read-data"); res.code != 0 {
		t.Fatalf("check --read-data after d's rerun: %s", res)
	}
}

// startStopped starts a snapshot on another host (its own cache), stops
// it (SIGSTOP) once its first pack is in the bucket, and deletes every
// lock object, as others ignore an expired lock.
func startStopped(t *testing.T, r *s3Repo, cache string, sources []string) (*exec.Cmd, *strings.Builder, chan struct{}) {
	t.Helper()
	packs0, err := index.ListStorePacks(r.store)
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"snapshot", "--host", filepath.Base(cache), "--repo", r.url, "--s3-endpoint", r.endpoint, "--cache-dir", cache}, sources...)
	cmd := exec.Command(citadelBin, args...)
	cmd.Env = append(testEnv(), r.env...)
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	if !poll(exited, func() bool {
		ps, err := index.ListStorePacks(r.store)
		return err == nil && len(ps) > len(packs0)
	}) {
		t.Fatalf("the snapshot ended before its first pack landed: %s", out.String())
	}
	cmd.Process.Signal(syscall.SIGSTOP)
	t.Cleanup(func() { cmd.Process.Kill() })
	var locks []string
	r.store.List("locks/", func(name string, _ int64) error { locks = append(locks, name); return nil })
	for _, l := range locks {
		if err := r.store.Delete(l); err != nil {
			t.Fatal(err)
		}
	}
	return cmd, out, exited
}
