package fs

import (
	"context"
	"errors"
	iofs "io/fs"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// errno is the one place where an error becomes a FUSE status: not found →
// ENOENT, cancelled → EINTR, an errno the Tree chose → that errno, anything
// else (corrupt chunk, I/O error) → EIO. Only EIO-class failures are logged,
// once, here, with the path in the mount: the kernel passes the application
// nothing but the number, so the log is where the operator finds which file
// and why.
func (m *mountFS) errno(ctx context.Context, op, path string, err error) syscall.Errno {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, iofs.ErrNotExist):
		return syscall.ENOENT
	case errors.Is(err, context.Canceled), ctx.Err() != nil && errors.Is(err, ctx.Err()):
		return syscall.EINTR
	}
	var en syscall.Errno
	if errors.As(err, &en) && en != 0 && en != syscall.EIO {
		return en
	}
	m.opts.Logger.Error("fs: "+op+" failed", "path", path, "err", err)
	if m.opts.OnError != nil {
		m.opts.OnError(path, err)
	}
	return syscall.EIO
}

// inodePath is the path of an inode inside the mount, for log lines.
func inodePath(n *gofs.Inode) string {
	return "/" + n.Path(nil)
}

// readOnly answers every request that would change the tree with EROFS.
// The kernel already refuses writes on a read-only mount before they reach
// us; this makes the answer the same when a request gets here anyway (an
// old kernel, a remount, a test calling the node directly), instead of
// go-fuse's defaults, some of which report success.
type readOnly struct{}

var (
	_ gofs.NodeSetattrer      = readOnly{}
	_ gofs.NodeSetxattrer     = readOnly{}
	_ gofs.NodeRemovexattrer  = readOnly{}
	_ gofs.NodeCreater        = readOnly{}
	_ gofs.NodeMkdirer        = readOnly{}
	_ gofs.NodeMknoder        = readOnly{}
	_ gofs.NodeLinker         = readOnly{}
	_ gofs.NodeSymlinker      = readOnly{}
	_ gofs.NodeUnlinker       = readOnly{}
	_ gofs.NodeRmdirer        = readOnly{}
	_ gofs.NodeRenamer        = readOnly{}
	_ gofs.NodeTmpfiler       = readOnly{}
	_ gofs.NodeAllocater      = readOnly{}
	_ gofs.NodeCopyFileRanger = readOnly{}
	_ gofs.NodeStatfser       = readOnly{}
)

func (readOnly) Setattr(context.Context, gofs.FileHandle, *fuse.SetAttrIn, *fuse.AttrOut) syscall.Errno {
	return syscall.EROFS
}

func (readOnly) Setxattr(context.Context, string, []byte, uint32) syscall.Errno {
	return syscall.EROFS
}

func (readOnly) Removexattr(context.Context, string) syscall.Errno { return syscall.EROFS }

func (readOnly) Create(context.Context, string, uint32, uint32, *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, syscall.EROFS
}

func (readOnly) Mkdir(context.Context, string, uint32, *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}

func (readOnly) Mknod(context.Context, string, uint32, uint32, *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}

func (readOnly) Link(context.Context, gofs.InodeEmbedder, string, *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}

func (readOnly) Symlink(context.Context, string, string, *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}

func (readOnly) Unlink(context.Context, string) syscall.Errno { return syscall.EROFS }

func (readOnly) Rmdir(context.Context, string) syscall.Errno { return syscall.EROFS }

func (readOnly) Rename(context.Context, string, gofs.InodeEmbedder, string, uint32) syscall.Errno {
	return syscall.EROFS
}

func (readOnly) Tmpfile(context.Context, uint32, uint32, *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, syscall.EROFS
}

func (readOnly) Allocate(context.Context, gofs.FileHandle, uint64, uint64, uint32) syscall.Errno {
	return syscall.EROFS
}

func (readOnly) CopyFileRange(context.Context, gofs.FileHandle, uint64, *gofs.Inode, gofs.FileHandle, uint64, uint64, uint64) (uint32, syscall.Errno) {
	return 0, syscall.EROFS
}

// Statfs describes an empty, read-only file system: the mount stores
// nothing itself (status/repo reports the repository's sizes).
func (readOnly) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	*out = fuse.StatfsOut{Bsize: 4096, Frsize: 4096, NameLen: 255}
	return 0
}

// writeAccess reports whether open flags would change the file, as the
// kernel's own read-only check does (O_CREAT of an existing file and
// O_APPEND without write access are allowed reads).
func writeAccess(flags uint32) bool {
	return flags&syscall.O_ACCMODE != syscall.O_RDONLY || flags&syscall.O_TRUNC != 0
}
