package index_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"citadelfs/index"
)

// A remote repository over a LocalStore standing in for the bucket (the
// real RGW runs the same in s3store's tests).
func newRemote(t *testing.T) (index.Store, string) {
	t.Helper()
	s := index.NewLocalStore(t.TempDir(), 8)
	t.Cleanup(func() { s.Close() })
	if _, err := index.InitStore(s, "fake://bucket", index.ChunkerParams{Min: 1, Avg: 2, Max: 4}, time.Unix(0, 0)); err != nil {
		t.Fatal(err)
	}
	return s, "fake://bucket"
}

func openRemote(t *testing.T, s index.Store, cache string, o index.Options) *index.Repo {
	t.Helper()
	o.CacheDir = cache
	r, err := index.OpenStore(s, "fake://bucket", o)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// commitBlobAndSnapshot stores blob in a pack and a snapshot manifest
// that names it, as a snapshot does.
func commitBlobAndSnapshot(t *testing.T, r *index.Repo, blob, manifest []byte) {
	t.Helper()
	pw, err := r.NewPackWriter()
	if err != nil {
		t.Fatal(err)
	}
	pw.Add(index.DataBlob, 0, index.Hash(blob), blob, len(blob))
	pw.Add(index.SnapshotBlob, 0, index.Hash(manifest), manifest, len(manifest))
	id, es, err := pw.Finish()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.CommitPack(id, es, pw.Size()); err != nil {
		t.Fatal(err)
	}
	if err := r.PutSnapshot(index.Hash(manifest), manifest); err != nil {
		t.Fatal(err)
	}
}

func snapshotCount(t *testing.T, r *index.Repo) int {
	t.Helper()
	n := 0
	if err := r.Snapshots(func(index.ID, []byte) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// The cache is only a cache: deleted, it is rebuilt from the store on the
// next open; a second host (its own cache) sees the first one's blobs and
// snapshots, and a forget on one is a forget on both.
func TestRemoteCacheRebuiltAndShared(t *testing.T) {
	s, _ := newRemote(t)
	cacheA, cacheB := t.TempDir(), t.TempDir()
	a := openRemote(t, s, cacheA, index.Options{})
	blob, manifest := []byte("model weights"), []byte(`{"host":"a"}`)
	commitBlobAndSnapshot(t, a, blob, manifest)
	a.Close()

	os.RemoveAll(filepath.Join(cacheA, "index"))
	a = openRemote(t, s, cacheA, index.Options{})
	if ok, _ := a.HasBlob(index.Hash(blob)); !ok || snapshotCount(t, a) != 1 {
		t.Fatalf("after deleting the cache: blob %v, %d snapshots", ok, snapshotCount(t, a))
	}
	ref, _ := a.Lookup(index.Hash(blob))
	if got, err := a.ReadStored(ref, nil); err != nil || string(got) != string(blob) {
		t.Fatalf("read from the rebuilt cache: %q %v", got, err)
	}

	b := openRemote(t, s, cacheB, index.Options{})
	if ok, _ := b.HasBlob(index.Hash(blob)); !ok || snapshotCount(t, b) != 1 {
		t.Fatalf("second host: blob %v, %d snapshots", ok, snapshotCount(t, b))
	}
	if err := b.DeleteSnapshot(index.Hash(manifest)); err != nil {
		t.Fatal(err)
	}
	b.Close()
	a.Close()
	a = openRemote(t, s, cacheA, index.Options{})
	defer a.Close()
	if n := snapshotCount(t, a); n != 0 {
		t.Fatalf("a snapshot forgotten on host b is still listed on host a (%d)", n)
	}
}

// A pack another host's prune deleted leaves this host's cache when it
// next opens: its blobs are no longer found, so they are stored again.
func TestRemoteSyncDropsDeletedPacks(t *testing.T) {
	s, _ := newRemote(t)
	cache := t.TempDir()
	r := openRemote(t, s, cache, index.Options{})
	blob := []byte("chunk")
	commitBlobAndSnapshot(t, r, blob, []byte("m"))
	ref, _ := r.Lookup(index.Hash(blob))
	r.Close()
	if err := s.Delete(index.PackName(ref.Pack)); err != nil {
		t.Fatal(err)
	}
	r = openRemote(t, s, cache, index.Options{})
	defer r.Close()
	if ok, _ := r.HasBlob(index.Hash(blob)); ok {
		t.Fatal("a blob of a deleted pack is still in the cache")
	}
}

// A cache directory of another repository is refused.
func TestRemoteCacheOfAnotherRepositoryRefused(t *testing.T) {
	s1, _ := newRemote(t)
	s2, _ := newRemote(t)
	cache := t.TempDir()
	openRemote(t, s1, cache, index.Options{}).Close()
	if _, err := index.OpenStore(s2, "fake://other", index.Options{CacheDir: cache}); err == nil {
		t.Fatal("opened a repository with another repository's cache")
	}
}

// Shared locks admit each other; an exclusive one excludes and is
// excluded; a lock not refreshed within its expiry is ignored; a released
// lock leaves no object.
func TestStoreLocks(t *testing.T) {
	s, _ := newRemote(t)
	now := time.Now()
	clock := func() time.Time { return now }
	sh1, err := index.AcquireStoreLock(s, false, "snapshot", clock, index.LockTimes{})
	if err != nil {
		t.Fatal(err)
	}
	sh2, err := index.AcquireStoreLock(s, false, "snapshot", clock, index.LockTimes{})
	if err != nil {
		t.Fatalf("a second shared lock: %v", err)
	}
	if _, err := index.AcquireStoreLock(s, true, "prune", clock, index.LockTimes{}); !errors.Is(err, index.ErrLocked) {
		t.Fatalf("exclusive over shared: %v, want ErrLocked", err)
	}
	sh1.Release()
	sh2.Release()
	ex, err := index.AcquireStoreLock(s, true, "prune", clock, index.LockTimes{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := index.AcquireStoreLock(s, false, "snapshot", clock, index.LockTimes{}); !errors.Is(err, index.ErrLocked) {
		t.Fatalf("shared over exclusive: %v, want ErrLocked", err)
	}
	// The holder dies (no release, no refresh): after the expiry the
	// fleet goes on.
	later := func() time.Time { return now.Add(31 * time.Minute) }
	sh, err := index.AcquireStoreLock(s, false, "snapshot", later, index.LockTimes{})
	if err != nil {
		t.Fatalf("over an expired exclusive lock: %v", err)
	}
	// A refresh keeps a lock alive past the expiry of its first object.
	if err := sh.Refresh(); err != nil {
		t.Fatal(err)
	}
	sh.Release()
	ex.Release()
	n := 0
	s.List("locks/", func(string, int64) error { n++; return nil })
	if n != 0 {
		t.Fatalf("%d lock objects left after release", n)
	}
}

// OpenStore takes an exclusive lock when asked: a second opener fails
// with ErrLocked until it is closed.
func TestOpenStoreExclusive(t *testing.T) {
	s, _ := newRemote(t)
	r := openRemote(t, s, t.TempDir(), index.Options{Exclusive: true})
	if _, err := index.OpenStore(s, "fake://bucket", index.Options{CacheDir: t.TempDir()}); !errors.Is(err, index.ErrLocked) {
		t.Fatalf("open beside a prune: %v, want ErrLocked", err)
	}
	r.Close()
	openRemote(t, s, t.TempDir(), index.Options{}).Close()
}

// A writer's index object lets a new host index every pack it wrote with
// one read, no trailer read: 21 packs (one pruned since), three reads in all (citadel.json,
// the index object, the snapshot's object). Packs pruned since are
// skipped, and a damaged index object falls back to the trailers.
func TestRemoteSyncFromIndexObjects(t *testing.T) {
	s, _ := newRemote(t)
	r := openRemote(t, s, t.TempDir(), index.Options{})
	var blobs [][]byte
	for i := range 20 {
		b := []byte(fmt.Sprintf("blob %d", i))
		blobs = append(blobs, b)
		pw, _ := r.NewPackWriter()
		pw.Add(index.DataBlob, 0, index.Hash(b), b, len(b))
		id, es, err := pw.Finish()
		if err != nil {
			t.Fatal(err)
		}
		r.CommitPack(id, es, pw.Size())
	}
	m := []byte("manifest")
	pw, _ := r.NewPackWriter()
	pw.Add(index.SnapshotBlob, 0, index.Hash(m), m, len(m))
	id, es, _ := pw.Finish()
	r.CommitPack(id, es, pw.Size())
	if err := r.PutSnapshot(index.Hash(m), m); err != nil {
		t.Fatal(err)
	}
	pruned, _ := r.Lookup(index.Hash(blobs[3]))
	r.Close()
	s.Delete(index.PackName(pruned.Pack))

	var fs *index.FaultyStore
	wrap := func(st index.Store) index.Store { fs = index.NewFaultyStore(st); return fs }
	r2 := openRemote(t, s, t.TempDir(), index.Options{WrapStore: wrap})
	for i, b := range blobs {
		if ok, _ := r2.HasBlob(index.Hash(b)); ok != (i != 3) {
			t.Fatalf("blob %d indexed: %v", i, ok)
		}
	}
	if n := fs.Calls(index.OpRead); n != 3 {
		t.Fatalf("the sync made %d reads, want 3 (no trailer)", n)
	}
	if got := r2.LastSync; got.FromIndexObjects != 20 || got.PacksAdded != 20 {
		t.Fatalf("sync: %+v", got)
	}
	r2.Close()

	// A damaged index object: the trailers serve.
	s.List("index/", func(name string, size int64) error {
		b, _ := s.ReadRange(name, 0, int(size), nil)
		b[20] ^= 1
		s.Delete(name)
		return s.Put(name, b)
	})
	r3 := openRemote(t, s, t.TempDir(), index.Options{})
	defer r3.Close()
	if got := r3.LastSync; got.FromIndexObjects != 0 || got.PacksAdded != 20 || len(got.Damaged) != 1 {
		t.Fatalf("sync over a damaged index object: %+v", got)
	}
}

// A new host's sync reads each pack's trailer with two ranged reads (the
// header, then the tail: the listing gave the size) and no stat; a pack
// whose trailer is longer than that tail (2000 blobs) is read whole too.
func TestRemoteSyncReadsTwoRangesPerPack(t *testing.T) {
	s, _ := newRemote(t)
	r := openRemote(t, s, t.TempDir(), index.Options{})
	pw, _ := r.NewPackWriter()
	var ids []index.ID
	for i := range 2000 {
		b := []byte(fmt.Sprintf("blob %d", i))
		ids = append(ids, index.Hash(b))
		pw.Add(index.DataBlob, 0, index.Hash(b), b, len(b))
	}
	id, es, err := pw.Finish()
	if err != nil {
		t.Fatal(err)
	}
	r.CommitPack(id, es, pw.Size())
	commitBlobAndSnapshot(t, r, []byte("small"), []byte("manifest"))
	r.Close()
	// As if the writer was killed before it put its index object.
	s.List("index/", func(name string, _ int64) error { return s.Delete(name) })

	var fs *index.FaultyStore
	r2 := openRemote(t, s, t.TempDir(), index.Options{WrapStore: func(st index.Store) index.Store {
		fs = index.NewFaultyStore(st)
		return fs
	}})
	defer r2.Close()
	for _, id := range append(ids, index.Hash([]byte("small"))) {
		if ok, _ := r2.HasBlob(id); !ok {
			t.Fatalf("blob %s not indexed by the sync", id.Short())
		}
	}
	// 2 packs: 2 reads each, 1 more for the long trailer, 1 for the
	// snapshot's object, 1 for citadel.json; stats: citadel.json and the
	// snapshot object only (and the lock's own checks).
	if n := fs.Calls(index.OpRead); n > 2*2+1+1+1 {
		t.Fatalf("the sync made %d reads", n)
	}
	if n := fs.Calls(index.OpStat); n > 2 {
		t.Fatalf("the sync made %d stats", n)
	}
}

// A holder whose refreshes fail (the store refuses its lock objects)
// notices before others may take its lock as stale: a snapshot is not
// committed and a pack is not deleted then.
func TestStoreLockLostStopsCommits(t *testing.T) {
	s, _ := newRemote(t)
	var fs *index.FaultyStore
	r := openRemote(t, s, t.TempDir(), index.Options{
		LockTimes: index.LockTimes{Refresh: 10 * time.Millisecond, Expiry: 3 * time.Second}, // roomy: a loaded machine must not lose it early
		WrapStore: func(st index.Store) index.Store { fs = index.NewFaultyStore(st); return fs }})
	defer r.Close()
	commitBlobAndSnapshot(t, r, []byte("b"), []byte("m1"))
	fs.SetFaults(index.Fault{Op: index.OpPut, Prefix: "locks/", Nth: 1, Sticky: true, Err: index.ErrStoreUnavailable})
	for end := time.Now().Add(30 * time.Second); r.PutSnapshot(index.Hash([]byte("m2")), []byte("m2")) == nil; time.Sleep(5 * time.Millisecond) {
		r.DeleteSnapshot(index.Hash([]byte("m2")))
		if time.Now().After(end) {
			t.Fatal("the snapshot commit never noticed the lost lock")
		}
	}
	err := r.PutSnapshot(index.Hash([]byte("m2")), []byte("m2"))
	if !errors.Is(err, index.ErrLocked) {
		t.Fatalf("commit with a lost lock: %v, want ErrLocked", err)
	}
	ref, _ := r.Lookup(index.Hash([]byte("b")))
	if err := r.RemovePack(ref.Pack); !errors.Is(err, index.ErrLocked) {
		t.Fatalf("pack delete with a lost lock: %v, want ErrLocked", err)
	}
}

// After a prune (the exclusive lock, packs deleted) an index object none
// of whose packs is left is deleted at close; one with a live pack stays,
// and a shared holder deletes none.
func TestRemoteIndexObjectsCleanedAfterPrune(t *testing.T) {
	s, _ := newRemote(t)
	r := openRemote(t, s, t.TempDir(), index.Options{})
	commitBlobAndSnapshot(t, r, []byte("dead"), []byte("m1")) // index object 1
	commitBlobAndSnapshot(t, r, []byte("live"), []byte("m2")) // index object 2
	dead, _ := r.Lookup(index.Hash([]byte("dead")))
	r.Close()
	count := func() int {
		n := 0
		s.List("index/", func(string, int64) error { n++; return nil })
		return n
	}
	if count() != 2 {
		t.Fatalf("%d index objects, want 2", count())
	}
	p := openRemote(t, s, t.TempDir(), index.Options{Exclusive: true})
	p.DeleteBlobs([]index.ID{dead.ID, index.Hash([]byte("m1"))})
	if err := p.RemovePack(dead.Pack); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if count() != 1 {
		t.Fatalf("%d index objects after the prune, want 1", count())
	}
	n := openRemote(t, s, t.TempDir(), index.Options{})
	defer n.Close()
	if ok, _ := n.HasBlob(index.Hash([]byte("live"))); !ok {
		t.Fatal("the live blob is gone from a new host's cache")
	}
}

// A prune run inside a mount daemon (an exclusive LockCommand beside the
// daemon's reader lock, which never closes) drops the index objects it
// left dead when its lock is released, as a prune on its own does at
// close; a shared command's release drops none.
func TestLockCommandExclusiveCleansIndexObjects(t *testing.T) {
	s, _ := newRemote(t)
	w := openRemote(t, s, t.TempDir(), index.Options{})
	commitBlobAndSnapshot(t, w, []byte("dead"), []byte("m1"))
	commitBlobAndSnapshot(t, w, []byte("live"), []byte("m2"))
	dead, _ := w.Lookup(index.Hash([]byte("dead")))
	w.Close()
	count := func() int {
		n := 0
		s.List("index/", func(string, int64) error { n++; return nil })
		return n
	}
	d := openRemote(t, s, t.TempDir(), index.Options{Reader: true, Command: "citadelfs mount"})
	defer d.Close()
	sh, err := d.LockCommand("citadelfs snapshots", false)
	if err != nil {
		t.Fatal(err)
	}
	if err := sh.Release(); err != nil || count() != 2 {
		t.Fatalf("a shared command's release: %v, %d index objects, want 2", err, count())
	}
	ex, err := d.LockCommand("citadelfs prune", true)
	if err != nil {
		t.Fatal(err)
	}
	d.DeleteBlobs([]index.ID{dead.ID, index.Hash([]byte("m1"))})
	if err := d.RemovePack(dead.Pack); err != nil {
		t.Fatal(err)
	}
	if err := ex.Release(); err != nil {
		t.Fatal(err)
	}
	if count() != 1 {
		t.Fatalf("%d index objects after the daemon's prune released its lock, want 1", count())
	}
}

// A command run inside a process that keeps the repository open takes
// its lock beside the repository's own (Repo.LockCommand): an exclusive
// one there excludes others as any exclusive lock does, and another
// host's shared lock still refuses it; only the repository's own does
// not.
func TestLockCommandBesideOwnSharedLock(t *testing.T) {
	s, _ := newRemote(t)
	r := openRemote(t, s, t.TempDir(), index.Options{})
	defer r.Close()
	if _, err := index.AcquireStoreLock(s, true, "prune", time.Now, index.LockTimes{}); !errors.Is(err, index.ErrLocked) {
		t.Fatalf("a plain exclusive lock beside the shared one: %v, want ErrLocked", err)
	}
	ex, err := r.LockCommand("prune", true)
	if err != nil {
		t.Fatalf("exclusive beside our own shared lock: %v", err)
	}
	if _, err := index.AcquireStoreLock(s, false, "snapshot", time.Now, index.LockTimes{}); !errors.Is(err, index.ErrLocked) {
		t.Fatalf("a shared lock beside the exclusive one: %v, want ErrLocked", err)
	}
	if err := ex.Release(); err != nil {
		t.Fatal(err)
	}
	// Another host's snapshot running: refused.
	putForeignLock(t, s, index.StoreLockInfo{Host: "other-host", PID: 1, Command: "citadelfs snapshot", Time: time.Now().UTC()})
	if _, err := r.LockCommand("prune", true); !errors.Is(err, index.ErrLocked) || !strings.Contains(err.Error(), "other-host") {
		t.Fatalf("exclusive beside another host's shared lock: %v, want ErrLocked naming it", err)
	}
}

func putForeignLock(t *testing.T, s index.Store, info index.StoreLockInfo) string {
	t.Helper()
	b, _ := json.Marshal(info)
	name := fmt.Sprintf("locks/%032x", time.Now().UnixNano())
	if err := s.Put(name, b); err != nil {
		t.Fatal(err)
	}
	return name
}

// A mount daemon's reader lock (Options.Reader) is excluded by nothing
// and excludes nothing: another host's prune takes its exclusive lock
// beside it, and a reader opens while that prune runs. A shared lock
// (another host's snapshot) still refuses the prune. The lock object says
// "reader".
func TestReaderLockExcludesNothing(t *testing.T) {
	s, _ := newRemote(t)
	rd := openRemote(t, s, t.TempDir(), index.Options{Reader: true, Command: "citadelfs mount"})
	defer rd.Close()
	var kinds []string
	s.List("locks/", func(name string, size int64) error {
		b, _ := s.ReadRange(name, 0, int(size), nil)
		var m map[string]any
		json.Unmarshal(b, &m)
		kinds = append(kinds, fmt.Sprint(m["kind"], "/", m["exclusive"]))
		return nil
	})
	if len(kinds) != 1 || kinds[0] != "reader/false" {
		t.Fatalf("the reader's lock object: kind/exclusive %q, want [reader/false]", kinds)
	}
	ex, err := index.AcquireStoreLock(s, true, "citadelfs prune", time.Now, index.LockTimes{})
	if err != nil {
		t.Fatalf("another host's prune beside a mount's reader lock: %v", err)
	}
	if _, err := index.AcquireStoreLock(s, false, "citadelfs snapshot", time.Now, index.LockTimes{}); !errors.Is(err, index.ErrLocked) {
		t.Fatalf("a snapshot beside the prune: %v, want ErrLocked", err)
	}
	rd2 := openRemote(t, s, t.TempDir(), index.Options{Reader: true, Command: "citadelfs mount"})
	rd2.Close()
	ex.Release()

	sh, err := index.AcquireStoreLock(s, false, "citadelfs snapshot", time.Now, index.LockTimes{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := index.AcquireStoreLock(s, true, "citadelfs prune", time.Now, index.LockTimes{}); !errors.Is(err, index.ErrLocked) {
		t.Fatalf("a prune beside a running snapshot: %v, want ErrLocked", err)
	}
	sh.Release()

	// A lock object of a binary that knows no kinds, exclusive false:
	// shared, so a prune waits for it.
	old := putForeignLock(t, s, index.StoreLockInfo{Host: "old-host", PID: 1, Command: "citadelfs mount", Time: time.Now().UTC()})
	if _, err := index.AcquireStoreLock(s, true, "citadelfs prune", time.Now, index.LockTimes{}); !errors.Is(err, index.ErrLocked) || !strings.Contains(err.Error(), "old-host") {
		t.Fatalf("a prune beside a lock without a kind: %v, want ErrLocked naming it", err)
	}
	s.Delete(old)
}

// A repository open under a reader lock commits nothing on its own: a
// prune of another host may run under that lock. A command's shared
// lock beside it (LockCommand) lets it commit while held, and only then.
func TestReaderLockCommitsOnlyUnderCommandLock(t *testing.T) {
	s, _ := newRemote(t)
	rd := openRemote(t, s, t.TempDir(), index.Options{Reader: true, Command: "citadelfs mount"})
	defer rd.Close()
	manifest := []byte("manifest one")
	if err := rd.PutSnapshot(index.Hash(manifest), manifest); !errors.Is(err, index.ErrLocked) {
		t.Fatalf("a snapshot committed under the reader lock alone: %v, want ErrLocked", err)
	}
	sh, err := rd.LockCommand("citadelfs snapshot", false)
	if err != nil {
		t.Fatal(err)
	}
	commitBlobAndSnapshot(t, rd, []byte("blob one"), manifest)
	// The command's shared lock excludes another host's prune.
	if _, err := index.AcquireStoreLock(s, true, "citadelfs prune", time.Now, index.LockTimes{}); !errors.Is(err, index.ErrLocked) {
		t.Fatalf("another host's prune beside the daemon's snapshot: %v, want ErrLocked", err)
	}
	if err := sh.Release(); err != nil {
		t.Fatal(err)
	}
	again := []byte("manifest two")
	if err := rd.PutSnapshot(index.Hash(again), again); !errors.Is(err, index.ErrLocked) {
		t.Fatalf("a commit after the command's lock was released: %v, want ErrLocked", err)
	}
	if n := snapshotCount(t, rd); n != 1 {
		t.Fatalf("%d snapshots, want 1", n)
	}
}

// A lock not refreshed for longer than Expiry less one Refresh (a host
// paused, a store unreachable) is lost for good: the next refresh does not
// renew it, so a process that wakes up cannot commit a snapshot naming
// packs that another host's prune, which took the lock as stale, deleted.
func TestStoreLockNotRenewedOnceLost(t *testing.T) {
	s, _ := newRemote(t)
	clock := time.Unix(1e9, 0)
	now := func() time.Time { return clock }
	l, err := index.AcquireStoreLock(s, false, "citadelfs snapshot", now, index.LockTimes{Refresh: time.Hour, Expiry: 3 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	clock = clock.Add(90 * time.Minute)
	if err := l.Refresh(); err != nil {
		t.Fatalf("refresh in time: %v", err)
	}
	clock = clock.Add(2*time.Hour + time.Minute) // past Expiry-Refresh since that refresh
	if err := l.Refresh(); !errors.Is(err, index.ErrLocked) {
		t.Fatalf("refresh of a lost lock: %v, want ErrLocked", err)
	}
	if err := l.Check(); !errors.Is(err, index.ErrLocked) {
		t.Fatalf("check after a refused refresh: %v, want ErrLocked", err)
	}
}

// A pack deleted from the store while a snapshot runs (another host's
// prune, beside a lock it took as stale) stops that snapshot's commit:
// nothing is committed, and the next open drops the pack and commits.
func TestRemoteSnapshotRefusedWhenAPackVanished(t *testing.T) {
	s, _ := newRemote(t)
	cache := t.TempDir()
	r := openRemote(t, s, cache, index.Options{})
	defer r.Close()
	commitBlobAndSnapshot(t, r, []byte("base model"), []byte("m1"))
	ref, err := r.Lookup(index.Hash([]byte("base model")))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(index.PackName(ref.Pack)); err != nil { // the other host's prune
		t.Fatal(err)
	}
	err = r.PutSnapshot(index.Hash([]byte("m2")), []byte("m2"))
	if !errors.Is(err, index.ErrLocked) || !strings.Contains(err.Error(), "deleted from the store") {
		t.Fatalf("commit after a pack vanished: %v, want ErrLocked", err)
	}
	if _, err := s.Stat("snapshots/" + index.Hash([]byte("m2")).String()); err == nil {
		t.Fatal("the snapshot was committed")
	}
	r.Close()
	r2 := openRemote(t, s, cache, index.Options{}) // the rerun: its sync drops the pack
	defer r2.Close()
	if err := r2.PutSnapshot(index.Hash([]byte("m2")), []byte("m2")); err != nil {
		t.Fatalf("commit after a fresh sync: %v", err)
	}
}
