package snapshot

import (
	"context"
	"io"
	"sort"
	"sync"

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
}

// prefetchAhead is how many chunks a sequential read decodes ahead: two
// keeps both cores busy decoding while the kernel copies the current one.
const prefetchAhead = 2

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
// verification returns an error wrapping ErrCorrupt and no data.
func (f *FileReader) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	size := f.node.Size
	if off >= size {
		return 0, io.EOF
	}
	if int64(len(p)) > size-off {
		p = p[:size-off]
	}
	content := f.node.Content
	i := sort.Search(len(content), func(i int) bool { return content[i].Offset+content[i].Length > off })
	f.mu.Lock()
	sequential := off == f.lastEnd
	f.lastEnd = off + int64(len(p))
	f.mu.Unlock()
	n := 0
	for n < len(p) {
		pos := off + int64(n)
		if i >= len(content) || content[i].Offset > pos {
			// A hole up to the next chunk (or the end).
			end := size
			if i < len(content) {
				end = content[i].Offset
			}
			k := int(min(end-pos, int64(len(p)-n)))
			clear(p[n : n+k])
			n += k
			continue
		}
		c := content[i]
		data, err := f.r.loadShared(ctx, c.ID)
		if err != nil {
			return n, err
		}
		if int64(len(data)) != c.Length {
			return n, &corruptLength{id: c.ID}
		}
		n += copy(p[n:], data[pos-c.Offset:])
		i++
	}
	if sequential {
		for j := i; j < len(content) && j < i+prefetchAhead; j++ {
			f.r.prefetch(content[j].ID)
		}
	}
	if off+int64(n) >= size {
		return n, io.EOF
	}
	return n, nil
}

type corruptLength struct{ id index.ID }

func (e *corruptLength) Error() string {
	return "snapshot: chunk " + e.id.Short() + " has the wrong length: corrupt data"
}
func (e *corruptLength) Unwrap() error { return ErrCorrupt }

// loadShared loads a chunk through the cache, joining a load already in
// flight for the same chunk (a prefetch, or another reader).
func (r *Repository) loadShared(ctx context.Context, id index.ID) ([]byte, error) {
	if b, ok := r.cache.get(id); ok {
		return b, nil
	}
	r.inflightMu.Lock()
	if r.inflight == nil {
		r.inflight = map[index.ID]*inflightLoad{}
	}
	if l, ok := r.inflight[id]; ok {
		r.inflightMu.Unlock()
		select {
		case <-l.done:
			if l.err != nil {
				return nil, l.err
			}
			return l.data, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	l := &inflightLoad{done: make(chan struct{})}
	r.inflight[id] = l
	r.inflightMu.Unlock()
	// The load itself is not bound to ctx: other readers may be waiting on
	// it, and a finished chunk is useful to them even if this caller left.
	l.data, l.err = r.LoadBlob(context.Background(), id, true)
	r.inflightMu.Lock()
	delete(r.inflight, id)
	r.inflightMu.Unlock()
	close(l.done)
	return l.data, l.err
}

type inflightLoad struct {
	done chan struct{}
	data []byte
	err  error
}

// prefetch decodes a chunk into the cache in the background, at most
// prefetchLimit at a time so a fast sequential reader cannot pile up work.
func (r *Repository) prefetch(id index.ID) {
	if _, ok := r.cache.get(id); ok {
		return
	}
	r.inflightMu.Lock()
	_, busy := r.inflight[id]
	r.inflightMu.Unlock()
	if busy {
		return
	}
	select {
	case r.prefetchSem <- struct{}{}:
		go func() {
			defer func() { <-r.prefetchSem }()
			r.loadShared(context.Background(), id)
		}()
	default:
	}
}
