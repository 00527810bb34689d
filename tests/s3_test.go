package tests

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"citadelfs/index"
	"citadelfs/index/s3store"
	"citadelfs/internal/cephtest"
	"citadelfs/internal/testutil"
)

// s3Repo is a repository in a fresh bucket of the real RGW, and how to
// run the binary against it from one host (its own cache dir).
type s3Repo struct {
	url, endpoint string
	env           []string
	store         *s3store.Store
}

func newS3Repo(t *testing.T) *s3Repo {
	t.Helper()
	e := cephtest.Need(t)
	bucket := cephtest.Bucket(t)
	r := &s3Repo{url: "s3://" + bucket + "/fleet", endpoint: e.Endpoint,
		env: []string{"AWS_ACCESS_KEY_ID=" + e.AccessKey, "AWS_SECRET_ACCESS_KEY=" + e.SecretKey, "AWS_REGION=us-east-1"}}
	// For this process's own client (r.store); the same for every test,
	// so the S3 tests can run in parallel (t.Setenv forbids that).
	os.Setenv("AWS_ACCESS_KEY_ID", e.AccessKey)
	os.Setenv("AWS_SECRET_ACCESS_KEY", e.SecretKey)
	s, err := s3store.New(s3store.Config{Bucket: bucket, Prefix: "fleet/", Endpoint: e.Endpoint})
	if err != nil {
		t.Fatal(err)
	}
	r.store = s
	return r
}

// run runs the binary against the repository with cache as its cache.
func (r *s3Repo) run(t *testing.T, cache string, args ...string) result {
	t.Helper()
	argv := append([]string{args[0], "--repo", r.url, "--s3-endpoint", r.endpoint, "--cache-dir", cache}, args[1:]...)
	return citadelEnv(t, r.env, argv...)
}

func (r *s3Repo) must(t *testing.T, cache string, args ...string) result {
	t.Helper()
	res := r.run(t, cache, args...)
	if res.code != 0 {
		t.Fatalf("citadelfs %s: %s", strings.Join(args, " "), res)
	}
	return res
}

// bucketBytes is what the repository's packs take in the bucket.
func (r *s3Repo) bucketBytes(t *testing.T) int64 {
	t.Helper()
	packs, err := index.ListStorePacks(r.store)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, p := range packs {
		n += p.Size
	}
	return n
}

// The corpus snapshotted into RGW restores identical; with the cache
// deleted it is rebuilt from the bucket on the next command and restores
// identical again; repair index rebuilds it too; check --read-data passes;
// and no credential is written into the bucket or the cache.
func TestS3SnapshotRestoreAndCacheRebuild(t *testing.T) {
	t.Parallel() // RGW round trips overlap
	r := newS3Repo(t)
	dir := t.TempDir()
	src := smallCorpus(t, dir)
	cache := filepath.Join(dir, "cache")
	r.must(t, cache, "init", "--encryption", "none", "--insecure-no-encryption")
	if res := r.run(t, cache, "init", "--encryption", "none", "--insecure-no-encryption"); res.code == 0 || !oneLine(res.stderr) {
		t.Fatalf("a second init over the repository: %s", res)
	}
	res := r.must(t, cache, append([]string{"snapshot", "--json"}, sourceFlags(src)...)...)
	var s snapSummary
	if err := json.Unmarshal([]byte(res.stdout), &s); err != nil || s.ID == "" {
		t.Fatalf("snapshot --json: %v\n%s", err, res)
	}
	restoreAndCompare := func(step string) {
		t.Helper()
		out := filepath.Join(t.TempDir(), "restore")
		r.must(t, cache, "restore", "latest", out)
		for _, l := range labels {
			assertSameTree(t, filepath.Join(src, l), filepath.Join(out, l))
		}
	}
	restoreAndCompare("first restore")

	if err := os.RemoveAll(cache); err != nil {
		t.Fatal(err)
	}
	var snaps []snapInfo
	if err := json.Unmarshal([]byte(r.must(t, cache, "snapshots", "--json").stdout), &snaps); err != nil || len(snaps) != 1 || snaps[0].ID != s.ID {
		t.Fatalf("snapshots after the cache was deleted: %v %+v", err, snaps)
	}
	restoreAndCompare("after the cache was deleted")

	if out := r.must(t, cache, "repair", "index").stdout; !strings.Contains(out, "1 snapshots") {
		t.Fatalf("repair index: %s", out)
	}
	restoreAndCompare("after repair index")
	if res := r.run(t, cache, "check", "--read-data"); res.code != 0 {
		t.Fatalf("check --read-data: %s", res)
	}

	// An unchanged second snapshot from a new host (its own, empty cache)
	// uploads nearly nothing: the chunks are found through the bucket.
	before := r.bucketBytes(t)
	r.must(t, filepath.Join(dir, "cache-b"), append([]string{"snapshot"}, sourceFlags(src)...)...)
	if grown := r.bucketBytes(t) - before; grown > before/50 {
		t.Fatalf("a second host's snapshot of the same tree grew the bucket by %d of %d bytes", grown, before)
	}

	secret := []byte(strings.TrimPrefix(r.env[1], "AWS_SECRET_ACCESS_KEY="))
	if err := r.store.List("", func(name string, size int64) error {
		if size > 1<<20 {
			return nil
		}
		b, err := r.store.ReadRange(name, 0, int(size), nil)
		if err == nil && strings.Contains(string(b), string(secret)) {
			t.Errorf("object %s holds the secret key", name)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	filepath.Walk(cache, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			if b, _ := os.ReadFile(p); strings.Contains(string(b), string(secret)) {
				t.Errorf("cache file %s holds the secret key", p)
			}
		}
		return nil
	})
}

// Prune of a remote repository is exclusive and frees what forget left
// (with no grace: see TestS3PruneBesideInFlightSnapshotWithExpiredLock):
// the bucket shrinks, the kept snapshot restores.
func TestS3ForgetPrune(t *testing.T) {
	t.Parallel() // RGW round trips overlap
	r := newS3Repo(t)
	dir := t.TempDir()
	src := smallCorpus(t, dir)
	cache := filepath.Join(dir, "cache")
	r.must(t, cache, "init", "--encryption", "none", "--insecure-no-encryption")
	first := r.must(t, cache, append([]string{"snapshot", "--json"}, sourceFlags(src, "models")...)...)
	var s1 snapSummary
	json.Unmarshal([]byte(first.stdout), &s1)
	corpus(t, "-out", src, "-mutate", "finetune", "-seed", "3")
	r.must(t, cache, append([]string{"snapshot"}, sourceFlags(src, "models")...)...)
	before := r.bucketBytes(t)
	r.must(t, cache, "forget", s1.ID)
	r.must(t, cache, "prune", "--grace", "0") // its packs are seconds old
	if after := r.bucketBytes(t); after >= before {
		t.Fatalf("prune freed nothing: %d -> %d bytes", before, after)
	}
	out := filepath.Join(t.TempDir(), "restore")
	r.must(t, cache, "restore", "latest", out)
	assertSameTree(t, filepath.Join(src, "models"), filepath.Join(out, "models"))
	if res := r.run(t, cache, "check", "--read-data"); res.code != 0 {
		t.Fatalf("check --read-data after prune: %s", res)
	}
}

// A store nobody answers at is one line and exit 14, never a hang.
func TestS3Unreachable(t *testing.T) {
	t.Parallel() // RGW round trips overlap
	cephtest.Need(t)
	res := citadelEnv(t, []string{"AWS_ACCESS_KEY_ID=x", "AWS_SECRET_ACCESS_KEY=y"},
		"snapshots", "--repo", "s3://nobucket/x", "--s3-endpoint", "http://127.0.0.1:1", "--cache-dir", t.TempDir())
	assertOneLineError(t, res, 14)
}

// An endpoint that accepts connections and never answers (a hung RGW, a
// black-holing proxy) fails the command after --s3-timeout without
// progress, one line and exit 14, not after every retry's own wait (302
// s with the default 60 s before); a bad --s3-timeout is exit 2. Needs
// no Ceph: the endpoint is a listener here.
func TestS3StoreNeverAnswers(t *testing.T) {
	t.Parallel()
	ep := testutil.SilentEndpoint(t)
	env := []string{"AWS_ACCESS_KEY_ID=x", "AWS_SECRET_ACCESS_KEY=y"}
	start := time.Now()
	res := citadelEnv(t, env, "snapshots", "--repo", "s3://hung/r", "--s3-endpoint", ep, "--s3-timeout", "1s", "--cache-dir", t.TempDir())
	took := time.Since(start)
	assertOneLineError(t, res, 14, "no answer from the store for 1s")
	// The retries (5, each waiting 1 s for its answer) would take 5 s
	// and more; the watch ends the call after one.
	if took >= 5*time.Second {
		t.Errorf("failed after %s: the retries ran out before --s3-timeout ended the call", took)
	}
	res = citadelEnv(t, env, "snapshots", "--repo", "s3://hung/r", "--s3-endpoint", ep, "--s3-timeout", "soon", "--cache-dir", t.TempDir())
	assertOneLineError(t, res, 2, "--s3-timeout")
}

// Two hosts (two caches, --host a and --host b) share one bucket: each
// snapshot records its host, snapshots lists both, the second host's
// snapshot of overlapping models uploads only what is new, and each
// restores. A bad --host is one line and exit 2.
func TestS3TwoHosts(t *testing.T) {
	t.Parallel() // RGW round trips overlap
	r := newS3Repo(t)
	dir := t.TempDir()
	src := smallCorpus(t, dir)
	cacheA, cacheB := filepath.Join(dir, "cache-a"), filepath.Join(dir, "cache-b")
	r.must(t, cacheA, "init", "--encryption", "none", "--insecure-no-encryption")
	r.must(t, cacheA, append([]string{"snapshot", "--host", "a"}, sourceFlags(src, "models")...)...)
	after1 := r.bucketBytes(t)
	// Host b has the same models plus one of its own.
	srcB := filepath.Join(dir, "src-b")
	runCmd(t, os.Environ(), "cp", "-a", src, srcB)
	corpus(t, "-out", srcB, "-mutate", "new-model", "-seed", "5")
	r.must(t, cacheB, append([]string{"snapshot", "--host", "b"}, sourceFlags(srcB, "models")...)...)
	newBytes := dirBytes(t, filepath.Join(srcB, "models")) - dirBytes(t, filepath.Join(src, "models"))
	if newBytes <= 0 {
		t.Fatalf("set-up: host b has no new model (%d bytes)", newBytes)
	}
	grown := r.bucketBytes(t) - after1
	t.Logf("host a stored %d bytes; host b's new model is %d bytes, the bucket grew by %d", after1, newBytes, grown)
	if grown > newBytes+newBytes/5+(1<<20) {
		t.Fatalf("host b's snapshot grew the bucket by %d bytes; its new model is %d", grown, newBytes)
	}
	var snaps []struct {
		ID   string `json:"id"`
		Host string `json:"host"`
	}
	json.Unmarshal([]byte(r.must(t, cacheA, "snapshots", "--json").stdout), &snaps)
	hosts := map[string]string{}
	for _, s := range snaps {
		hosts[s.Host] = s.ID
	}
	if len(snaps) != 2 || hosts["a"] == "" || hosts["b"] == "" {
		t.Fatalf("snapshots from host a: %+v, want one of a and one of b", snaps)
	}
	for h, want := range map[string]string{"a": src, "b": srcB} {
		out := filepath.Join(t.TempDir(), "restore")
		r.must(t, cacheA, "restore", hosts[h], out)
		assertSameTree(t, filepath.Join(want, "models"), filepath.Join(out, "models"))
	}
	res := r.run(t, cacheA, append([]string{"snapshot", "--host", "bad host"}, sourceFlags(src, "models")...)...)
	assertOneLineError(t, res, 2, "--host")
}

func dirBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

// Prune is exclusive: while another host's snapshot holds its shared lock
// in the bucket, prune refuses in one line with exit 11 and deletes
// nothing; a lock its host stopped refreshing 31 minutes ago no longer
// blocks it; a second snapshot beside a running one is fine.
func TestS3PruneBesideAnotherHostsSnapshot(t *testing.T) {
	t.Parallel() // RGW round trips overlap
	r := newS3Repo(t)
	dir := t.TempDir()
	src := smallCorpus(t, dir)
	cache := filepath.Join(dir, "cache")
	r.must(t, cache, "init", "--encryption", "none", "--insecure-no-encryption")
	r.must(t, cache, append([]string{"snapshot"}, sourceFlags(src, "configs")...)...)

	other, err := index.AcquireStoreLock(r.store, false, "citadelfs snapshot", time.Now, index.LockTimes{})
	if err != nil {
		t.Fatal(err)
	}
	before := r.bucketBytes(t)
	res := r.run(t, cache, "prune")
	assertOneLineError(t, res, 11, "locked")
	res = r.run(t, cache, "forget", "--keep-last", "1", "--prune")
	assertOneLineError(t, res, 11, "locked")
	if r.bucketBytes(t) != before {
		t.Fatal("a refused prune changed the bucket")
	}
	r.must(t, filepath.Join(dir, "cache-b"), append([]string{"snapshot", "--host", "b"}, sourceFlags(src, "configs")...)...)
	other.Release()

	// A dead host's lock: not refreshed for 31 minutes.
	stale, _ := json.Marshal(index.StoreLockInfo{Host: "gone", PID: 1, Command: "citadelfs snapshot", Time: time.Now().Add(-31 * time.Minute)})
	if err := r.store.Put("locks/0123456789abcdef0123456789abcdef", stale); err != nil {
		t.Fatal(err)
	}
	r.must(t, cache, "prune")
	out := filepath.Join(t.TempDir(), "restore")
	r.must(t, cache, "restore", "latest", out)
	assertSameTree(t, filepath.Join(src, "configs"), filepath.Join(out, "configs"))
}
