package tests

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"citadelfs/internal/cephtest"
)

// mountS3 mounts the s3:// repository r with cache as the daemon's cache
// (its control socket lives there) and --host host.
func mountS3(t *testing.T, r *s3Repo, cache, host, mp string, args ...string) *mountProc {
	t.Helper()
	config := monitorConfig(t, filepath.Dir(mp))
	argv := append([]string{"--s3-endpoint", r.endpoint, "--cache-dir", cache, "--host", host, "--sync-interval", "1s"}, args...)
	return startMountEnv(t, r.env, r.url, mp, config, argv...)
}

// clientSyncAge is how recent a sync makes the daemon skip the one before
// a client's command (cmd/citadelfs/cachesync.go).
const clientSyncAge = 2 * time.Second

// waitFor polls cond for up to 20 s (the daemon syncs its cache with the
// store every second here).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 20s", what)
		}
	}
}

// Two hosts (--host a, --host b, a cache each) snapshot into one bucket;
// host a mounts it. hosts/b/latest is b's newest and latest/ a's own, both
// byte for byte the sources; cp -a out works. A snapshot b takes while the
// mount runs (b's own cache, beside the daemon's reader lock) shows after
// the daemon's next sync, without a remount. Commands of host a with the
// daemon's cache run inside the daemon (its socket is in that cache),
// prune included, under an exclusive lock taken beside its reader lock.
func TestS3MountTwoHosts(t *testing.T) {
	needMount(t)
	t.Parallel() // RGW round trips overlap
	r := newS3Repo(t)
	dir := t.TempDir()
	srcA, srcB := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	corpus(t, "-out", srcA, "-models-mb", "2", "-logs-mb", "1", "-configs", "30", "-seed", "1")
	corpus(t, "-out", srcB, "-models-mb", "2", "-logs-mb", "1", "-configs", "30", "-seed", "2")
	cacheA, cacheB := filepath.Join(dir, "cache-a"), filepath.Join(dir, "cache-b")
	r.must(t, cacheA, "init", "--encryption", "none", "--insecure-no-encryption")
	r.must(t, cacheA, append([]string{"snapshot", "--host", "a"}, sourceFlags(srcA, "configs", "models")...)...)
	r.must(t, cacheB, append([]string{"snapshot", "--host", "b"}, sourceFlags(srcB, "configs", "models")...)...)

	mp := filepath.Join(dir, "mnt")
	// No periodic sync in this test (TestCacheSyncFollowsOtherHosts has
	// it): the daemon syncs before each command a client hands it.
	m := mountS3(t, r, cacheA, "a", mp, "--sync-interval", "1h")
	if _, err := os.Lstat(filepath.Join(cacheA, "daemon.sock")); err != nil {
		t.Fatalf("no control socket in the daemon's cache: %v", err)
	}
	if doc, err := os.ReadFile(filepath.Join(mp, "status", "repo")); err != nil || !strings.Contains(string(doc), r.url) {
		t.Errorf("status/repo of an s3:// mount: %v\n%s", err, doc)
	}
	if got := readDirNames(t, filepath.Join(mp, "hosts")); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("hosts/ = %q, want [a b]", got)
	}
	for _, l := range []string{"configs", "models"} {
		diffTrees(t, filepath.Join(srcB, l), filepath.Join(mp, "hosts", "b", "latest", l))
		diffTrees(t, filepath.Join(srcA, l), filepath.Join(mp, "latest", l))
	}
	out := filepath.Join(t.TempDir(), "out")
	if res := runCmd(t, os.Environ(), "cp", "-a", filepath.Join(mp, "hosts", "b", "latest", "models"), out); res.code != 0 {
		t.Fatalf("cp -a: %s", res)
	}
	assertSameTree(t, filepath.Join(srcB, "models"), out)

	// b snapshots again, from its own host and cache, while a's mount
	// holds its reader lock.
	if err := os.WriteFile(filepath.Join(srcB, "configs", "added-by-b.yaml"), []byte("b: 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r.must(t, cacheB, append([]string{"snapshot", "--host", "b"}, sourceFlags(srcB, "configs")...)...)
	if strings.Contains(m.stderr.String(), "ran a command for a client") {
		t.Fatalf("b's snapshot (another cache) ran in a's daemon:\n%s", m.stderr)
	}
	// Any command of a's run in the daemon syncs its cache first: b's
	// snapshot is in its answer, and in the mount when it returns.
	if out := r.must(t, cacheA, "snapshots", "--json").stdout; strings.Count(out, `"id"`) != 3 {
		t.Fatalf("a's snapshots through the daemon after b's second: %s", out)
	}
	if data, err := os.ReadFile(filepath.Join(mp, "hosts", "b", "latest", "configs", "added-by-b.yaml")); string(data) != "b: 2\n" {
		t.Fatalf("b's new snapshot not in hosts/b/latest after a's command: %q %v", data, err)
	}
	diffTrees(t, filepath.Join(srcB, "configs"), filepath.Join(mp, "hosts", "b", "latest", "configs"))
	if _, err := os.Stat(filepath.Join(mp, "latest", "configs", "added-by-b.yaml")); !os.IsNotExist(err) {
		t.Errorf("a's latest/ shows b's snapshot: %v", err)
	}
	// b forgets its first snapshot: it leaves a's mount at the next sync.
	var bSnaps []snapInfo
	if err := json.Unmarshal([]byte(r.must(t, cacheB, "snapshots", "--json", "--host", "b").stdout), &bSnaps); err != nil || len(bSnaps) != 2 {
		t.Fatalf("b's snapshots: %v %+v", err, bSnaps)
	}
	r.must(t, cacheB, "forget", bSnaps[0].ID)
	time.Sleep(clientSyncAge) // the daemon skips a sync when one ran this recently
	r.must(t, cacheA, "snapshots")
	if ents, _ := os.ReadDir(filepath.Join(mp, "snapshots")); len(ents) != 2 {
		t.Errorf("snapshots/ has %d entries after b's forget, want 2", len(ents))
	}
	if _, err := os.Stat(filepath.Join(mp, "hosts", "b", "latest", "models")); !os.IsNotExist(err) {
		t.Errorf("hosts/b/latest/models after b forgot the only snapshot of it: %v", err)
	}

	// a's own commands with the daemon's cache run in the daemon: a
	// snapshot there is in latest/ when the command returns.
	if err := os.WriteFile(filepath.Join(srcA, "configs", "added-by-a.yaml"), []byte("a: 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r.must(t, cacheA, append([]string{"snapshot", "--host", "a"}, sourceFlags(srcA, "configs")...)...)
	// (The daemon logs before it sends the exit code, but its stderr
	// reaches m.stderr through a pipe, a moment later.)
	waitFor(t, "the daemon's log of a's snapshot", func() bool { return strings.Contains(m.stderr.String(), "ran a command for a client") })
	if data, err := os.ReadFile(filepath.Join(mp, "latest", "configs", "added-by-a.yaml")); string(data) != "a: 2\n" {
		t.Errorf("a's new snapshot not in latest/ when the command returned: %q %v", data, err)
	}
	// prune in the daemon (what b forgot): it takes the exclusive lock
	// beside its reader one (no other host holds one now; the daemon's
	// monitor holds none), and the mount and the bucket stay whole.
	snaps := r.must(t, cacheA, "snapshots", "--json").stdout
	if strings.Count(snaps, `"id"`) != 3 {
		t.Fatalf("snapshots through the daemon: %s", snaps)
	}
	before := r.bucketBytes(t)
	// --grace 0: the packs b's forget left are seconds old.
	if res := r.run(t, cacheA, "prune", "--grace", "0"); res.code != 0 {
		t.Fatalf("prune through the daemon: %s", res)
	}
	if after := r.bucketBytes(t); after >= before {
		t.Errorf("prune through the daemon freed nothing: %d bytes before, %d after", before, after)
	}
	if res := r.run(t, cacheB, "check"); res.code != 0 {
		t.Fatalf("check from host b after a's prune: %s", res)
	}
	diffTrees(t, filepath.Join(srcB, "configs"), filepath.Join(mp, "hosts", "b", "latest", "configs"))
	diffTrees(t, filepath.Join(srcA, "configs"), filepath.Join(mp, "latest", "configs"))
}

// The store going away mid-read: that read fails with EIO (not wrong
// bytes, and within the client's bounded retries), the mount survives,
// and once the store is back the same file reads right and cp -a out of
// the mount is byte for byte the source again. RGW itself is never
// stopped: the daemon reaches it through a TCP proxy the test cuts.
func TestS3MountStoreGoneMidRead(t *testing.T) {
	needMount(t)
	t.Parallel() // RGW round trips overlap
	e := cephtest.Need(t)
	u, err := url.Parse(e.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	r := newS3Repo(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	corpus(t, "-out", src, "-models-mb", "4", "-logs-mb", "1", "-configs", "30")
	cache := filepath.Join(dir, "cache")
	r.must(t, cache, "init", "--encryption", "none", "--insecure-no-encryption")
	r.must(t, cache, append([]string{"snapshot", "--host", "a"}, sourceFlags(src)...)...)

	proxy := startProxy(t, u.Host)
	r.endpoint = "http://" + proxy.addr
	mp := filepath.Join(dir, "mnt")
	m := mountS3(t, r, cache, "a", mp)
	cpOut := func(label string) {
		t.Helper()
		out := filepath.Join(t.TempDir(), "out")
		if res := runCmd(t, os.Environ(), "cp", "-a", filepath.Join(mp, "latest", label), out); res.code != 0 {
			t.Fatalf("cp -a latest/%s: %s", label, res)
		}
		assertSameTree(t, filepath.Join(src, label), out)
	}
	cpOut("configs")

	// Files nobody has read through the mount yet (nothing of them in
	// the page cache or the daemon's chunk cache); their folder is
	// listed now, so the cut meets a read, not a lookup.
	models := readDirNames(t, filepath.Join(mp, "latest", "models"))
	if len(models) == 0 {
		t.Fatal("set-up: latest/models is empty")
	}
	victim := filepath.Join(models[0], "model.safetensors")
	if _, err := os.Stat(filepath.Join(mp, "latest", "models", victim)); err != nil {
		t.Fatalf("set-up: %v", err)
	}

	proxy.cut()
	t0 := time.Now()
	data, err := os.ReadFile(filepath.Join(mp, "latest", "models", victim))
	took := time.Since(t0)
	t.Logf("the read with the store gone failed after %v: %v", took, err)
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("read with the store gone: %d bytes, err %v; want EIO", len(data), err)
	}
	if took > 90*time.Second {
		t.Errorf("the failing read took %v: more than the bounded retries", took)
	}
	// A folder not listed yet needs its tree from the store: EIO too,
	// and not remembered (it lists once the store is back, below).
	if _, err := os.ReadDir(filepath.Join(mp, "latest", "logs")); !errors.Is(err, syscall.EIO) {
		t.Errorf("listing latest/logs with the store gone: %v, want EIO", err)
	}
	// The mount is alive: its virtual folders answer.
	if _, err := os.ReadDir(filepath.Join(mp, "hosts", "a")); err != nil {
		t.Fatalf("the mount after the failed read: %v", err)
	}
	if !isMounted(mp) {
		t.Fatal("the mount went away")
	}

	proxy.restore()
	got, err := os.ReadFile(filepath.Join(mp, "latest", "models", victim))
	want, _ := os.ReadFile(filepath.Join(src, "models", victim))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("the same read once the store is back: %d bytes (want %d), err %v", len(got), len(want), err)
	}
	cpOut("models")
	cpOut("logs")
	select {
	case <-m.exited:
		t.Fatalf("the daemon exited: %v\n%s", m.err, m.stderr)
	default:
	}
}

// A fleet whose hosts all mount the bucket can still prune: host a's
// mount holds a reader lock, which another host's prune does not wait
// for. Host b (its own cache) forgets its first snapshot and prunes with
// --grace 0 while a's mount runs: the prune proceeds and frees space;
// a's mount keeps serving the snapshots that remain byte for byte (their
// chunks' pack was repacked under it: the reads that meet the deleted
// pack re-sync a's cache and read the new one), a file a had open in the
// forgotten snapshot answers ESTALE, and after a's next sync the
// forgotten snapshot is gone from the mount. Nothing of this is a
// corrupt read: no backup_corrupt.
func TestS3MountOtherHostPrunes(t *testing.T) {
	needMount(t)
	t.Parallel() // RGW round trips overlap
	r := newS3Repo(t)
	dir := t.TempDir()
	srcA, srcB := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	corpus(t, "-out", srcA, "-models-mb", "1", "-logs-mb", "1", "-configs", "20", "-seed", "1")
	corpus(t, "-out", srcB, "-models-mb", "2", "-logs-mb", "1", "-configs", "30", "-seed", "2")
	cacheA, cacheB := filepath.Join(dir, "cache-a"), filepath.Join(dir, "cache-b")
	r.must(t, cacheA, "init", "--encryption", "none", "--insecure-no-encryption")
	r.must(t, cacheA, append([]string{"snapshot", "--host", "a"}, sourceFlags(srcA, "configs", "models")...)...)
	// b's first snapshot stores its configs beside its models; its
	// second holds the configs only, so forgetting the first leaves that
	// pack mostly dead: the prune rewrites the configs into a new pack.
	// (A second apart: each snapshot's folder under snapshots/ is its
	// time, to the second.)
	time.Sleep(time.Second)
	r.must(t, cacheB, append([]string{"snapshot", "--host", "b"}, sourceFlags(srcB, "configs", "models")...)...)
	time.Sleep(time.Second)
	r.must(t, cacheB, append([]string{"snapshot", "--host", "b"}, sourceFlags(srcB, "configs")...)...)
	var bSnaps []snapInfo
	if err := json.Unmarshal([]byte(r.must(t, cacheB, "snapshots", "--json", "--host", "b").stdout), &bSnaps); err != nil || len(bSnaps) != 2 {
		t.Fatalf("b's snapshots: %v %+v", err, bSnaps)
	}
	goneSnap := filepath.Join("snapshots", bSnaps[0].Time.Local().Format("2006-01-02T15:04:05"))

	mp := filepath.Join(dir, "mnt")
	m := mountS3(t, r, cacheA, "a", mp, "--sync-interval", "1h")
	// Listed (trees read), but no file's data read yet: the reads after
	// the prune meet what it did to the packs.
	for _, p := range []string{filepath.Join("hosts", "b", "latest", "configs"), filepath.Join("latest", "configs"), filepath.Join("latest", "models")} {
		if res := runCmd(t, os.Environ(), "ls", "-lR", filepath.Join(mp, p)); res.code != 0 {
			t.Fatalf("ls -lR %s: %s", p, res)
		}
	}
	goneDir := filepath.Join(mp, goneSnap, "models")
	models := readDirNames(t, goneDir)
	if len(models) == 0 {
		t.Fatalf("set-up: %s is empty", goneDir)
	}
	open, err := os.Open(filepath.Join(goneDir, models[0], "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()

	r.must(t, cacheB, "forget", bSnaps[0].ID)
	before := r.bucketBytes(t)
	res := r.run(t, cacheB, "prune", "--grace", "0", "--json")
	if res.code != 0 {
		t.Fatalf("b's prune while a's mount runs: %s", res)
	}
	var pr struct {
		PacksDeleted  int `json:"packs_deleted"`
		PacksRepacked int `json:"packs_repacked"`
	}
	json.Unmarshal([]byte(res.stdout), &pr)
	after := r.bucketBytes(t)
	t.Logf("b's prune beside a's mount: %+v, bucket %d -> %d bytes", pr, before, after)
	if after >= before || pr.PacksRepacked == 0 {
		t.Fatalf("b's prune: %+v, bucket %d -> %d bytes; want space freed and the shared pack repacked", pr, before, after)
	}

	// a's mount, its cache not synced since: the snapshots that stay
	// read the same (diff -r), b's configs from the repacked pack.
	for _, c := range []struct{ src, mnt string }{
		{filepath.Join(srcB, "configs"), filepath.Join(mp, "hosts", "b", "latest", "configs")},
		{filepath.Join(srcA, "configs"), filepath.Join(mp, "latest", "configs")},
		{filepath.Join(srcA, "models"), filepath.Join(mp, "latest", "models")},
	} {
		diffTrees(t, c.src, c.mnt)
	}
	buf := make([]byte, 4096)
	if n, err := open.Read(buf); !errors.Is(err, syscall.ESTALE) {
		t.Errorf("read of a file open in the snapshot b forgot and pruned: %d bytes, %v; want ESTALE", n, err)
	}

	// a's next sync (any command of a's runs in the daemon after one):
	// the forgotten snapshot is gone from the mount.
	time.Sleep(clientSyncAge)
	if out := r.must(t, cacheA, "snapshots", "--json").stdout; strings.Count(out, `"id"`) != 2 {
		t.Fatalf("a's snapshots after b's prune: %s", out)
	}
	if _, err := os.Stat(filepath.Join(mp, goneSnap)); !os.IsNotExist(err) {
		t.Errorf("%s after b's forget, prune and a's sync: %v", goneSnap, err)
	}
	if ents, _ := os.ReadDir(filepath.Join(mp, "snapshots")); len(ents) != 2 {
		t.Errorf("snapshots/ has %d entries after b's prune, want 2", len(ents))
	}
	time.Sleep(1500 * time.Millisecond) // at least one monitor cycle
	for _, name := range []string{"alerts.json", "health"} {
		doc, err := os.ReadFile(filepath.Join(mp, "status", name))
		if err != nil || strings.Contains(string(doc), "backup_corrupt") || strings.Contains(string(doc), "corrupt") {
			t.Errorf("status/%s after b's prune under a's mount: %v\n%s", name, err, doc)
		}
	}
	if st := r.run(t, cacheA, "status"); strings.Contains(st.stdout+st.stderr, "backup_corrupt") {
		t.Errorf("a's status after b's prune: %s", st)
	}

	// While another host's prune holds its exclusive lock, a's listings
	// through the daemon still answer (the reader lock), and a's
	// snapshot through it takes its own shared lock and is refused.
	other, _ := json.Marshal(map[string]any{"host": "host-c", "pid": 1, "command": "citadelfs prune", "exclusive": true,
		"kind": "exclusive", "time": time.Now().UTC()})
	if err := r.store.Put("locks/0123456789abcdef0123456789abcdef", other); err != nil {
		t.Fatal(err)
	}
	if res := r.run(t, cacheA, "snapshots"); res.code != 0 {
		t.Errorf("a's snapshots through the daemon beside another host's prune: %s", res)
	}
	if res := r.run(t, cacheA, append([]string{"snapshot", "--host", "a"}, sourceFlags(srcA, "configs")...)...); res.code != 11 || !strings.Contains(res.stderr, "host-c") {
		t.Errorf("a's snapshot through the daemon beside another host's prune: %s; want exit 11 naming it", res)
	}
	r.store.Delete("locks/0123456789abcdef0123456789abcdef")
	select {
	case <-m.exited:
		t.Fatalf("the daemon exited: %v\n%s", m.err, m.stderr)
	default:
	}
}
