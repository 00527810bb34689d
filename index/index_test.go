package index

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func newTestRepo(t *testing.T) *Repo {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "repo")
	if _, err := Init(dir, ChunkerParams{Min: 1, Avg: 2, Max: 4}, time.Unix(0, 0)); err != nil {
		t.Fatal(err)
	}
	r, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// writeManifestPack commits a pack holding one snapshot manifest, alone,
// as a snapshot does, and returns the manifest.
func writeManifestPack(t *testing.T, r *Repo) []byte {
	t.Helper()
	manifest := []byte(`{"snapshot":1}`)
	pw, err := NewPackWriter(r.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := pw.Add(SnapshotBlob, 0, Hash(manifest), manifest, len(manifest)); err != nil {
		t.Fatal(err)
	}
	pid, es, err := pw.Finish()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.CommitPack(pid, es, pw.Size()); err != nil {
		t.Fatal(err)
	}
	return manifest
}

func writePack(t *testing.T, r *Repo, blobs ...[]byte) (ID, []PackEntry) {
	t.Helper()
	pw, err := NewPackWriter(r.Dir)
	if err != nil {
		t.Fatal(err)
	}
	for i, b := range blobs {
		if err := pw.Add(BlobType(i%3), 0, Hash(b), b, len(b)); err != nil {
			t.Fatal(err)
		}
	}
	id, es, err := pw.Finish()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.CommitPack(id, es, pw.Size()); err != nil {
		t.Fatal(err)
	}
	return id, es
}

func TestPackRoundTrip(t *testing.T) {
	r := newTestRepo(t)
	blobs := [][]byte{[]byte("alpha"), bytes.Repeat([]byte("b"), 100000), []byte("")}
	id, _ := writePack(t, r, blobs...)
	es, size, err := r.ReadPackTrailer(id)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 3 || size == 0 {
		t.Fatalf("trailer has %d entries", len(es))
	}
	for _, b := range blobs {
		ref, err := r.Lookup(Hash(b))
		if err != nil {
			t.Fatal(err)
		}
		got, err := r.ReadStored(ref, nil)
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("blob read back wrong: %v", err)
		}
	}
	if _, err := r.Lookup(Hash([]byte("nope"))); !errors.Is(err, ErrBlobMissing) {
		t.Fatalf("missing blob: %v", err)
	}
}

func TestTrailerCorruptionDetected(t *testing.T) {
	r := newTestRepo(t)
	id, _ := writePack(t, r, []byte("one"), []byte("two"))
	p := PackPath(r.Dir, id)
	data, _ := os.ReadFile(p)
	data[len(data)-footerSize-3] ^= 1 // inside the trailer
	os.WriteFile(p, data, 0o600)
	r.Store.(*LocalStore).packs.drop(id)
	if _, _, err := r.ReadPackTrailer(id); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("flipped trailer byte: %v", err)
	}
}

func TestLockIsExclusiveAndReleasedOnClose(t *testing.T) {
	r := newTestRepo(t)
	if _, err := Open(r.Dir, Options{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: %v, want ErrLocked", err)
	}
	r.Close()
	r2, err := Open(r.Dir, Options{})
	if err != nil {
		t.Fatalf("open after close: %v", err)
	}
	r2.Close()
}

func TestOpenErrors(t *testing.T) {
	if _, err := Open(filepath.Join(t.TempDir(), "nothing"), Options{}); !errors.Is(err, ErrNoRepository) {
		t.Fatalf("missing dir: %v", err)
	}
	dir := filepath.Join(t.TempDir(), "r")
	Init(dir, ChunkerParams{Min: 1, Avg: 2, Max: 4}, time.Now())
	os.WriteFile(filepath.Join(dir, configName), []byte(`{"version":99}`), 0o600)
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrVersion) {
		t.Fatalf("version 99: %v", err)
	}
	if _, err := Init(dir, ChunkerParams{Min: 1, Avg: 2, Max: 4}, time.Now()); err == nil {
		t.Fatal("init over an existing repository succeeded")
	}
}

func TestPartialPacksRemovedOnOpen(t *testing.T) {
	r := newTestRepo(t)
	pw, _ := NewPackWriter(r.Dir)
	pw.Add(DataBlob, 0, Hash([]byte("x")), []byte("x"), 1)
	// pw is never finished: a writer killed before Finish leaves its .partial behind.
	r.Close()
	r2, err := Open(r.Dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	m, _ := filepath.Glob(filepath.Join(r.Dir, packsDir, "*.partial"))
	if len(m) != 0 {
		t.Fatalf("partial packs left: %v", m)
	}
}

func TestRebuildIndexFromPacks(t *testing.T) {
	r := newTestRepo(t)
	manifest := writeManifestPack(t, r)
	writePack(t, r, []byte("data1"), []byte("data2"))
	dir := r.Dir
	r.Close()
	os.RemoveAll(filepath.Join(dir, indexDir))
	res, err := RebuildIndex(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Packs != 2 || res.Blobs != 3 || res.Snapshots != 1 {
		t.Fatalf("rebuild: %+v", res)
	}
	r2, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	var got []byte
	r2.Snapshots(func(id ID, m []byte) error { got = bytes.Clone(m); return nil }) // m is only valid during the call
	if !bytes.Equal(got, manifest) {
		t.Fatalf("snapshot record after rebuild: %q", got)
	}
}

// kvConformance is run against every KV (a repository's index and a
// monitor's own history directory are the same type today, but the suite
// states the contract the rest of the code relies on).
func kvConformance(t *testing.T, kv *KV) {
	if _, err := kv.Get([]byte("missing")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get missing: %v", err)
	}
	for _, k := range []string{"a/1", "a/2", "a/3", "b/1"} {
		if err := kv.Put([]byte(k), []byte("v"+k), false); err != nil {
			t.Fatal(err)
		}
	}
	var keys []string
	kv.Scan([]byte("a/"), PrefixEnd([]byte("a/")), func(k, v []byte) error {
		keys = append(keys, string(k))
		return nil
	})
	if len(keys) != 3 || keys[0] != "a/1" || keys[2] != "a/3" {
		t.Fatalf("Scan: %v", keys)
	}
	keys = nil
	kv.ScanReverse([]byte("a/"), PrefixEnd([]byte("a/")), func(k, v []byte) error {
		keys = append(keys, string(k))
		if len(keys) == 2 {
			return io.EOF
		}
		return nil
	})
	if len(keys) != 2 || keys[0] != "a/3" {
		t.Fatalf("ScanReverse with early stop: %v", keys)
	}
	if err := kv.DeleteRange([]byte("a/1"), []byte("a/3"), true); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]bool{"a/1": false, "a/2": false, "a/3": true, "b/1": true} {
		if ok, _ := kv.Has([]byte(k)); ok != want {
			t.Fatalf("after DeleteRange, Has(%s) = %v", k, ok)
		}
	}
	b := kv.NewBatch()
	b.Put([]byte("c"), []byte("1"))
	b.Delete([]byte("b/1"))
	if b.Len() != 2 {
		t.Fatalf("batch len %d", b.Len())
	}
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	if v, _ := kv.Get([]byte("c")); string(v) != "1" {
		t.Fatalf("batch put: %q", v)
	}
	if ok, _ := kv.Has([]byte("b/1")); ok {
		t.Fatal("batch delete did not apply")
	}
	if PrefixEnd([]byte{0xff, 0xff}) != nil || string(PrefixEnd([]byte("a\xff"))) != "b" {
		t.Fatal("PrefixEnd")
	}
}

func TestKVConformance(t *testing.T) {
	t.Run("standalone", func(t *testing.T) {
		kv, err := OpenKV(t.TempDir(), KVOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer kv.Close()
		kvConformance(t, kv)
	})
	t.Run("repository", func(t *testing.T) {
		kvConformance(t, newTestRepo(t).KV)
	})
}

// A writer killed between a pack's rename and its index commit leaves a
// complete pack nobody indexed; the next open after such a crash adopts
// it so its chunks are reused rather than stored again (found by the
// kill -9 end-to-end test).
func TestStaleLockAdoptsOrphanPack(t *testing.T) {
	r := newTestRepo(t)
	pw, _ := NewPackWriter(r.Dir)
	blob := []byte("orphaned chunk")
	pw.Add(DataBlob, 0, Hash(blob), blob, len(blob))
	if _, _, err := pw.Finish(); err != nil { // renamed, never committed
		t.Fatal(err)
	}
	dir := r.Dir
	r.KV.Close()
	r.Store.Close()
	r.lock.f.Close() // die holding the lock: the file still names us
	r2, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	if ok, _ := r2.HasBlob(Hash(blob)); !ok {
		t.Fatal("orphan pack's blob was not adopted after a stale lock")
	}
}

// Packs larger than the writer's 4 MiB buffers, with blobs straddling
// buffer boundaries, read back byte for byte (a buffer taken from the free
// list with a stale length once shifted every later blob).
func TestLargePackRoundTrip(t *testing.T) {
	r := newTestRepo(t)
	var blobs [][]byte
	for i := 0; i < 12; i++ {
		b := bytes.Repeat([]byte{byte(i), byte(i * 7)}, 700_000+i*1234)
		blobs = append(blobs, b)
	}
	id, _ := writePack(t, r, blobs...)
	es, size, err := r.ReadPackTrailer(id)
	if err != nil || len(es) != len(blobs) {
		t.Fatalf("trailer: %v (%d entries)", err, len(es))
	}
	if fi, _ := os.Stat(PackPath(r.Dir, id)); fi.Size() != size {
		t.Fatalf("size %d vs %d", fi.Size(), size)
	}
	for _, b := range blobs {
		ref, err := r.Lookup(Hash(b))
		if err != nil {
			t.Fatal(err)
		}
		got, err := r.ReadStored(ref, nil)
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("blob at %d read back wrong: %v", ref.Offset, err)
		}
	}
}

// A repository whose index is gone is not opened with an empty one (which
// would show no snapshots, and the next prune would delete every pack): it
// is refused with the way out, and repair index brings it back.
func TestOpenRefusesMissingIndex(t *testing.T) {
	r := newTestRepo(t)
	writePack(t, r, []byte("data1"))
	dir := r.Dir
	r.Close()
	os.RemoveAll(filepath.Join(dir, indexDir))
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "repair index") {
		t.Fatalf("open without an index: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, indexDir)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("open made an index: %v", err)
	}
	if _, err := RebuildIndex(dir, Options{}); err != nil {
		t.Fatal(err)
	}
	r2, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	r2.Close()
}

// A rebuild killed half way leaves the old index in use and its own
// unfinished one beside it, which the next Open removes.
func TestKilledRebuildLeavesOldIndex(t *testing.T) {
	r := newTestRepo(t)
	manifest := writeManifestPack(t, r)
	r.PutSnapshot(Hash(manifest), manifest)
	dir := r.Dir
	r.Close()
	// What a rebuild killed before its swap leaves: a half-built index.
	half := filepath.Join(dir, rebuildPrefix+"123")
	kv, err := OpenKV(half, KVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kv.Close()
	r2, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	r2.Snapshots(func(ID, []byte) error { n++; return nil })
	r2.Close()
	if n != 1 {
		t.Fatalf("%d snapshots after a killed rebuild, want the old index's 1", n)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, rebuildPrefix+"*")); len(left) != 0 {
		t.Fatalf("left over: %v", left)
	}
	// A rebuild that completes swaps in and leaves nothing beside it.
	if _, err := RebuildIndex(dir, Options{}); err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "index*")); len(left) != 1 {
		t.Fatalf("after a rebuild: %v, want only index", left)
	}
}

// A rebuild by an earlier version, killed, leaves the complete old index
// as index.old-* and a partial one in its place: Open refuses (it must not
// quietly open the partial one, nor delete the old), and a new rebuild
// clears it up.
func TestEarlierVersionsKilledRebuildIsRefused(t *testing.T) {
	r := newTestRepo(t)
	writePack(t, r, []byte("data1"))
	dir := r.Dir
	r.Close()
	old := filepath.Join(dir, "index.old-1700000000")
	if err := os.MkdirAll(old, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "repair index") {
		t.Fatalf("open after an interrupted old-style rebuild: %v", err)
	}
	if _, err := os.Stat(old); err != nil {
		t.Fatalf("open removed %s: %v", old, err)
	}
	if _, err := RebuildIndex(dir, Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(old); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("rebuild left %s: %v", old, err)
	}
	r2, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	r2.Close()
}

// Read-only opens share the lock with each other and exclude a writer,
// which excludes them in turn.
func TestReadOnlyOpenSharesTheLock(t *testing.T) {
	r := newTestRepo(t)
	writePack(t, r, []byte("data1"))
	dir := r.Dir
	r.Close()
	a, err := Open(dir, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Open(dir, Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("second read-only open: %v", err)
	}
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("writer while readers hold the lock: %v", err)
	}
	if err := a.KV.Put([]byte("x"), nil, true); err == nil {
		t.Fatal("a write through a read-only open succeeded")
	}
	a.Close()
	b.Close()
	w, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := Open(dir, Options{ReadOnly: true}); !errors.Is(err, ErrLocked) {
		t.Fatalf("reader while a writer holds the lock: %v", err)
	}
}

// Where RENAME_EXCHANGE is missing, the rebuild swaps with two renames; a
// crash between them leaves no index but index.replaced-*, which Open
// puts back. A crash after them leaves both, and Open drops the old one.
func TestInterruptedTwoRenameSwap(t *testing.T) {
	r := newTestRepo(t)
	manifest := writeManifestPack(t, r)
	r.PutSnapshot(Hash(manifest), manifest)
	dir := r.Dir
	r.Close()
	idx := filepath.Join(dir, indexDir)
	replaced := filepath.Join(dir, replacedPrefix+"123")
	if err := os.Rename(idx, replaced); err != nil { // crash between the renames
		t.Fatal(err)
	}
	r2, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("open after a crash between the renames: %v", err)
	}
	n := 0
	r2.Snapshots(func(ID, []byte) error { n++; return nil })
	r2.Close()
	if n != 1 {
		t.Fatalf("%d snapshots, want the old index's 1", n)
	}
	// After both renames: the old one is still beside the new.
	if err := os.MkdirAll(replaced, 0o700); err != nil {
		t.Fatal(err)
	}
	r3, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	r3.Close()
	if _, err := os.Stat(replaced); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("old index left beside the new one: %v", err)
	}
}
