package snapshot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"citadelfs/index"
)

// batchFixture snapshots, into a remote repository, 150 small files in
// 15 directories (each with its own tree between the files in the pack)
// and a 24 MiB file, and returns the files by path.
func batchFixture(t *testing.T) (index.Store, string, map[string][]byte) {
	t.Helper()
	store := index.NewLocalStore(t.TempDir(), 8)
	t.Cleanup(func() { store.Close() })
	if err := InitStore(store, "fake://bucket", Options{}); err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	files := map[string][]byte{}
	for d := range 15 {
		for f := range 10 {
			b := make([]byte, 1<<10+(d*10+f)*37)
			fillRandom(b, uint64(100+d*10+f))
			files[fmt.Sprintf("dir%02d/f%02d.cfg", d, f)] = b
		}
	}
	big := make([]byte, 24<<20)
	fillRandom(big, 7)
	files["big.bin"] = big
	for name, b := range files {
		os.MkdirAll(filepath.Dir(filepath.Join(src, name)), 0o755)
		if err := os.WriteFile(filepath.Join(src, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cache := t.TempDir()
	r, err := OpenStore(store, "fake://bucket", Options{CacheDir: cache, PackSize: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.TakeSnapshot(context.Background(), Request{Sources: []SourceSpec{{Label: "d", Path: src}}}); err != nil {
		t.Fatal(err)
	}
	r.Close()
	return store, cache, files
}

// restoreBatchFixture restores the fixture's snapshot through wrap and
// returns the store's read calls, the result and the error.
func restoreBatchFixture(t *testing.T, store index.Store, cache string, wrap func(index.Store) index.Store, out string) (int64, *RestoreResult, error) {
	t.Helper()
	var counter *index.CountingStore
	r, err := OpenStore(store, "fake://bucket", Options{CacheDir: cache, WrapStore: func(s index.Store) index.Store {
		if wrap != nil {
			s = wrap(s)
		}
		counter = index.NewCountingStore(s)
		return counter
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	snaps, err := r.Snapshots()
	if err != nil || len(snaps) != 1 {
		t.Fatalf("snapshots %v %v", snaps, err)
	}
	counter.Reset()
	res, err := r.Restore(context.Background(), snaps[0], nil, out, RestoreOptions{})
	calls, _ := counter.Reads()
	return calls, res, err
}

// checkRestored fails unless every file of files is in out with its
// bytes, but those named in missing, which must be absent.
func checkRestored(t *testing.T, out string, files map[string][]byte, missing ...string) {
	t.Helper()
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(out, "d", name))
		if slicesContains(missing, name) {
			if err == nil {
				t.Errorf("%s restored (%d bytes), want it removed", name, len(got))
			}
			continue
		}
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s restored wrong (%d bytes, want %d): %v", name, len(got), len(want), err)
		}
	}
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// A restore from a remote repository reads its packs in spans of many
// chunks: the small files of many directories (with their trees between
// them in the pack) and a large file's chunks, not one GET per chunk.
func TestRemoteRestoreReadsPacksInSpans(t *testing.T) {
	store, cache, files := batchFixture(t)
	out := t.TempDir()
	calls, res, err := restoreBatchFixture(t, store, cache, nil, out)
	if err != nil {
		t.Fatal(err)
	}
	if res.Files != int64(len(files)) {
		t.Fatalf("restored %d files, want %d", res.Files, len(files))
	}
	checkRestored(t, out, files)
	// 150 small chunks and about 24 of the large file; 24 MiB in 4 MiB
	// spans is 6 GETs, the small files a few, the trees some more.
	t.Logf("%d reads", calls)
	if calls > 40 {
		t.Fatalf("the restore made %d reads of the store, want 40 or fewer", calls)
	}
}

// spanFlipper flips a byte in the first `left` reads of at least 64 KiB
// (spans; the small files' and trees' own reads are smaller).
type spanFlipper struct {
	index.Store
	left atomic.Int64
}

func (s *spanFlipper) ReadRange(name string, off int64, n int, buf []byte) ([]byte, error) {
	b, err := s.Store.ReadRange(name, off, n, buf)
	if err == nil && n >= 64<<10 && s.left.Add(-1) >= 0 {
		b[n/2] ^= 0x40
	}
	return b, err
}

// A span the store handed back wrong once costs its chunks a read each,
// not the restore: what the store holds decides.
func TestRemoteRestoreSpanReadWrongOnce(t *testing.T) {
	store, cache, files := batchFixture(t)
	out := t.TempDir()
	flip := &spanFlipper{}
	flip.left.Store(1)
	_, res, err := restoreBatchFixture(t, store, cache, func(s index.Store) index.Store { flip.Store = s; return flip }, out)
	if err != nil || len(res.Failed) != 0 {
		t.Fatalf("restore after one bad span read: %v, failed %q", err, res.Failed)
	}
	checkRestored(t, out, files)
}

// Where the store always hands back wrong bytes for large reads, the
// large file's chunks are damaged (each read again alone, wrong again):
// that file is named and removed, and the small files beside it in the
// batch are restored right, each chunk read again on its own.
func TestRemoteRestoreSpanAlwaysWrong(t *testing.T) {
	store, cache, files := batchFixture(t)
	out := t.TempDir()
	flip := &spanFlipper{}
	flip.left.Store(1 << 40)
	_, res, err := restoreBatchFixture(t, store, cache, func(s index.Store) index.Store { flip.Store = s; return flip }, out)
	if !errors.Is(err, ErrCorrupt) || len(res.Failed) != 1 || !strings.Contains(res.Failed[0], "big.bin") {
		t.Fatalf("restore with damaged large chunks: %v, failed %q", err, res.Failed)
	}
	checkRestored(t, out, files, "big.bin")
}
