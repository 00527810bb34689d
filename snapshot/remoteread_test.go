package snapshot

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"citadelfs/index"
)

// Reads of a repository in a store (a LocalStore stands in for the
// bucket here; tests/s3_test.go runs the real RGW): what they fetch, the
// blob cache, and the fetches in flight on sequential reads.

type remoteFixture struct {
	store   index.Store
	cache   string
	snap    index.ID
	big     []byte
	small   []byte
	counter *index.CountingStore
}

// newRemoteFixture snapshots a 24 MiB file and a 10 KiB one into a
// remote repository.
func newRemoteFixture(t *testing.T) *remoteFixture {
	t.Helper()
	f := &remoteFixture{store: index.NewLocalStore(t.TempDir(), 8), cache: t.TempDir()}
	t.Cleanup(func() { f.store.Close() })
	if err := InitStore(f.store, "fake://bucket", Options{}); err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	f.big, f.small = make([]byte, 24<<20), make([]byte, 10<<10)
	fillRandom(f.big, 1)
	fillRandom(f.small, 2)
	os.WriteFile(filepath.Join(src, "big.bin"), f.big, 0o644)
	os.WriteFile(filepath.Join(src, "small.cfg"), f.small, 0o644)
	r, err := OpenStore(f.store, "fake://bucket", Options{CacheDir: f.cache, PackSize: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.TakeSnapshot(context.Background(), Request{Sources: []SourceSpec{{Label: "d", Path: src}}})
	if err != nil {
		t.Fatal(err)
	}
	f.snap = res.Snapshot.ID
	r.Close()
	return f
}

// open opens the repository again (a new process: empty memory caches),
// counting the reads that reach the store, under wrap if given.
func (f *remoteFixture) open(t *testing.T, blobCache int64, wrap func(index.Store) index.Store) (*Repository, *Snapshot) {
	t.Helper()
	r, err := OpenStore(f.store, "fake://bucket", Options{CacheDir: f.cache, BlobCacheSize: blobCache,
		WrapStore: func(s index.Store) index.Store {
			if wrap != nil {
				s = wrap(s)
			}
			f.counter = index.NewCountingStore(s)
			return f.counter
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	snaps, err := r.Snapshots()
	if err != nil || len(snaps) != 1 || snaps[0].ID != f.snap {
		t.Fatalf("snapshots %v %v", snaps, err)
	}
	return r, snaps[0]
}

// readFile reads one file of the snapshot whole, in 128 KiB pieces (as
// the kernel asks a FUSE mount), and returns the bytes the store was
// asked for by the file's reads alone (not the trees' to find it).
func readFile(t *testing.T, f *remoteFixture, r *Repository, s *Snapshot, name string) ([]byte, int64) {
	t.Helper()
	ctx := context.Background()
	n, err := r.Resolve(ctx, s, "d/"+name)
	if err != nil {
		t.Fatal(err)
	}
	f.counter.Reset()
	fr := r.OpenFile(n)
	out := make([]byte, 0, n.Size)
	buf := make([]byte, 128<<10)
	for off := int64(0); off < n.Size; {
		k, err := fr.ReadAt(ctx, buf, off)
		out = append(out, buf[:k]...)
		off += int64(k)
		if err != nil && off < n.Size {
			t.Fatal(err)
		}
	}
	_, got := f.counter.Reads()
	return out, got
}

// A small file's read fetches its one chunk's stored bytes, never a
// whole pack; with the blob cache a second process fetches nothing.
func TestRemoteReadFetchesOnlyItsBlobsAndCaches(t *testing.T) {
	f := newRemoteFixture(t)
	r, s := f.open(t, 64<<20, nil)
	got, fetched := readFile(t, f, r, s, "small.cfg")
	if !bytes.Equal(got, f.small) {
		t.Fatal("small file read back wrong")
	}
	// Stored random bytes do not compress: about the file, a few bytes of
	// framing; a pack is 8 MiB here.
	if fetched < int64(len(f.small)) || fetched > int64(len(f.small))+1024 {
		t.Fatalf("reading a 10 KiB file fetched %d bytes", fetched)
	}
	if r.Index().BlobCache == nil || r.Index().BlobCache.Len() == 0 {
		t.Fatal("nothing was kept in the blob cache")
	}
	r.Close()

	r, s = f.open(t, 64<<20, nil)
	f.counter.Reset()
	for _, name := range []string{"small.cfg", "big.bin"} {
		got, fetched = readFile(t, f, r, s, name)
		if want := map[string][]byte{"small.cfg": f.small, "big.bin": f.big}[name]; !bytes.Equal(got, want) {
			t.Fatalf("%s read back wrong", name)
		}
		if name == "small.cfg" && fetched != 0 {
			t.Fatalf("a cached file's read fetched %d bytes", fetched)
		}
	}
	r.Close()
	// The whole big file was fetched once: now it is cached too.
	r, s = f.open(t, 64<<20, nil)
	if _, fetched = readFile(t, f, r, s, "big.bin"); fetched != 0 {
		t.Fatalf("a cached 24 MiB file's read fetched %d bytes", fetched)
	}
	if st := r.Index().BlobCache.Stats(); st.Misses != 0 || st.Bad != 0 {
		t.Fatalf("cache stats %+v", st)
	}
	r.Close()

	// A test restore proves what the store holds: it reads past the
	// cache, and every byte of both files is fetched.
	r, _ = f.open(t, 64<<20, nil)
	f.counter.Reset()
	rep, err := r.TestRestore(context.Background(), TestRestoreOptions{Fraction: 1, TempDir: t.TempDir()})
	if err != nil || rep.Files != 2 || len(rep.Problems) != 0 {
		t.Fatalf("test restore: %+v %v", rep, err)
	}
	if _, fetched = f.counter.Reads(); fetched < int64(len(f.big)+len(f.small)) {
		t.Fatalf("the test restore fetched %d bytes, less than the files: it read the cache", fetched)
	}
	r.Close()

	// 0 keeps no cache, and removes the one there was.
	r, s = f.open(t, 0, nil)
	if _, fetched = readFile(t, f, r, s, "small.cfg"); fetched < int64(len(f.small)) {
		t.Fatalf("without the cache the read fetched only %d bytes", fetched)
	}
	if _, err := os.Stat(filepath.Join(f.cache, "blobs")); !os.IsNotExist(err) {
		t.Fatal("the blob cache was left behind with the cache off")
	}
}

// A cache entry that is damaged (torn, flipped) or holds the wrong bytes
// under a valid CRC is dropped and the blob fetched again: the read
// returns the right bytes, and nothing is recorded as damage in the
// repository.
func TestRemoteReadBadCacheEntryRefetched(t *testing.T) {
	f := newRemoteFixture(t)
	r, s := f.open(t, 64<<20, nil)
	readFile(t, f, r, s, "small.cfg")
	n, _ := r.Resolve(context.Background(), s, "d/small.cfg")
	ref, err := r.Index().Lookup(n.Content[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	var entry string
	filepath.WalkDir(filepath.Join(f.cache, "blobs"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && filepath.Base(p)[:64] == ref.Pack.String() && int64(ref.Length) == fileSize(p)-16 {
			entry = p
		}
		return nil
	})
	if entry == "" {
		t.Fatal("no cache file for the small file's chunk")
	}

	for _, bad := range []string{"torn", "valid crc, wrong bytes"} {
		t.Run(bad, func(t *testing.T) {
			if bad == "torn" {
				os.Truncate(entry, fileSize(entry)/2)
			}
			r, s := f.open(t, 64<<20, nil)
			if bad != "torn" {
				wrong := bytes.Clone(f.small)
				wrong[100] ^= 1
				stored, _ := r.Index().ReadStored(ref, nil)
				stored = bytes.Clone(stored)
				stored[len(stored)/2] ^= 1
				r.Index().BlobCache.Drop(ref)
				r.Index().BlobCache.Put(ref, stored)
			}
			got, fetched := readFile(t, f, r, s, "small.cfg")
			if !bytes.Equal(got, f.small) {
				t.Fatal("a bad cache entry was returned as the file's bytes")
			}
			if fetched < int64(ref.Length) {
				t.Fatalf("the blob was not fetched again (%d bytes)", fetched)
			}
			if st := r.Index().BlobCache.Stats(); st.Bad != 1+map[bool]int64{true: 0, false: 1}[bad == "torn"] {
				t.Fatalf("cache stats %+v", st)
			}
			n := 0
			r.Index().QuarantineRecords(func(index.Damaged) error { n++; return nil })
			if n != 0 {
				t.Fatalf("a bad cache entry was recorded as %d damaged blobs in the repository", n)
			}
			// Cached again, whole.
			if b, ok := r.Index().BlobCache.Get(ref, nil); !ok || int64(len(b)) != int64(ref.Length) {
				t.Fatal("the refetched blob was not cached again")
			}
			r.Close()
		})
	}
}

func fileSize(p string) int64 {
	st, err := os.Stat(p)
	if err != nil {
		return -1
	}
	return st.Size()
}

// slowReads delays every pack read, like a store across a network.
func slowReads(s index.Store) index.Store {
	return index.NewFaultyStore(s, index.Fault{Op: index.OpRead, Nth: 1, Sticky: true, Prefix: "packs/", Delay: 20 * time.Millisecond})
}

// A sequential reader of a remote repository (a cp out of the mount)
// has several chunk fetches in flight, not one round trip per chunk, and
// keeps them in flight: no chunk ahead is skipped for a queue full of
// chunks already queued.
func TestRemoteSequentialReadFetchesInParallel(t *testing.T) {
	f := newRemoteFixture(t)
	r, s := f.open(t, 0, slowReads)
	got, _ := readFile(t, f, r, s, "big.bin")
	if !bytes.Equal(got, f.big) {
		t.Fatal("big file read back wrong")
	}
	if m := f.counter.MaxInFlight(); m < 6 {
		t.Fatalf("a sequential read had at most %d fetches in flight, want 6 or more", m)
	}
	// Each chunk is queued once: asked again by every read of the run
	// while it waited, the queue filled with copies and the chunks
	// further ahead were skipped (hundreds of them here).
	if n := r.prefetcher.skipped.Load(); n > remoteReadAhead {
		t.Fatalf("%d chunks ahead not queued: the prefetch queue was full", n)
	}
}

// A restore from a remote repository fetches one file's chunks in
// parallel too, and restores them right. It does not fill the blob cache
// with what it restores (it reads each chunk once).
func TestRemoteRestoreFetchesInParallel(t *testing.T) {
	f := newRemoteFixture(t)
	r, s := f.open(t, 64<<20, slowReads)
	n, err := r.Resolve(context.Background(), s, "d/big.bin")
	if err != nil {
		t.Fatal(err)
	}
	f.counter.Reset()
	out := t.TempDir()
	if _, err := r.Restore(context.Background(), s, n, out, RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(out, "big.bin"))
	if err != nil || !bytes.Equal(got, f.big) {
		t.Fatalf("restored file wrong (%d bytes) %v", len(got), err)
	}
	if m := f.counter.MaxInFlight(); m < 3 {
		t.Fatalf("restoring one file had at most %d fetches in flight, want 3 or more", m)
	}
	if c := r.Index().BlobCache.Size(); c > int64(len(f.big))/8 {
		t.Fatalf("the restore of a %d-byte file left %d bytes in the blob cache", len(f.big), c)
	}
}

// A restore from a remote repository, and a walk of the mount, load the
// trees of many small directories ahead, several at once, not one round
// trip per directory.
func TestRemoteRestoreLoadsTreesAhead(t *testing.T) {
	s := index.NewLocalStore(t.TempDir(), 8)
	defer s.Close()
	if err := InitStore(s, "fake://bucket", Options{}); err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	for i := range 40 {
		// Distinct names: distinct trees (equal ones are one blob).
		os.MkdirAll(filepath.Join(src, fmt.Sprintf("dir%02d", i), fmt.Sprintf("sub%02d", i), "leaf"), 0o755)
	}
	cache := t.TempDir()
	r, err := OpenStore(s, "fake://bucket", Options{CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.TakeSnapshot(context.Background(), Request{Sources: []SourceSpec{{Label: "d", Path: src}}}); err != nil {
		t.Fatal(err)
	}
	r.Close()
	var counter *index.CountingStore
	r, err = OpenStore(s, "fake://bucket", Options{CacheDir: cache, WrapStore: func(st index.Store) index.Store {
		counter = index.NewCountingStore(slowReads(st))
		return counter
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	snaps, _ := r.Snapshots()
	counter.Reset()
	out := t.TempDir()
	res, err := r.Restore(context.Background(), snaps[0], nil, out, RestoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Dirs != 1+40*3 {
		t.Fatalf("restored %d directories", res.Dirs)
	}
	for i := range 40 {
		if st, err := os.Stat(filepath.Join(out, "d", fmt.Sprintf("dir%02d", i), fmt.Sprintf("sub%02d", i), "leaf")); err != nil || !st.IsDir() {
			t.Fatalf("dir%02d not restored: %v", i, err)
		}
	}
	if m := counter.MaxInFlight(); m < 4 {
		t.Fatalf("the restore's walk had at most %d tree fetches in flight, want 4 or more", m)
	}
	r.Close()

	// The mount's listings (a find, a cp -a) load the same way.
	r, err = OpenStore(s, "fake://bucket", Options{CacheDir: cache, WrapStore: func(st index.Store) index.Store {
		counter = index.NewCountingStore(slowReads(st))
		return counter
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	snaps, _ = r.Snapshots()
	counter.Reset()
	dirs := 0
	var walk func(id index.ID)
	walk = func(id index.ID) {
		tr, err := r.LoadTreeAhead(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range tr.Nodes {
			if n.Type == TypeDir {
				dirs++
				if !n.Subtree.IsZero() {
					walk(n.Subtree)
				}
			}
		}
	}
	root := snaps[0].Sources[0].RootNode()
	walk(root.Subtree)
	if dirs != 40*3 {
		t.Fatalf("walked %d directories", dirs)
	}
	if m := counter.MaxInFlight(); m < 4 {
		t.Fatalf("a walk through LoadTreeAhead had at most %d tree fetches in flight, want 4 or more", m)
	}
}
