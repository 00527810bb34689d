package snapshot

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// Reading thousands of small files through the chunk cache keeps memory
// bounded by the cache and the buffer pool. It did not: zstd returns its
// output capped at its length, so the cache counted each small file's
// 256 KiB pooled buffer as a few KiB and held 550 MB after cp -a of 2000
// config files through the mount.
func TestSmallFileReadsBoundedMemory(t *testing.T) {
	ctx := context.Background()
	r, _ := newRepo(t)
	src := t.TempDir()
	const files = 1500
	for i := range files {
		// A few KiB of config text: zstd-coded, as on a real server.
		var b []byte
		for j := range 100 {
			b = fmt.Appendf(b, "service_%d.option_%d = value %d\n", i, j, i*j)
		}
		os.WriteFile(filepath.Join(src, fmt.Sprintf("f%04d.conf", i)), b, 0o644)
	}
	res, err := r.TakeSnapshot(ctx, Request{Sources: []SourceSpec{{Label: "d", Path: src}}})
	if err != nil {
		t.Fatal(err)
	}
	r.cache = newBlobCache(8 << 20)
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range files {
		n, err := r.Resolve(ctx, res.Snapshot, fmt.Sprintf("d/f%04d.conf", i))
		if err != nil {
			t.Fatal(err)
		}
		fr := r.OpenFile(n)
		views, release, err := fr.Slices(ctx, 0, 8192)
		if err != nil || len(views) != 1 {
			t.Fatalf("file %d: %d views, %v", i, len(views), err)
		}
		release()
	}
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	grew := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("heap grew %d KiB; cache %d KiB in %d items; pool %d KiB", grew>>10, r.cache.size>>10, len(r.cache.items), r.cache.bufs.bytes>>10)
	if limit := int64(8<<20 + bufPoolBytes + 8<<20); grew > limit {
		t.Errorf("heap grew %d MiB reading %d small files; the cache (8 MiB) and pool (%d MiB) bound it", grew>>20, files, bufPoolBytes>>20)
	}
}
