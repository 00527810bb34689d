package fsadapter

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	iofs "io/fs"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	cfs "citadelfs/fs"
	"citadelfs/index"
	"citadelfs/snapshot"
)

// tree adapts a snapshot.Repository to the fs package's Tree.
type tree struct {
	r *snapshot.Repository

	mu    sync.Mutex
	gen   uint64
	snaps []cfs.Snapshot
}

// NewTree serves r's snapshots through fs: every snapshot in
// snapshot.Compare's order, their directories and files.
func NewTree(r *snapshot.Repository) cfs.Tree { return &tree{r: r} }

// nodeHandle is what fs carries for us in Node.Handle.
type nodeHandle struct {
	snap  string // snapshot id
	label string
	path  string // inside the source, "" for the root
	node  snapshot.Node
}

func (t *tree) Generation() uint64 { return t.r.Generation() }

func (t *tree) Snapshots(ctx context.Context) ([]cfs.Snapshot, error) {
	gen := t.r.Generation()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.snaps != nil && t.gen == gen {
		return t.snaps, nil
	}
	snaps, err := t.r.Snapshots()
	if err != nil {
		return nil, err
	}
	// In snapshot.Compare's order, which fs shows as it is given: the
	// mount's latest/ is what restore, diff and forget call latest.
	out := make([]cfs.Snapshot, 0, len(snaps))
	for _, s := range snaps {
		fsn := cfs.Snapshot{ID: s.ID.String(), Time: s.Time, Host: s.Host, Tags: s.Tags}
		for _, src := range s.Sources {
			h := &nodeHandle{snap: fsn.ID, label: src.Label, node: src.RootNode()}
			fsn.Sources = append(fsn.Sources, cfs.SourceRoot{Label: src.Label, Root: toFSNode(h)})
		}
		out = append(out, fsn)
	}
	t.snaps, t.gen = out, gen
	return out, nil
}

func (t *tree) ReadDir(ctx context.Context, dir cfs.Node) ([]cfs.Node, error) {
	h, ok := dir.Handle.(*nodeHandle)
	if !ok || h.node.Type != snapshot.TypeDir {
		return nil, fmt.Errorf("fsadapter: ReadDir on a non-directory")
	}
	// Ahead: a cp -a or find goes on into the subdirectories.
	tree, err := t.r.LoadTreeAhead(ctx, h.node.Subtree)
	if err != nil {
		if t.forgotten(err, h.snap) {
			return nil, fmt.Errorf("fsadapter: snapshot %.8s was forgotten: %w", h.snap, iofs.ErrNotExist)
		}
		return nil, hideStoreErrno(err)
	}
	out := make([]cfs.Node, len(tree.Nodes))
	for i := range tree.Nodes {
		n := tree.Nodes[i]
		out[i] = toFSNode(&nodeHandle{snap: h.snap, label: h.label, path: h.path + "/" + n.Name, node: n})
	}
	return out, nil
}

func (t *tree) Open(ctx context.Context, n cfs.Node) (cfs.File, error) {
	h, ok := n.Handle.(*nodeHandle)
	if !ok || h.node.Type != snapshot.TypeFile {
		return nil, fmt.Errorf("fsadapter: Open on a non-file")
	}
	return &file{fr: t.r.OpenFile(&h.node), t: t, snap: h.snap}, nil
}

// forgotten reports whether err, from reading snapshot snap's data, comes
// from the snapshot having been forgotten (and its data pruned) since fs
// listed it, rather than from damage: the blob or pack it needs is gone,
// and so is the snapshot.
func (t *tree) forgotten(err error, snap string) bool {
	if !errors.Is(err, snapshot.ErrCorrupt) {
		return false
	}
	snaps, lerr := t.r.Snapshots()
	if lerr != nil {
		return false
	}
	for _, s := range snaps {
		if s.ID.String() == snap {
			return false
		}
	}
	return true
}

type file struct {
	fr   *snapshot.FileReader
	t    *tree
	snap string // the snapshot's id
}

// Slices lends the decoded chunks to fs, which hands them to the kernel
// without copying. A file open in a snapshot that was then forgotten and
// pruned answers ESTALE, like NFS for a file deleted under an open handle:
// not EIO, and not a corrupt-data alert.
func (f *file) Slices(ctx context.Context, off int64, n int) ([][]byte, func(), error) {
	views, done, err := f.fr.Slices(ctx, off, n)
	if err != nil && f.t.forgotten(err, f.snap) {
		return nil, nil, fmt.Errorf("fsadapter: snapshot %.8s was forgotten while the file was open: %w", f.snap, syscall.ESTALE)
	}
	return views, done, hideStoreErrno(err)
}

// storeError is a store that could not be reached or answered
// (index.ErrStoreUnavailable), with the errnos in its chain hidden: fs
// passes a Tree's syscall.Errno to the reader as it is, and a dial's
// ECONNREFUSED or a reset's ECONNRESET is no answer to read(2). The read
// gets EIO, and the log the whole message.
type storeError struct{ err error }

func (e *storeError) Error() string { return e.err.Error() }
func (e *storeError) Unwrap() error { return index.ErrStoreUnavailable }

func hideStoreErrno(err error) error {
	if err != nil && errors.Is(err, index.ErrStoreUnavailable) {
		return &storeError{err}
	}
	return err
}

func (f *file) DataExtents() []cfs.Extent {
	ex := f.fr.Extents()
	out := make([]cfs.Extent, len(ex))
	for i, e := range ex {
		out[i] = cfs.Extent{Offset: e[0], Length: e[1]}
	}
	return out
}

func (f *file) Close() error { return nil }

// inodeOf derives a stable Node.Ino, unique within one source of one
// snapshot, which is all fs.Node.Ino asks: fs owns the identity across
// snapshots, labels and folders and mixes those in itself (fs/attr.go),
// so they are not hashed here a second time. Hardlinked files of the
// source share (source device, inode); everything else is named by its
// path in the source.
func inodeOf(h *nodeHandle) uint64 {
	f := fnv.New64a()
	n := &h.node
	if n.Type == snapshot.TypeFile && n.Nlink > 1 && n.Inode != 0 {
		fmt.Fprintf(f, "hl:%d:%d", n.Dev, n.Inode)
	} else {
		f.Write([]byte(h.path))
	}
	ino := f.Sum64()
	if ino <= 1 { // 1 is the mount root
		ino += 2
	}
	return ino
}

func toFSNode(h *nodeHandle) cfs.Node {
	n := &h.node
	out := cfs.Node{Name: n.Name, Mode: n.Mode, UID: n.UID, GID: n.GID, Size: n.Size,
		Mtime: time.Unix(0, n.Mtime), Atime: time.Unix(0, n.Atime), Ctime: time.Unix(0, n.Ctime),
		Nlink: n.Nlink, Ino: inodeOf(h), Rdev: uint32(n.Rdev), Target: n.Target, Handle: h}
	if n.Atime == 0 {
		out.Atime = out.Mtime
	}
	if n.Ctime == 0 {
		out.Ctime = out.Mtime
	}
	switch n.Type {
	case snapshot.TypeDir:
		out.Mode = unix.S_IFDIR | n.Mode&07777
	case snapshot.TypeSymlink:
		out.Size = int64(len(n.Target))
	case snapshot.TypeFile:
		var data int64
		for _, c := range n.Content {
			data += c.Length
		}
		out.Blocks = (data + 511) / 512
	}
	for _, x := range n.Xattrs {
		out.Xattrs = append(out.Xattrs, cfs.Xattr{Name: x.Name, Value: x.Value})
	}
	return out
}
