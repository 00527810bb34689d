package fs

import (
	"context"
	"sync"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// fileHandle is one open(2) of a snapshot file.
type fileHandle struct {
	m    *mountFS
	leaf *leafNode
	f    File

	closeOnce sync.Once
}

var (
	_ gofs.FileReader   = (*fileHandle)(nil)
	_ gofs.FileLseeker  = (*fileHandle)(nil)
	_ gofs.FileReleaser = (*fileHandle)(nil)
	_ gofs.FileWriter   = (*fileHandle)(nil)
	_ gofs.FileFlusher  = (*fileHandle)(nil)
)

func (m *mountFS) newFileHandle(f File, l *leafNode) *fileHandle {
	h := &fileHandle{m: m, leaf: l, f: f}
	m.openMu.Lock()
	m.open[h] = struct{}{}
	m.openMu.Unlock()
	return h
}

// closeAll closes the handles the kernel never released: it sends RELEASE
// asynchronously, and an unmount right after a close can drop it. The
// Files may hold pack files open, which must be closed before the
// repository is.
func (m *mountFS) closeAll() {
	m.openMu.Lock()
	hs := make([]*fileHandle, 0, len(m.open))
	for h := range m.open {
		hs = append(hs, h)
	}
	m.openMu.Unlock()
	for _, h := range hs {
		h.Release(context.Background())
	}
}

// Read serves [off, off+len(dest)) clipped to the file's size. Short reads
// happen only at the end of the file: the kernel treats a short read as EOF.
func (h *fileHandle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	size := h.leaf.node.Size
	if off < 0 {
		return nil, syscall.EINVAL
	}
	if off >= size {
		return fuse.ReadResultData(nil), 0
	}
	if rest := size - off; int64(len(dest)) > rest {
		dest = dest[:rest]
	}
	res, err := sliceResult(ctx, h.f, len(dest), off)
	if err != nil {
		return nil, h.m.errno(ctx, "read", inodePath(&h.leaf.Inode), err)
	}
	return res, 0
}

// Lseek implements SEEK_DATA and SEEK_HOLE from the File's data extents,
// so cp --sparse=auto, cp -a and rsync -S copy the data and skip the holes.
// The kernel handles SEEK_SET/CUR/END itself.
func (h *fileHandle) Lseek(ctx context.Context, off uint64, whence uint32) (uint64, syscall.Errno) {
	return seekExtents(h.f.DataExtents(), h.leaf.node.Size, off, whence)
}

// Release closes the File once the kernel has dropped the last reference.
// The kernel ignores the result, so a close error is only logged.
func (h *fileHandle) Release(ctx context.Context) syscall.Errno {
	h.closeOnce.Do(func() {
		h.m.openMu.Lock()
		delete(h.m.open, h)
		h.m.openMu.Unlock()
		if err := h.f.Close(); err != nil {
			h.m.errno(context.Background(), "close", inodePath(&h.leaf.Inode), err)
		}
	})
	return 0
}

// viewResult is a read answered with a File's views: go-fuse writes them
// to the kernel with one writev (Slices) and then calls Done, which hands
// them back.
type viewResult struct {
	views   [][]byte
	size    int
	release func()
	once    sync.Once
}

func sliceResult(ctx context.Context, f File, n int, off int64) (fuse.ReadResult, error) {
	views, release, err := f.Slices(ctx, off, n)
	if err != nil {
		return nil, err
	}
	res := &viewResult{views: views, release: release}
	for _, v := range views {
		res.size += len(v)
	}
	return res, nil
}

func (r *viewResult) Size() int                       { return r.size }
func (r *viewResult) Slices() ([][]byte, fuse.Status) { return r.views, fuse.OK }
func (r *viewResult) Done()                           { r.once.Do(r.release) }
func (r *viewResult) Bytes(buf []byte) ([]byte, fuse.Status) {
	if len(buf) < r.size {
		buf = make([]byte, r.size)
	}
	n := 0
	for _, v := range r.views {
		n += copy(buf[n:], v)
	}
	return buf[:n], fuse.OK
}

// Flush answers ENOSYS, which the kernel takes as "this file system needs
// no FLUSH" and then stops sending it: close(2) of a read-only file saves
// a round trip (cp -a closes every file it copies).
func (h *fileHandle) Flush(context.Context) syscall.Errno { return syscall.ENOSYS }

func (h *fileHandle) Write(context.Context, []byte, int64) (uint32, syscall.Errno) {
	return 0, syscall.EROFS
}

const (
	seekData = 3 // SEEK_DATA, as in lseek(2)
	seekHole = 4 // SEEK_HOLE
)

// seekExtents answers SEEK_DATA/SEEK_HOLE for a file of the given size
// whose data lies in extents (sorted, not overlapping). As lseek(2) says:
// an offset at or past the end is ENXIO; SEEK_DATA with no data after off
// is ENXIO; the end of the file counts as a hole.
func seekExtents(extents []Extent, size int64, off uint64, whence uint32) (uint64, syscall.Errno) {
	if off >= uint64(max(size, 0)) {
		return 0, syscall.ENXIO
	}
	o := int64(off)
	switch whence {
	case seekData:
		for _, e := range extents {
			end := min(e.Offset+e.Length, size)
			if e.Length <= 0 || end <= o {
				continue
			}
			return uint64(max(e.Offset, o)), 0
		}
		return 0, syscall.ENXIO
	case seekHole:
		pos := o
		for _, e := range extents {
			if e.Length <= 0 || e.Offset+e.Length <= pos {
				continue
			}
			if e.Offset > pos {
				break // pos is in a hole before e
			}
			pos = e.Offset + e.Length // pos was in e; continue after it
		}
		return uint64(min(pos, size)), 0
	}
	return 0, syscall.EINVAL
}
