package fs

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

func newTestReader(t *testing.T, data []byte, o Options) (*prefetcher, *reader, *fakeTree, *fnode) {
	t.Helper()
	o.Tree = &fakeTree{}
	o = o.withDefaults()
	p := newPrefetcher(o)
	tree := o.Tree.(*fakeTree)
	fn := file("f", data)
	f, _ := tree.Open(context.Background(), fn.node())
	r := p.newReader(f, int64(len(data)))
	t.Cleanup(func() {
		r.close()
		if got := p.budget.Load(); got != o.ReadaheadMemory {
			t.Errorf("budget %d after close, want %d: a block leaked", got, o.ReadaheadMemory)
		}
	})
	return p, r, tree, fn
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i ^ i>>9 ^ i>>17)
	}
	return b
}

func TestReadaheadSequentialPrefetchesInParallel(t *testing.T) {
	data := pattern(20<<20 + 777)
	_, r, tree, _ := newTestReader(t, data, Options{ReadaheadBlock: 1 << 20})
	tree.readDelay.Store(int64(2 * time.Millisecond))
	buf := make([]byte, 128<<10)
	var got bytes.Buffer
	for off := int64(0); off < int64(len(data)); {
		n, err := r.read(context.Background(), buf[:min(len(buf), len(data)-int(off))], off)
		if err != nil && !errors.Is(err, io.EOF) {
			t.Fatal(err)
		}
		got.Write(buf[:n])
		off += int64(n)
	}
	if !bytes.Equal(got.Bytes(), data) {
		t.Fatal("sequential read through readahead returned wrong bytes")
	}
	// 160 kernel-sized reads; with readahead most are served from
	// blocks, and the blocks were read two at a time.
	if n := tree.reads.Load(); n > 60 {
		t.Errorf("%d File reads for 160 sequential reads: readahead not used", n)
	}
	if m := tree.maxIn.Load(); m < 2 {
		t.Errorf("at most %d File read at once: prefetch not parallel", m)
	}
}

func TestReadaheadLoneReadDoesNotPrefetch(t *testing.T) {
	_, r, tree, _ := newTestReader(t, pattern(8<<20), Options{})
	r.read(context.Background(), make([]byte, 4096), 0)
	time.Sleep(20 * time.Millisecond)
	if n := tree.reads.Load(); n != 1 {
		t.Errorf("a single header read caused %d File reads", n)
	}
}

// Random and sequential readers at once on one handle, as the kernel's
// concurrent reads and an mmap'd model loader produce: every byte must be
// right. Run with -race.
func TestReadaheadConcurrentReadersCorrect(t *testing.T) {
	data := pattern(9<<20 + 5)
	_, r, _, _ := newTestReader(t, data, Options{ReadaheadBlock: 256 << 10, ReadaheadMemory: 2 << 20})
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			buf := make([]byte, 200<<10)
			off := int64(0)
			for range 200 {
				if g%2 == 0 {
					off = rng.Int64N(int64(len(data)))
				}
				n := min(len(buf), 1+rng.IntN(len(buf)))
				end := min(off+int64(n), int64(len(data)))
				got, err := r.read(context.Background(), buf[:end-off], off)
				if err != nil && !errors.Is(err, io.EOF) {
					t.Error(err)
					return
				}
				if !bytes.Equal(buf[:got], data[off:off+int64(got)]) || int64(got) != end-off {
					t.Errorf("reader %d: wrong bytes at %d+%d (got %d)", g, off, end-off, got)
					return
				}
				off = end
				if off >= int64(len(data)) {
					off = 0
				}
			}
		}()
	}
	wg.Wait()
}

// A prefetch that fails must not answer a read: the read goes to the File
// and reports its own error (or succeeds, if the failure was transient).
func TestReadaheadFailedBlockFallsBack(t *testing.T) {
	data := pattern(6 << 20)
	_, r, _, fn := newTestReader(t, data, Options{})
	buf := make([]byte, 128<<10)
	r.read(context.Background(), buf, 0)
	fn.setReadErr(errCorrupt)
	r.read(context.Background(), buf, 128<<10) // starts prefetch, which fails
	time.Sleep(20 * time.Millisecond)
	if _, err := r.read(context.Background(), buf, 2<<20); !errors.Is(err, errCorrupt) {
		t.Errorf("read over a failed block = %v", err)
	}
	fn.setReadErr(nil)
	n, err := r.read(context.Background(), buf, 3<<20)
	if err != nil || !bytes.Equal(buf[:n], data[3<<20:3<<20+n]) {
		t.Errorf("read after the failure cleared = %d %v", n, err)
	}
}

func TestReadaheadCancelWhileWaiting(t *testing.T) {
	data := pattern(6 << 20)
	_, r, tree, _ := newTestReader(t, data, Options{ReadaheadWorkers: 1})
	tree.readDelay.Store(int64(100 * time.Millisecond))
	buf := make([]byte, 128<<10)
	r.read(context.Background(), buf, 0)
	r.read(context.Background(), buf, 128<<10) // starts blocks 1-4, one at a time
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(10 * time.Millisecond); cancel() }()
	start := time.Now()
	if _, err := r.read(ctx, buf, 4<<20); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled read = %v", err)
	}
	if d := time.Since(start); d > 40*time.Millisecond {
		t.Errorf("cancelled read waited %v for its block", d)
	}
}

func TestReadaheadMemoryBudget(t *testing.T) {
	data := pattern(16 << 20)
	p, r, _, _ := newTestReader(t, data, Options{ReadaheadMemory: 2 << 20})
	buf := make([]byte, 128<<10)
	for off := int64(0); off < 3<<20; off += int64(len(buf)) {
		r.read(context.Background(), buf, off)
		if b := p.budget.Load(); b < 0 {
			t.Fatalf("budget went negative: %d", b)
		}
	}
}
