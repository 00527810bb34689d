package fs

import (
	"context"
	"sort"
	"sync"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// Nodes inside a snapshot. They are immutable, so every answer carries the
// long SnapshotTimeout and the kernel asks again only when it has evicted
// the entry.

// content is what every node inside a snapshot shares: its metadata and
// where it lives.
type content struct {
	readOnly
	m    *mountFS
	sc   *scope
	node Node
}

// newContentNode returns the node for n: a directory or a leaf (file,
// symlink, device, FIFO, socket).
func (m *mountFS) newContentNode(sc *scope, n Node) gofs.InodeEmbedder {
	c := content{m: m, sc: sc, node: n}
	if n.Mode&sIFMT == sIFDIR {
		return &dirNode{content: c}
	}
	return &leafNode{content: c}
}

// contentChild creates (or finds, when go-fuse already knows the identity)
// the inode for n below parent and fills out.
func (m *mountFS) contentChild(ctx context.Context, parent *gofs.Inode, sc *scope, n Node, out *fuse.EntryOut) *gofs.Inode {
	id := contentIdentity(sc, parent.StableAttr(), n)
	ch := parent.NewInode(ctx, m.newContentNode(sc, n), id)
	fillAttr(&out.Attr, n, id.Ino)
	out.SetEntryTimeout(m.opts.SnapshotTimeout)
	out.SetAttrTimeout(m.opts.SnapshotTimeout)
	return ch
}

func (c *content) Getattr(ctx context.Context, f gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	fillAttr(&out.Attr, c.node, 0)
	out.SetTimeout(c.m.opts.SnapshotTimeout)
	return 0
}

// Getxattr answers with the recorded value. A dest too small (including
// the size query, dest empty) gets ERANGE and the size, which go-fuse turns
// into the answer getxattr(2) expects.
func (c *content) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	for _, x := range c.node.Xattrs {
		if x.Name == attr {
			if len(dest) < len(x.Value) {
				return uint32(len(x.Value)), syscall.ERANGE
			}
			return uint32(copy(dest, x.Value)), 0
		}
	}
	return 0, syscall.ENODATA
}

// Listxattr answers the NUL-terminated names, with ERANGE sizing like
// Getxattr.
func (c *content) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	n := 0
	for _, x := range c.node.Xattrs {
		n += len(x.Name) + 1
	}
	if len(dest) < n {
		return uint32(n), syscall.ERANGE
	}
	off := 0
	for _, x := range c.node.Xattrs {
		off += copy(dest[off:], x.Name)
		dest[off] = 0
		off++
	}
	return uint32(n), 0
}

// dirNode is a directory inside a snapshot.
type dirNode struct {
	gofs.Inode
	content

	// mu guards children, loaded from Tree.ReadDir on first use and kept
	// while the kernel keeps this directory: a snapshot's directory never
	// changes, and Lookup needs it once per name.
	mu       sync.Mutex
	children []Node
}

var (
	_ gofs.NodeLookuper    = (*dirNode)(nil)
	_ gofs.NodeReaddirer   = (*dirNode)(nil)
	_ gofs.NodeGetattrer   = (*dirNode)(nil)
	_ gofs.NodeGetxattrer  = (*dirNode)(nil)
	_ gofs.NodeListxattrer = (*dirNode)(nil)
)

// list returns the directory's children in name order.
func (d *dirNode) list(ctx context.Context) ([]Node, syscall.Errno) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.children != nil {
		return d.children, 0
	}
	kids, err := d.m.opts.Tree.ReadDir(ctx, d.node)
	if err != nil {
		return nil, d.m.errno(ctx, "read directory", inodePath(&d.Inode), err)
	}
	if !sort.SliceIsSorted(kids, func(i, j int) bool { return kids[i].Name < kids[j].Name }) {
		kids = append([]Node(nil), kids...)
		sort.SliceStable(kids, func(i, j int) bool { return kids[i].Name < kids[j].Name })
	}
	if kids == nil {
		kids = []Node{}
	}
	d.children = kids
	return kids, 0
}

func (d *dirNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	kids, errno := d.list(ctx)
	if errno != 0 {
		return nil, errno
	}
	i := sort.Search(len(kids), func(i int) bool { return kids[i].Name >= name })
	if i == len(kids) || kids[i].Name != name {
		// Cache the miss too: nothing will ever appear here.
		out.SetEntryTimeout(d.m.opts.SnapshotTimeout)
		return nil, syscall.ENOENT
	}
	return d.m.contentChild(ctx, &d.Inode, d.sc, kids[i], out), 0
}

func (d *dirNode) Readdir(ctx context.Context) (gofs.DirStream, syscall.Errno) {
	kids, errno := d.list(ctx)
	if errno != 0 {
		return nil, errno
	}
	parent := d.StableAttr()
	entries := make([]fuse.DirEntry, 0, len(kids))
	for _, k := range kids {
		if !validName(k.Name) {
			continue
		}
		id := contentIdentity(d.sc, parent, k)
		entries = append(entries, fuse.DirEntry{Name: k.Name, Mode: k.Mode, Ino: id.Ino})
	}
	return gofs.NewListDirStream(entries), 0
}

// leafNode is a file, symlink, device, FIFO or socket inside a snapshot.
// The kernel serves FIFOs and devices itself (and nodev keeps devices shut);
// only regular files are opened here.
type leafNode struct {
	gofs.Inode
	content
}

var (
	_ gofs.NodeOpener      = (*leafNode)(nil)
	_ gofs.NodeReadlinker  = (*leafNode)(nil)
	_ gofs.NodeGetattrer   = (*leafNode)(nil)
	_ gofs.NodeGetxattrer  = (*leafNode)(nil)
	_ gofs.NodeListxattrer = (*leafNode)(nil)
)

func (l *leafNode) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	if l.node.Mode&sIFMT != sIFLNK {
		return nil, syscall.EINVAL
	}
	return []byte(l.node.Target), 0
}

// Open opens a regular file for reading. The answer carries
// FOPEN_KEEP_CACHE: the contents never change, so pages the kernel read
// once serve every later open (and mmap works, as no direct I/O is used).
func (l *leafNode) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	if writeAccess(flags) {
		return nil, 0, syscall.EROFS
	}
	if l.node.Mode&sIFMT != sIFREG {
		return nil, 0, syscall.EINVAL
	}
	f, err := l.m.opts.Tree.Open(ctx, l.node)
	if err != nil {
		return nil, 0, l.m.errno(ctx, "open", inodePath(&l.Inode), err)
	}
	return l.m.newFileHandle(f, l), fuse.FOPEN_KEEP_CACHE, 0
}
