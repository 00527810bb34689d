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
	for i := 0; i < cap(r.prefetchSem); i++ {
		r.prefetchSem <- struct{}{}
	}
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
