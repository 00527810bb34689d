package fs

import (
	"context"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// topDir is a virtual folder: the root, a day folder, latest/, snapshots/,
// snapshots/<time>/, tags/, tags/<tag>/ or tags/<tag>/<time>/. It holds only
// its path; what it contains comes from the current view on every call.
//
// Its entries go to the kernel with a short entry timeout
// (Options.TopAttrTimeout). Without one the kernel asks again at every path
// walk, once per virtual path component: cp -a of latest/configs sent five
// LOOKUPs per file. When the snapshots change, Server.Refresh tells the
// kernel to forget the names that now mean something else, so a snapshot
// committed a moment ago is there at once. Below a source root the long
// timeouts apply.
type topDir struct {
	gofs.Inode
	readOnly
	m    *mountFS
	path string
}

var (
	_ gofs.NodeLookuper  = (*topDir)(nil)
	_ gofs.NodeReaddirer = (*topDir)(nil)
	_ gofs.NodeGetattrer = (*topDir)(nil)
)

// dir returns this folder in the current view; ENOENT if the snapshots that
// made it have been forgotten since.
func (d *topDir) dir(ctx context.Context) (*view, *vdir, syscall.Errno) {
	v, err := d.m.views.get(ctx)
	if err != nil {
		return nil, nil, d.m.errno(ctx, "list snapshots", "/"+d.path, err)
	}
	vd := v.dirs[d.path]
	if vd == nil {
		return nil, nil, syscall.ENOENT
	}
	return v, vd, 0
}

func (d *topDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	v, vd, errno := d.dir(ctx)
	if errno != 0 {
		return nil, errno
	}
	e, ok := vd.entries[name]
	if !ok {
		return nil, syscall.ENOENT
	}
	switch {
	case e.dir != "":
		sub := v.dirs[e.dir]
		if sub == nil {
			return nil, syscall.ENOENT
		}
		id := virtualIdentity(sIFDIR, e.dir)
		ch := d.NewInode(ctx, &topDir{m: d.m, path: e.dir}, id)
		fillVirtualAttr(&out.Attr, id.Ino, modeDir, uint32(2+sub.subdirs), sub.mtime)
		out.SetEntryTimeout(d.m.opts.TopAttrTimeout)
		out.SetAttrTimeout(d.m.opts.TopAttrTimeout)
		return ch, 0
	case e.status:
		id := virtualIdentity(sIFDIR, statusDir)
		ch := d.NewInode(ctx, &statusDirNode{m: d.m}, id)
		fillVirtualAttr(&out.Attr, id.Ino, modeDir, 2, d.m.started)
		out.SetEntryTimeout(d.m.opts.TopAttrTimeout)
		out.SetAttrTimeout(d.m.opts.TopAttrTimeout)
		return ch, 0
	case e.src != nil:
		ch := d.m.contentChild(ctx, &d.Inode, e.src.scope, e.src.root, out)
		// Which snapshot latest/<label> shows changes: cache the name
		// briefly (Refresh invalidates it at once), the (immutable)
		// attributes of what it points at long.
		out.SetEntryTimeout(d.m.opts.TopAttrTimeout)
		return ch, 0
	}
	return nil, syscall.ENOENT
}

func (d *topDir) Readdir(ctx context.Context) (gofs.DirStream, syscall.Errno) {
	_, vd, errno := d.dir(ctx)
	if errno != 0 {
		return nil, errno
	}
	parent := d.StableAttr()
	entries := make([]fuse.DirEntry, 0, len(vd.names))
	for _, name := range vd.names {
		e := vd.entries[name]
		var ino uint64
		switch {
		case e.dir != "":
			ino = virtualIdentity(sIFDIR, e.dir).Ino
		case e.status:
			ino = virtualIdentity(sIFDIR, statusDir).Ino
		case e.src != nil:
			ino = contentIdentity(e.src.scope, parent, e.src.root).Ino
		}
		entries = append(entries, fuse.DirEntry{Name: name, Mode: e.mode, Ino: ino})
	}
	return gofs.NewListDirStream(entries), 0
}

func (d *topDir) Getattr(ctx context.Context, f gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	_, vd, errno := d.dir(ctx)
	if errno != 0 {
		return errno
	}
	fillVirtualAttr(&out.Attr, 0, modeDir, uint32(2+vd.subdirs), vd.mtime)
	out.SetTimeout(d.m.opts.TopAttrTimeout)
	return 0
}
