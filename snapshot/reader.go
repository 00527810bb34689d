package snapshot

import (
	"context"
	"io"
	"sort"
	"sync"
	"sync/atomic"

	"citadelfs/index"
)

// FileReader reads one regular file of a snapshot. Reads fetch only the
// chunks covering the range, through the repository's LRU of decoded
// chunks; a read that continues where the last one ended prefetches the
// next chunks in the background, so a sequential reader finds them decoded.
// It is safe for concurrent use.
type FileReader struct {
	r    *Repository
	node *Node

	mu      sync.Mutex
	lastEnd int64
	// passed counts the leading content chunks a sequential reader has
	// left behind and that were dropped from the cache.
	passed int
}

// prefetchAhead is how many chunks a sequential read decodes ahead, so
// both cores decode while the kernel copies the current one: 3 read the
// 192 MiB bench model file at about 1050 MB/s with the packs cached,
// against about 1000 with 2; 4 was no better.
const prefetchAhead = 3

// remoteReadAhead is how many chunks ahead a sequential read of a
// repository in a store (S3) fetches: each is a ranged GET whose round
// trip, not the decoding, is what a reader waits for. 8 of them (up to 32 MiB
// of 4 MiB chunks, within the 64 MiB chunk cache) keep a reader from
// waiting on one round trip per chunk.
const remoteReadAhead = 8

// readAhead is how many chunks a sequential reader of r fetches ahead.
func (r *Repository) readAhead() int {
	if r.fetchesRemotely() {
		return remoteReadAhead
	}
	return prefetchAhead
}

// fetchesRemotely reports whether r's blobs come over the network (an
// S3 bucket), where a read waits on round trips, not on the CPU. An
// encrypted repository in a local directory is a store repository too
// (its index is a cache), but its reads are preads of a local disk, as
// a directory repository's are: with remoteReadAhead chunks ahead and as
// many workers on 2 cores, its reads decoded no faster and held more
// buffers at once, which the buffer pool could not recycle (every byte
// of a fresh buffer is a page fault).
func (r *Repository) fetchesRemotely() bool {
	return r.idx.IsRemote() && !index.IsDirectoryStore(r.idx.Store)
}

// seqSlack is how far from the end of the last read a read may start and
// still count as sequential.
const seqSlack = 2 << 20

// OpenFile returns a reader for a file node.
func (r *Repository) OpenFile(n *Node) *FileReader { return &FileReader{r: r, node: n, lastEnd: -1} }

// Size is the file's apparent size.
func (f *FileReader) Size() int64 { return f.node.Size }

// Extents lists the data regions (the content chunks merged).
func (f *FileReader) Extents() [][2]int64 {
	var out [][2]int64
	for _, c := range f.node.Content {
		if n := len(out); n > 0 && out[n-1][0]+out[n-1][1] == c.Offset {
			out[n-1][1] += c.Length
			continue
		}
		out = append(out, [2]int64{c.Offset, c.Length})
	}
	return out
}

// ReadAt reads len(p) bytes at off; holes read as zeros. A chunk that fails
// verification returns an error wrapping ErrCorrupt and no data. It is
// Slices with the views copied into p.
func (f *FileReader) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	size := f.node.Size
	if off >= size {
		return 0, io.EOF
	}
	views, release, err := f.Slices(ctx, off, len(p))
	if err != nil {
		return 0, err
	}
	n := 0
	for _, v := range views {
		n += copy(p[n:], v)
	}
	release()
	if off+int64(n) >= size {
		return n, io.EOF
	}
	return n, nil
}

// zeros backs the hole views Slices returns; nobody writes to it.
var zeros [1 << 20]byte

// Slices returns read-only views of the file's bytes in [off, off+n)
// (clipped at the end of the file) without copying them: views into the
// decoded chunks, and into a shared zero buffer for holes. The views stay
// valid, and their chunks' buffers out of recycling, until release is
// called, which the caller must do exactly once (it is a no-op after an
// error). Sequential reads prefetch like ReadAt. A chunk that fails
// verification returns an error wrapping ErrCorrupt and no views.
func (f *FileReader) Slices(ctx context.Context, off int64, n int) (views [][]byte, release func(), err error) {
	size := f.node.Size
	if off >= size || n <= 0 {
		return nil, func() {}, nil
	}
	end := min(off+int64(n), size)
	content := f.node.Content
	i := sort.Search(len(content), func(i int) bool { return content[i].Offset+content[i].Length > off })
	f.noteRead(i, off, end)
	var held []*chunk
	release = func() {
		for _, ch := range held {
			f.r.cache.release(ch)
		}
		held = nil
	}
	for pos := off; pos < end; {
		if i >= len(content) || content[i].Offset > pos {
			hole := end
			if i < len(content) {
				hole = min(hole, content[i].Offset)
			}
			for pos < hole {
				k := min(hole-pos, int64(len(zeros)))
				views = append(views, zeros[:k])
				pos += k
			}
			continue
		}
		c := content[i]
		ch, err := f.r.loadShared(ctx, c.ID)
		if err != nil {
			release()
			return nil, func() {}, err
		}
		held = append(held, ch)
		if int64(len(ch.data)) != c.Length {
			release()
			return nil, func() {}, &corruptLength{id: c.ID}
		}
		v := ch.data[pos-c.Offset : min(end, c.Offset+c.Length)-c.Offset]
		views = append(views, v)
		pos += int64(len(v))
		i++
	}
	return views, release, nil
}

type corruptLength struct{ id index.ID }

func (e *corruptLength) Error() string {
	return "snapshot: chunk " + e.id.Short() + " has the wrong length: corrupt data"
}
func (e *corruptLength) Unwrap() error { return ErrCorrupt }

// loadShared loads a chunk through the cache, joining a load already in
// flight for the same chunk (a prefetch, or another reader). The chunk
// comes with a reference the caller must release (cache.release) once it
// has copied what it needs: until then its buffer is not recycled.
func (r *Repository) loadShared(ctx context.Context, id index.ID) (*chunk, error) {
	if ch, ok := r.cache.acquire(id); ok {
		return ch, nil
	}
	r.inflightMu.Lock()
	if r.inflight == nil {
		r.inflight = map[index.ID]*inflightLoad{}
	}
	if l, ok := r.inflight[id]; ok {
		l.waiters++ // the loader takes a reference for us
		r.inflightMu.Unlock()
		select {
		case <-l.done:
			return l.ch, l.err
		case <-ctx.Done():
			r.inflightMu.Lock()
			if !l.finished {
				l.waiters--
				r.inflightMu.Unlock()
				return nil, ctx.Err()
			}
			r.inflightMu.Unlock()
			<-l.done // closed right after finished is set
			if l.ch != nil {
				r.cache.release(l.ch)
			}
			return nil, ctx.Err()
		}
	}
	// Cached between the lookup above and taking inflightMu?
	if ch, ok := r.cache.acquire(id); ok {
		r.inflightMu.Unlock()
		return ch, nil
	}
	l := &inflightLoad{done: make(chan struct{})}
	r.inflight[id] = l
	r.inflightMu.Unlock()
	// The load itself is not bound to ctx: other readers may be waiting on
	// it, and a finished chunk is useful to them even if this caller left.
	var ch *chunk
	plain, err := r.loadPlain(id, true)
	if err == nil {
		ch = &chunk{data: plain, refs: 1} // ours
		r.cache.putChunk(id, ch)
	}
	r.inflightMu.Lock()
	delete(r.inflight, id)
	l.finished = true
	l.ch, l.err = ch, err
	if ch != nil && l.waiters > 0 {
		r.cache.addRefs(ch, l.waiters)
	}
	r.inflightMu.Unlock()
	close(l.done)
	return ch, err
}

type inflightLoad struct {
	done     chan struct{}
	waiters  int  // under inflightMu
	finished bool // under inflightMu
	ch       *chunk
	err      error
}

// prefetch decodes a chunk into the cache in the background. A fixed set
// of workers (2 x Options.Workers, started at the first prefetch; for a
// repository in a store remoteReadAhead, as they mostly wait on the
// network) takes the chunks from a short queue; when the queue is full the
// chunk is skipped, so a fast sequential reader cannot pile up work, and
// the read that needs it decodes it itself. Long-lived workers keep their
// grown stacks: a goroutine per chunk spent 4% of a read's CPU growing one.
func (r *Repository) prefetch(id index.ID) {
	if r.cache.has(id) {
		return
	}
	r.inflightMu.Lock()
	_, busy := r.inflight[id]
	r.inflightMu.Unlock()
	if busy {
		return
	}
	p := &r.prefetcher
	p.start.Do(func() {
		queue, workers := r.opts.Workers, 2*r.opts.Workers
		if r.fetchesRemotely() {
			queue, workers = remoteReadAhead, max(workers, remoteReadAhead)
		}
		p.queue = make(chan index.ID, queue)
		for range workers {
			p.workers.Add(1)
			go r.prefetchWorker()
		}
	})
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return
	}
	// Queued already (every read of a sequential run asks for the same
	// chunks ahead until a worker starts them): asked twice, the queue
	// filled with copies, and the chunks further ahead found it full,
	// which held a reader of a remote repository to about half its
	// fetches in flight.
	p.queuedMu.Lock()
	if p.queued[id] {
		p.queuedMu.Unlock()
		return
	}
	if p.queued == nil {
		p.queued = map[index.ID]bool{}
	}
	p.queued[id] = true
	p.queuedMu.Unlock()
	p.pending.Add(1)
	select {
	case p.queue <- id:
	default:
		p.unqueue(id)
		p.skipped.Add(1)
		p.pending.Done()
	}
}

func (p *prefetcher) unqueue(id index.ID) {
	p.queuedMu.Lock()
	delete(p.queued, id)
	p.queuedMu.Unlock()
}

func (r *Repository) prefetchWorker() {
	p := &r.prefetcher
	defer p.workers.Done()
	for id := range p.queue {
		// Off the queued set before the load registers as in flight:
		// in between, a second prefetch of it only joins the load.
		p.unqueue(id)
		if ch, err := r.loadShared(context.Background(), id); err == nil {
			r.cache.release(ch)
		}
		p.pending.Done()
	}
}

// prefetcher is the repository's background chunk decoding.
type prefetcher struct {
	start   sync.Once
	queue   chan index.ID
	workers sync.WaitGroup
	pending sync.WaitGroup // chunks queued or decoding

	mu     sync.RWMutex // closed, and sends on queue
	closed bool

	queuedMu sync.Mutex
	queued   map[index.ID]bool // in queue, not yet taken by a worker
	// skipped counts chunks not queued because the queue was full.
	skipped atomic.Int64
}

// stopPrefetch stops the workers and waits for them (Close: they use the
// index).
func (r *Repository) stopPrefetch() {
	p := &r.prefetcher
	p.start.Do(func() {}) // never start after this
	p.mu.Lock()
	if !p.closed && p.queue != nil {
		close(p.queue)
	}
	p.closed = true
	p.mu.Unlock()
	p.workers.Wait()
}

// noteRead records a read of [off, end), which starts in content chunk i,
// and when it continues a sequential run starts decoding the chunks after
// it, so they decode on the other core while this read waits for its own.
func (f *FileReader) noteRead(i int, off, end int64) {
	content := f.node.Content
	f.mu.Lock()
	// Sequential: the read starts near where the last one ended (the
	// kernel has several reads in flight, which may arrive out of order).
	sequential := f.lastEnd >= 0 && off >= f.lastEnd-seqSlack && off <= f.lastEnd+seqSlack
	f.lastEnd = end
	// A sequential reader will not come back for chunks it passed by
	// more than the slack (the kernel keeps what it read in its page
	// cache): drop them, so their buffers are reused for the chunks ahead
	// instead of the stream filling the whole cache with fresh memory.
	var behind []index.ID
	if sequential {
		for f.passed < len(content) && content[f.passed].Offset+content[f.passed].Length <= off-seqSlack {
			behind = append(behind, content[f.passed].ID)
			f.passed++
		}
	}
	f.mu.Unlock()
	if !sequential {
		return
	}
	for _, id := range behind {
		f.r.cache.drop(id)
	}
	j := i
	for j < len(content) && content[j].Offset < end {
		j++
	}
	for k, ahead := j, f.r.readAhead(); k < len(content) && k < j+ahead; k++ {
		f.r.prefetch(content[k].ID)
	}
}
