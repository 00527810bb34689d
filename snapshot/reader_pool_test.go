package snapshot

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
)

// Chunk buffers are recycled once the cache has dropped a chunk and no
// reader holds it. With a cache far smaller than the file, readers that
// run at once (sequential ones, which prefetch, and random ones) keep
// evicting chunks others are copying from: every read must still return
// the file's bytes, and buffers must be reused.
func TestFileReaderRecycledBuffersCorrect(t *testing.T) {
	ctx := context.Background()
	r, _ := newRepo(t)
	_, data, res := snapshotRandomFile(t, r, "f.bin", 24<<20, 11)
	r.cache = newBlobCache(8 << 20)
	n, err := r.Resolve(ctx, res.Snapshot, "d/f.bin")
	if err != nil {
		t.Fatal(err)
	}
	fr := r.OpenFile(n)
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 3))
			buf := make([]byte, 1<<20+77)
			off := int64(0)
			for range 60 {
				if g%3 == 0 {
					off = rng.Int64N(int64(len(data)))
				}
				got, err := fr.ReadAt(ctx, buf, off)
				if err != nil && !errors.Is(err, io.EOF) {
					t.Error(err)
					return
				}
				if want := min(int64(len(buf)), int64(len(data))-off); int64(got) != want || !bytes.Equal(buf[:got], data[off:off+want]) {
					t.Errorf("reader %d: wrong bytes at %d (got %d)", g, off, got)
					return
				}
				off += int64(got)
				if off >= int64(len(data)) {
					off = 0
				}
			}
		}()
	}
	wg.Wait()
	// Once the prefetches settle, every chunk is held by the cache alone.
	r.inflightMu.Lock()
	r.inflightMu.Unlock()
	r.prefetcher.pending.Wait()
	r.cache.mu.Lock()
	defer r.cache.mu.Unlock()
	for id, it := range r.cache.items {
		if it.data != nil && it.data.refs != 1 {
			t.Errorf("chunk %s: %d references with no reader, want 1 (the cache's)", id.Short(), it.data.refs)
		}
	}
	if len(r.cache.bufs.free) == 0 {
		t.Error("no buffer came back to the pool")
	}
}

// The pool hands out buffers that fit, reuses them, and keeps at most
// bufPoolBytes idle.
func TestBufPoolBounded(t *testing.T) {
	var p bufPool
	a := p.get(1 << 20)
	if len(a) != 1<<20 || cap(a) < 1<<20 {
		t.Fatalf("get: len %d cap %d", len(a), cap(a))
	}
	p.put(a)
	if b := p.get(1<<20 - 100); &b[:1][0] != &a[:1][0] {
		t.Error("a fitting idle buffer was not reused")
	}
	if b := p.get(4 << 20); len(b) != 4<<20 {
		t.Errorf("get 4 MiB: len %d", len(b))
	}
	for range 100 {
		p.put(make([]byte, 3<<20))
	}
	if p.bytes > bufPoolBytes {
		t.Errorf("%d bytes idle, bound %d", p.bytes, bufPoolBytes)
	}
	sum := 0
	for _, b := range p.free {
		sum += cap(b)
	}
	if sum != p.bytes {
		t.Errorf("pool counts %d bytes, holds %d", p.bytes, sum)
	}
}

// Slices lends views of the decoded chunks (and of zeros for holes) that
// read like ReadAt, stay intact while other readers churn the cache, and
// hand every reference back on release.
func TestFileReaderSlices(t *testing.T) {
	ctx := context.Background()
	r, _ := newRepo(t)
	_, data, res := snapshotRandomFile(t, r, "f.bin", 12<<20, 21)
	r.cache = newBlobCache(6 << 20)
	n, err := r.Resolve(ctx, res.Snapshot, "d/f.bin")
	if err != nil {
		t.Fatal(err)
	}
	if len(n.Content) < 4 {
		t.Fatalf("only %d chunks", len(n.Content))
	}
	// The same chunks with a 100 000-byte hole before each and a tail
	// hole: what a sparse file's node looks like.
	sparse := *n
	sparse.Content = append([]ChunkRef(nil), n.Content...)
	var want []byte
	for i := range sparse.Content {
		want = append(want, make([]byte, 100000)...)
		sparse.Content[i].Offset = int64(len(want))
		c := n.Content[i]
		want = append(want, data[c.Offset:c.Offset+c.Length]...)
	}
	want = append(want, make([]byte, 3<<20)...)
	sparse.Size = int64(len(want))
	fr := r.OpenFile(&sparse)

	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 9))
			for range 40 {
				off := rng.Int64N(int64(len(want)) + 10)
				size := 1 + rng.IntN(3<<20)
				views, release, err := fr.Slices(ctx, off, size)
				if err != nil {
					t.Error(err)
					return
				}
				// Let the other readers evict and recycle meanwhile.
				for range 3 {
					fr.ReadAt(ctx, make([]byte, 1<<20), rng.Int64N(int64(len(want))))
				}
				got := bytes.Join(views, nil)
				start := min(off, int64(len(want)))
				end := min(off+int64(size), int64(len(want)))
				if !bytes.Equal(got, want[start:end]) {
					t.Errorf("reader %d: wrong bytes for [%d, %d): got %d bytes", g, off, end, len(got))
				}
				release()
			}
		}()
	}
	wg.Wait()
	r.prefetcher.pending.Wait()
	r.cache.mu.Lock()
	defer r.cache.mu.Unlock()
	for id, it := range r.cache.items {
		if it.data != nil && it.data.refs != 1 {
			t.Errorf("chunk %s: %d references after every release, want 1 (the cache's)", id.Short(), it.data.refs)
		}
	}
}

// A sequential reader drops the chunks it has passed, so streaming a file
// reuses a few buffers rather than filling the cache with fresh ones.
func TestSequentialReaderDropsPassedChunks(t *testing.T) {
	ctx := context.Background()
	r, _ := newRepo(t)
	_, data, res := snapshotRandomFile(t, r, "f.bin", 24<<20, 12)
	n, err := r.Resolve(ctx, res.Snapshot, "d/f.bin")
	if err != nil {
		t.Fatal(err)
	}
	fr := r.OpenFile(n)
	buf := make([]byte, 1<<20)
	for off := int64(0); off < int64(len(data)); off += int64(len(buf)) {
		k, err := fr.ReadAt(ctx, buf, off)
		if (err != nil && !errors.Is(err, io.EOF)) || !bytes.Equal(buf[:k], data[off:off+int64(k)]) {
			t.Fatalf("read at %d: %d bytes, %v", off, k, err)
		}
	}
	r.prefetcher.pending.Wait()
	r.cache.mu.Lock()
	defer r.cache.mu.Unlock()
	// What is left: the chunks within seqSlack of the end, and those
	// prefetched (none past the end). 24 chunks were read in all.
	if len(r.cache.items) > 6 || r.cache.size > 16<<20 {
		t.Errorf("after a sequential read the cache holds %d items, %d MiB, of %d chunks", len(r.cache.items), r.cache.size>>20, len(n.Content))
	}
}
