package fs

import (
	"context"
	"fmt"
	iofs "io/fs"
	"slices"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// status/ holds documents rendered when they are opened. Each open renders
// the whole document once into its handle, and reads are served from that
// buffer with FOPEN_DIRECT_IO: the kernel neither caches the pages (the next
// open must see fresh numbers) nor trusts st_size (which is 0, as the size
// is unknown until rendered), and `cat` reads one consistent document even
// while the numbers change.

const modeStatusFile = sIFREG | 0o444

// statusDirNode is the status/ folder.
type statusDirNode struct {
	gofs.Inode
	readOnly
	m *mountFS
}

var (
	_ gofs.NodeLookuper  = (*statusDirNode)(nil)
	_ gofs.NodeReaddirer = (*statusDirNode)(nil)
	_ gofs.NodeGetattrer = (*statusDirNode)(nil)
)

func (d *statusDirNode) has(name string) bool {
	return slices.Contains(d.m.opts.Status.StatusFiles(), name)
}

func (d *statusDirNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if !d.has(name) {
		return nil, syscall.ENOENT
	}
	id := virtualIdentity(sIFREG, statusDir+"/"+name)
	ch := d.NewInode(ctx, &statusFileNode{m: d.m, name: name}, id)
	fillVirtualAttr(&out.Attr, id.Ino, modeStatusFile, 1, d.m.started)
	out.SetAttrTimeout(d.m.opts.TopAttrTimeout)
	return ch, 0
}

func (d *statusDirNode) Readdir(ctx context.Context) (gofs.DirStream, syscall.Errno) {
	names := slices.Clone(d.m.opts.Status.StatusFiles())
	slices.Sort(names)
	names = slices.Compact(names)
	entries := make([]fuse.DirEntry, 0, len(names))
	for _, n := range names {
		if validName(n) {
			entries = append(entries, fuse.DirEntry{Name: n, Mode: sIFREG, Ino: virtualIdentity(sIFREG, statusDir+"/"+n).Ino})
		}
	}
	return gofs.NewListDirStream(entries), 0
}

func (d *statusDirNode) Getattr(ctx context.Context, f gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	fillVirtualAttr(&out.Attr, 0, modeDir, 2, d.m.started)
	out.SetTimeout(d.m.opts.TopAttrTimeout)
	return 0
}

// statusFileNode is one file under status/.
type statusFileNode struct {
	gofs.Inode
	readOnly
	m    *mountFS
	name string
}

var (
	_ gofs.NodeOpener    = (*statusFileNode)(nil)
	_ gofs.NodeGetattrer = (*statusFileNode)(nil)
)

func (f *statusFileNode) Getattr(ctx context.Context, fh gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	fillVirtualAttr(&out.Attr, 0, modeStatusFile, 1, f.m.started)
	out.SetTimeout(f.m.opts.TopAttrTimeout)
	return 0
}

func (f *statusFileNode) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	if writeAccess(flags) {
		return nil, 0, syscall.EROFS
	}
	data, err := f.m.opts.Status.Render(ctx, f.name)
	if err != nil {
		return nil, 0, f.m.errno(ctx, "render", "/"+statusDir+"/"+f.name, err)
	}
	return &statusHandle{data: data}, fuse.FOPEN_DIRECT_IO, 0
}

// statusHandle is one open status file: the document rendered at open.
type statusHandle struct{ data []byte }

var (
	_ gofs.FileReader  = (*statusHandle)(nil)
	_ gofs.FileWriter  = (*statusHandle)(nil)
	_ gofs.FileFlusher = (*statusHandle)(nil)
)

func (h *statusHandle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if off < 0 {
		return nil, syscall.EINVAL
	}
	if off >= int64(len(h.data)) {
		return fuse.ReadResultData(nil), 0
	}
	end := min(off+int64(len(dest)), int64(len(h.data)))
	return fuse.ReadResultData(h.data[off:end]), 0
}

func (h *statusHandle) Write(context.Context, []byte, int64) (uint32, syscall.Errno) {
	return 0, syscall.EROFS
}

// MergeStatus combines status sources into one, so the repository's files
// (snapshots, backup, repo) and the monitor's (alerts, metrics, health)
// share status/. Nil sources are skipped; when two list the same name, the
// first one renders it.
func MergeStatus(srcs ...StatusSource) StatusSource {
	var m mergedStatus
	for _, s := range srcs {
		if s != nil {
			m = append(m, s)
		}
	}
	return m
}

type mergedStatus []StatusSource

func (m mergedStatus) StatusFiles() []string {
	var names []string
	for _, s := range m {
		for _, n := range s.StatusFiles() {
			if !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
	}
	return names
}

func (m mergedStatus) Render(ctx context.Context, name string) ([]byte, error) {
	for _, s := range m {
		if slices.Contains(s.StatusFiles(), name) {
			return s.Render(ctx, name)
		}
	}
	return nil, fmt.Errorf("fs: status file %q: %w", name, iofs.ErrNotExist)
}

// Flush: see fileHandle.Flush.
func (h *statusHandle) Flush(context.Context) syscall.Errno { return syscall.ENOSYS }
