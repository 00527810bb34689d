package snapshot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// RestoreOptions tune a restore.
type RestoreOptions struct {
	// Workers restore files in parallel (default 4: decoding is CPU, the
	// writes are I/O, so a little more than the core count overlaps both).
	Workers int
	// Progress, if set, counts restored files and bytes.
	Progress *Progress
	// Warn receives non-fatal problems (a socket skipped, an xattr the
	// target file system refused).
	Warn func(string)
}

// RestoreResult summarises a restore.
type RestoreResult struct {
	Files, Dirs, Others int64
	Bytes               int64
	// Failed lists files that could not be restored (corrupt chunks);
	// they are removed from the target, never left with wrong bytes.
	Failed []string
}

// Resolve finds the node at path "label[/sub/path]" inside snap. An empty
// path means the whole snapshot (returned as nil node).
func (r *Repository) Resolve(ctx context.Context, snap *Snapshot, path string) (*Node, error) {
	path = strings.Trim(path, "/")
	if path == "" {
		return nil, nil
	}
	label, rest, _ := strings.Cut(path, "/")
	src, ok := snap.Source(label)
	if !ok {
		return nil, fmt.Errorf("snapshot %s has no source %q", snap.ID.Short(), label)
	}
	n := src.RootNode()
	node := &n
	for _, part := range strings.Split(rest, "/") {
		if part == "" {
			continue
		}
		if node.Type != TypeDir {
			return nil, fmt.Errorf("%s: not a directory", path)
		}
		t, err := r.LoadTree(ctx, node.Subtree)
		if err != nil {
			return nil, err
		}
		child, ok := t.Find(part)
		if !ok {
			return nil, fmt.Errorf("%s: no such file or directory in snapshot %s", path, snap.ID.Short())
		}
		c := *child
		node = &c
	}
	return node, nil
}

// Restore writes node (or, when node is nil, every source of snap, each as
// a directory named by its label) into the directory target, with exact
// metadata: owner, mode, times (ns), xattrs, symlinks, hardlinks and holes.
func (r *Repository) Restore(ctx context.Context, snap *Snapshot, node *Node, target string, o RestoreOptions) (*RestoreResult, error) {
	if o.Workers == 0 {
		o.Workers = 4
	}
	if o.Progress == nil {
		o.Progress = &Progress{}
	}
	if err := os.MkdirAll(target, 0o700); err != nil {
		return nil, fmt.Errorf("snapshot: restore: %w", err)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	rs := &restorer{r: r, ctx: ctx, cancel: cancel, o: o, res: &RestoreResult{}, jobs: make(chan restoreJob, 64),
		links: map[[2]uint64]string{}, failed: map[string]bool{}}
	var wg sync.WaitGroup
	for i := 0; i < o.Workers; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); rs.worker() }()
	}
	var err error
	if node == nil {
		for i := range snap.Sources {
			root := snap.Sources[i].RootNode()
			if err = rs.restoreNode(&root, filepath.Join(target, root.Name)); err != nil {
				break
			}
		}
	} else {
		err = rs.restoreNode(node, filepath.Join(target, node.Name))
	}
	close(rs.jobs)
	wg.Wait()
	if err == nil {
		err = context.Cause(ctx)
	}
	if err == nil {
		err = rs.finish()
	}
	if err != nil {
		return rs.res, err
	}
	if len(rs.res.Failed) > 0 {
		return rs.res, fmt.Errorf("snapshot: restore: %d files could not be restored (corrupt or missing data), first: %s: %w",
			len(rs.res.Failed), rs.res.Failed[0], ErrCorrupt)
	}
	return rs.res, nil
}

type restorer struct {
	r      *Repository
	ctx    context.Context
	cancel context.CancelCauseFunc
	o      RestoreOptions
	res    *RestoreResult
	jobs   chan restoreJob

	mu        sync.Mutex
	links     map[[2]uint64]string // (dev, inode) -> first restored path
	linkLater [][2]string          // (existing, new)
	failed    map[string]bool      // paths removed: their data was corrupt or unreadable
	dirs      []dirMeta
	// files and bytes count only files restored whole: a file that
	// failed (its partial bytes removed with it) is in Failed instead.
	files atomic.Int64
	bytes atomic.Int64
}

type restoreJob struct {
	node *Node
	path string
}

type dirMeta struct {
	node *Node
	path string
}

func (rs *restorer) warn(format string, args ...any) {
	if rs.o.Warn != nil {
		rs.o.Warn(fmt.Sprintf(format, args...))
	}
}

func (rs *restorer) restoreNode(n *Node, path string) error {
	if err := rs.ctx.Err(); err != nil {
		return context.Cause(rs.ctx)
	}
	switch n.Type {
	case TypeDir:
		if err := makeDir(path); err != nil {
			return fmt.Errorf("snapshot: restore: %w", err)
		}
		rs.res.Dirs++
		if !n.Subtree.IsZero() {
			t, err := rs.r.LoadTree(rs.ctx, n.Subtree)
			if err != nil {
				return err
			}
			for i := range t.Nodes {
				if err := rs.restoreNode(&t.Nodes[i], path+"/"+t.Nodes[i].Name); err != nil {
					return err
				}
			}
		}
		rs.dirs = append(rs.dirs, dirMeta{n, path})
		return nil
	case TypeFile:
		if n.Nlink > 1 && n.Inode != 0 {
			key := [2]uint64{n.Dev, n.Inode}
			rs.mu.Lock()
			first, seen := rs.links[key]
			if seen {
				rs.linkLater = append(rs.linkLater, [2]string{first, path})
				rs.mu.Unlock()
				return nil
			}
			rs.links[key] = path
			rs.mu.Unlock()
		}
		select {
		case rs.jobs <- restoreJob{n, path}:
		case <-rs.ctx.Done():
			return context.Cause(rs.ctx)
		}
		return nil
	case TypeSymlink:
		removeExisting(path)
		if err := os.Symlink(n.Target, path); err != nil {
			return fmt.Errorf("snapshot: restore: %w", err)
		}
	case TypeFIFO, TypeCharDev, TypeBlockDev:
		removeExisting(path)
		if err := unix.Mknod(path, n.Mode, int(n.Rdev)); err != nil {
			rs.warn("%s: cannot create special file: %v (skipped)", path, err)
			return nil
		}
	case TypeSocket:
		rs.warn("%s: socket not restored", path)
		return nil
	}
	rs.res.Others++
	return rs.applyMeta(n, path)
}

// makeDir creates the directory path, or accepts a directory already
// there (a restore into a non-empty target). Anything else there is
// refused: a symlink would carry the children, and later the directory's
// metadata, outside the target.
func makeDir(path string) error {
	err := os.Mkdir(path, 0o700)
	if !errors.Is(err, os.ErrExist) {
		return err
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s: exists and is not a directory (%v); refusing to restore a directory through it", path, fi.Mode().Type())
	}
	if fi.Mode().Perm()&0o300 != 0o300 {
		// A read-only directory from an earlier restore: open it up as a
		// new one is, so its entries can be replaced; its mode is set
		// again with the other directories' metadata at the end.
		if err := os.Chmod(path, fi.Mode().Perm()|0o700); err != nil {
			return err
		}
	}
	return nil
}

func removeExisting(path string) {
	if fi, err := os.Lstat(path); err == nil && !fi.IsDir() {
		os.Remove(path)
	}
}

func (rs *restorer) worker() {
	for job := range rs.jobs {
		if rs.ctx.Err() != nil {
			continue
		}
		err := rs.restoreFile(job.node, job.path)
		if err == nil {
			err = rs.applyMeta(job.node, job.path)
		}
		if err == nil {
			rs.files.Add(1)
			rs.bytes.Add(fileBytes(job.node))
			continue
		}
		{
			// A file whose data cannot be read (corrupt, or a bad sector
			// under its pack) is skipped and named; the rest of the
			// restore goes on. What stops it is the target failing (a
			// full disk) or a cancel.
			var re *readError
			if errors.Is(err, ErrCorrupt) || errors.As(err, &re) && rs.ctx.Err() == nil {
				rs.mu.Lock()
				rs.res.Failed = append(rs.res.Failed, fmt.Sprintf("%s (%v)", job.path, err))
				rs.failed[job.path] = true
				rs.mu.Unlock()
				rs.warn("%s: %v (not restored)", job.path, err)
				continue
			}
			rs.cancel(err)
		}
	}
}

// fileBytes is the data a restored file took from the repository: the
// sum of its chunks (holes are not data).
func fileBytes(n *Node) int64 {
	var b int64
	for _, c := range n.Content {
		b += c.Length
	}
	return b
}

// readError is a failure to read a file's data from the repository (an
// I/O error under a pack), as opposed to one writing the target.
type readError struct{ err error }

func (e *readError) Error() string { return e.err.Error() }
func (e *readError) Unwrap() error { return e.err }

// restoreFile writes one file's content. A file it created and could not
// finish, whatever stopped it (corrupt data, a full disk, Ctrl-C), is
// removed: the target holds whole files or none. What was at path before
// is never removed on failure.
func (rs *restorer) restoreFile(n *Node, path string) (err error) {
	removeExisting(path)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("snapshot: restore: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("snapshot: restore %s: %w", path, cerr)
		}
		if err != nil {
			os.Remove(path)
		}
	}()
	for _, c := range n.Content {
		data, err := rs.r.LoadBlob(rs.ctx, c.ID, false)
		if err == nil && int64(len(data)) != c.Length {
			err = &corruptLength{id: c.ID}
		}
		if err != nil {
			if rs.ctx.Err() != nil || errors.Is(err, ErrCorrupt) {
				return err
			}
			return &readError{err}
		}
		if _, err := f.WriteAt(data, c.Offset); err != nil {
			return fmt.Errorf("snapshot: restore %s: %w", path, err)
		}
		rs.o.Progress.Bytes.Add(c.Length)
	}
	// Truncate sets the size, leaving any trailing hole unallocated.
	if err := f.Truncate(n.Size); err != nil {
		return fmt.Errorf("snapshot: restore %s: %w", path, err)
	}
	rs.o.Progress.Files.Add(1)
	return nil
}

// applyMeta sets owner, xattrs, mode and times of path itself, never of
// what a symlink there points to. Order matters: chown clears setuid bits
// and security.capability, so xattrs and mode come after it; writing
// user.* xattrs needs write permission, which a read-only mode would deny
// a non-root restore, so chmod comes after the xattrs; times come last.
func (rs *restorer) applyMeta(n *Node, path string) error {
	if err := unix.Lchown(path, int(n.UID), int(n.GID)); err != nil && os.Geteuid() == 0 {
		rs.warn("%s: chown: %v", path, err)
	}
	for _, x := range n.Xattrs {
		if err := unix.Lsetxattr(path, x.Name, x.Value, 0); err != nil {
			rs.warn("%s: xattr %s: %v", path, x.Name, err)
		}
	}
	// Linux has no mode for a symlink itself (fchmodat refuses
	// AT_SYMLINK_NOFOLLOW on one), so symlinks keep theirs.
	if n.Type != TypeSymlink {
		if err := chmodNoFollow(path, n.Mode&07777); err != nil {
			return fmt.Errorf("snapshot: restore %s: chmod: %w", path, err)
		}
	}
	ts := []unix.Timespec{unix.NsecToTimespec(n.Atime), unix.NsecToTimespec(n.Mtime)}
	if n.Atime == 0 {
		ts[0] = ts[1]
	}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, path, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("snapshot: restore %s: times: %w", path, err)
	}
	return nil
}

// chmodNoFollow is chmod that refuses a symlink at path instead of
// changing the mode of its target, which may lie outside the restore.
func chmodNoFollow(path string, mode uint32) error {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return fmt.Errorf("%s is a symlink, not what restore created there", path)
	}
	return unix.Chmod(path, mode)
}

// finish creates the deferred hardlinks, then sets directory metadata
// children before parents, after all files: creating entries changes a
// directory's mtime, and a parent already read-only or not searchable
// would deny a non-root restore its children. A failed hardlink does not
// skip the directories, which would keep restore's 0700 and today's times.
func (rs *restorer) finish() error {
	err := rs.makeLinks()
	// rs.dirs is in post-order: every directory after its children.
	for _, d := range rs.dirs {
		if derr := rs.applyMeta(d.node, d.path); derr != nil && err == nil {
			err = derr
		}
	}
	rs.res.Files = rs.files.Load()
	rs.res.Bytes = rs.bytes.Load()
	return err
}

// makeLinks creates the hardlinks deferred until their first path was
// written. A first path removed because its data was corrupt or
// unreadable leaves nothing to link to: its other names fail with it, and
// the restore goes on.
func (rs *restorer) makeLinks() error {
	for _, l := range rs.linkLater {
		first, path := l[0], l[1]
		if rs.failed[first] {
			rs.res.Failed = append(rs.res.Failed, fmt.Sprintf("%s (hardlink to %s, which could not be restored)", path, first))
			rs.warn("%s: not restored: a hardlink to %s, which could not be restored", path, first)
			continue
		}
		removeExisting(path)
		if err := os.Link(first, path); err != nil {
			return fmt.Errorf("snapshot: restore: hardlink: %w", err)
		}
		rs.files.Add(1)
	}
	return nil
}
