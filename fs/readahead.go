package fs

import (
	"context"

	"errors"
	"fmt"
	"github.com/hanwen/go-fuse/v2/fuse"
	"io"
	"sync"
	"sync/atomic"
)

// Readahead. The kernel already reads ahead through the page cache, but it
// asks for one window at a time and waits for the read that triggers the
// next; decompressing a chunk takes longer than copying it, so a single
// stream would use one core. When a handle reads sequentially, the reader
// below fetches the next ReadaheadDepth blocks of the file on the mount's
// ReadaheadWorkers goroutines, and the kernel's reads are then answered
// from memory while later chunks decompress.
//
// Blocks are aligned to ReadaheadBlock; the block under the current read is
// read straight from the File (the kernel is waiting for it), prefetch only
// ever works ahead. A block that fails is dropped, and the read that needs
// it goes to the File itself, so errors are reported (and logged) by the
// read that hits them and never come from a guess.

// prefetcher is shared by all handles of a mount and bounds the goroutines
// and memory that reading ahead may use.
type prefetcher struct {
	block int64
	depth int
	sem   chan struct{}
	// budget is how many bytes blocks may still take.
	budget atomic.Int64
	// pool recycles block buffers (all of size block).
	pool sync.Pool
}

func newPrefetcher(o Options) *prefetcher {
	p := &prefetcher{block: o.ReadaheadBlock, depth: o.ReadaheadDepth, sem: make(chan struct{}, o.ReadaheadWorkers)}
	p.budget.Store(o.ReadaheadMemory)
	p.pool.New = func() any { b := make([]byte, p.block); return &b }
	return p
}

// reader is the readahead state of one open file.
type reader struct {
	p    *prefetcher
	f    File
	size int64

	ctx    context.Context // cancelled by close; bounds the prefetches
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	next   int64 // where a sequential reader reads next
	streak int   // sequential reads in a row
	blocks map[int64]*block
	held   map[*blockResult]struct{} // results not Done yet
	closed bool
}

// block is one prefetched ReadaheadBlock of the file.
type block struct {
	done    chan struct{} // closed when data/err are set
	started bool          // a goroutine has taken it (under reader.mu)
	buf     *[]byte       // pooled buffer, nil after failure
	data    []byte        // the block's bytes (shorter at the end of the file)
	err     error

	// refs counts readers copying out of data, plus one while the block
	// is in the map; the buffer returns to the pool at zero, so a reader
	// never copies from a buffer another block reuses.
	refs int
}

func (p *prefetcher) newReader(f File, size int64) *reader {
	ctx, cancel := context.WithCancel(context.Background())
	return &reader{p: p, f: f, size: size, ctx: ctx, cancel: cancel, blocks: map[int64]*block{}, held: map[*blockResult]struct{}{}}
}

// read fills p at off, like File.ReadAt. p must not reach past the end of
// the file by more than the last block.
func (r *reader) read(ctx context.Context, p []byte, off int64) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	plan := r.plan(p, off)
	if plan == nil {
		return r.f.ReadAt(ctx, p, off)
	}
	n, ok := r.copyFrom(ctx, plan, p, off)
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if !ok {
		// A block failed: read directly, so the error (if it is one)
		// is this read's own.
		return r.f.ReadAt(ctx, p, off)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// readResult answers a read like read, but when prefetched blocks cover
// it, without copying them: the result hands the blocks' bytes to the
// kernel write and holds references that keep their buffers from being
// reused until go-fuse calls Done after the write. p is used only when
// the read goes to the File.
func (r *reader) readResult(ctx context.Context, p []byte, off int64) (fuse.ReadResult, error) {
	if len(p) == 0 {
		return fuse.ReadResultData(nil), nil
	}
	if plan := r.plan(p, off); plan != nil {
		if res, ok := r.sliceFrom(ctx, plan, len(p), off); ok {
			return res, nil
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		// A block failed: read directly, so the error (if it is one) is
		// this read's own.
	}
	n, err := r.f.ReadAt(ctx, p, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return fuse.ReadResultData(p[:n]), nil
}

// plan notes the read for sequential detection, starts readahead, and
// returns the blocks covering [off, off+len(p)) with a reference taken on
// each, or nil if any of them is not in the map.
func (r *reader) plan(p []byte, off int64) []*block {
	bs := r.p.block
	end := off + int64(len(p))
	first, last := off/bs, (end-1)/bs

	r.mu.Lock()
	defer r.mu.Unlock()
	// Reads are sequential when they start where the last one ended. The
	// kernel has several reads in flight and they may arrive out of
	// order, so "near" counts too.
	if off >= r.next-bs && off <= r.next+bs {
		r.streak++
	} else {
		r.streak = 0
	}
	r.next = end
	// The second sequential read in a row starts readahead: a lone read
	// at offset 0 (file(1), a header probe) should not fetch megabytes.
	if r.streak >= 2 && r.size > bs && !r.closed {
		for i := last + 1; i <= last+int64(r.p.depth) && i*bs < r.size; i++ {
			r.startLocked(i)
		}
	}
	r.evictLocked(first-1, last+int64(r.p.depth))
	plan := make([]*block, 0, last-first+1)
	for i := first; i <= last; i++ {
		b := r.blocks[i]
		if b == nil {
			return nil
		}
		plan = append(plan, b)
	}
	for _, b := range plan {
		b.refs++
	}
	return plan
}

// wait waits for the plan's blocks; ok is false if one failed or ctx
// ended.
func (r *reader) wait(ctx context.Context, plan []*block) bool {
	for _, b := range plan {
		select {
		case <-b.done:
		case <-ctx.Done():
			return false
		}
	}
	for _, b := range plan {
		if b.err != nil {
			return false
		}
	}
	return true
}

func (r *reader) unref(plan []*block) {
	r.mu.Lock()
	for _, b := range plan {
		r.unrefLocked(b)
	}
	r.mu.Unlock()
}

// sliceFrom returns a result over the plan's bytes covering
// [off, off+want), which keeps the plan's references (ok), or drops them
// (not ok: a block failed or ctx ended).
func (r *reader) sliceFrom(ctx context.Context, plan []*block, want int, off int64) (fuse.ReadResult, bool) {
	if !r.wait(ctx, plan) {
		r.unref(plan)
		return nil, false
	}
	res := &blockResult{r: r, plan: plan, slices: make([][]byte, 0, len(plan))}
	bs := r.p.block
	for _, b := range plan {
		if res.size == want {
			break
		}
		pos := off + int64(res.size)
		in := pos - (pos/bs)*bs
		if in >= int64(len(b.data)) {
			break // end of file
		}
		s := b.data[in:min(int64(len(b.data)), in+int64(want-res.size))]
		res.slices = append(res.slices, s)
		res.size += len(s)
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		r.unref(plan)
		return nil, false
	}
	r.held[res] = struct{}{}
	r.mu.Unlock()
	return res, true
}

// blockResult is a read answered from prefetched blocks. go-fuse writes
// Slices to the kernel (one writev, no copy; Size must be exact) and then
// calls Done, which drops the block references. Results not Done by the
// time the file is closed are released by close (see there).
type blockResult struct {
	r      *reader
	plan   []*block
	slices [][]byte
	size   int
	done   bool // under r.mu
}

func (b *blockResult) Size() int { return b.size }

// Slices is go-fuse's zero-copy interface for results it writes itself.
func (b *blockResult) Slices() ([][]byte, fuse.Status) { return b.slices, fuse.OK }

func (b *blockResult) Bytes(buf []byte) ([]byte, fuse.Status) {
	return concat(buf, b.slices, b.size), fuse.OK
}

func (b *blockResult) Done() {
	r := b.r
	r.mu.Lock()
	defer r.mu.Unlock()
	if b.done {
		return
	}
	b.done = true
	delete(r.held, b)
	for _, bl := range b.plan {
		r.unrefLocked(bl)
	}
}

// copyFrom copies the blocks' bytes covering [off, off+len(p)) into p and
// drops the references plan took. ok is false if a block failed.
func (r *reader) copyFrom(ctx context.Context, plan []*block, p []byte, off int64) (n int, ok bool) {
	defer r.unref(plan)
	if !r.wait(ctx, plan) {
		return 0, false
	}
	bs := r.p.block
	for _, b := range plan {
		if n == len(p) {
			break
		}
		pos := off + int64(n)
		in := pos - (pos/bs)*bs
		if in >= int64(len(b.data)) {
			break // end of file
		}
		n += copy(p[n:], b.data[in:])
	}
	return n, true
}

// startLocked starts fetching block i unless it is present or the memory
// budget is spent.
func (r *reader) startLocked(i int64) {
	if _, ok := r.blocks[i]; ok {
		return
	}
	if r.p.budget.Add(-r.p.block) < 0 {
		r.p.budget.Add(r.p.block)
		return
	}
	b := &block{done: make(chan struct{}), refs: 1}
	r.blocks[i] = b
	r.wg.Add(1)
	go r.fetch()
}

// fetch waits for a worker slot, then fetches the nearest block not yet
// started. Goroutines get slots in no particular order, so each picks its
// block only once it runs: the reader needs the nearest block first.
func (r *reader) fetch() {
	defer r.wg.Done()
	var err error
	select {
	case r.p.sem <- struct{}{}:
		defer func() { <-r.p.sem }()
	case <-r.ctx.Done():
		err = r.ctx.Err()
	}
	r.mu.Lock()
	i, b := int64(-1), (*block)(nil)
	for j, c := range r.blocks {
		if !c.started && (b == nil || j < i) {
			i, b = j, c
		}
	}
	if b != nil {
		b.started = true
	}
	r.mu.Unlock()
	if b == nil {
		return // cannot happen: one goroutine per unstarted block
	}
	if err != nil {
		r.finish(i, b, nil, 0, err)
		return
	}
	buf := r.p.pool.Get().(*[]byte)
	off := i * r.p.block
	want := min(r.p.block, r.size-off)
	n, err := r.f.ReadAt(r.ctx, (*buf)[:want], off)
	if errors.Is(err, io.EOF) && int64(n) == want {
		err = nil
	}
	if err == nil && int64(n) < want {
		err = fmt.Errorf("fs: short read ahead at %d: %d of %d bytes", off, n, want)
	}
	r.finish(i, b, buf, n, err)
}

// finish publishes a fetched block. A failed block leaves the map at once,
// so the next read of its range goes to the File.
func (r *reader) finish(i int64, b *block, buf *[]byte, n int, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		if buf != nil {
			r.p.pool.Put(buf)
		}
		r.p.budget.Add(r.p.block)
		b.err = err
		if r.blocks[i] == b {
			delete(r.blocks, i)
			b.refs--
		}
		close(b.done)
		return
	}
	b.buf, b.data = buf, (*buf)[:n]
	close(b.done)
	if r.blocks[i] != b {
		// Evicted while in flight: evictLocked already dropped the
		// map's reference, and waiters (if any) hold their own.
		r.releaseIfUnused(b)
	}
}

// evictLocked drops finished blocks outside [lo, hi]: a sequential reader
// has passed them, or a random reader jumped away.
func (r *reader) evictLocked(lo, hi int64) {
	for i, b := range r.blocks {
		if i >= lo && i <= hi {
			continue
		}
		select {
		case <-b.done:
		default:
			continue // in flight; dropped once it lands outside the window
		}
		delete(r.blocks, i)
		r.unrefLocked(b)
	}
}

func (r *reader) unrefLocked(b *block) {
	b.refs--
	r.releaseIfUnused(b)
}

// releaseIfUnused returns a finished block's buffer and budget once nobody
// holds it.
func (r *reader) releaseIfUnused(b *block) {
	if b.refs > 0 || b.buf == nil {
		return
	}
	select {
	case <-b.done:
	default:
		return
	}
	r.p.pool.Put(b.buf)
	b.buf, b.data = nil, nil
	r.p.budget.Add(r.p.block)
}

// close stops prefetching, waits for fetches in flight (they use the File,
// which the caller closes next) and frees every block.
func (r *reader) close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.cancel()
	r.wg.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, b := range r.blocks {
		delete(r.blocks, i)
		r.unrefLocked(b)
	}
	// Results not Done yet (a kernel write in flight, or a caller that
	// never calls Done): their blocks' buffers go to the garbage collector
	// instead of the pool, and their budget back now.
	for res := range r.held {
		delete(r.held, res)
		res.done = true
		for _, b := range res.plan {
			b.refs--
			if b.buf != nil {
				b.buf = nil
				r.p.budget.Add(r.p.block)
			}
		}
	}
}
