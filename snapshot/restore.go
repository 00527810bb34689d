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
	// From a remote repository they restore batches of files, pack by
	// pack (restorebatch.go; default 2, each with restoreAhead GETs in
	// flight).
	Workers int
	// Progress, if set, counts restored files and bytes.
	Progress *Progress
	// Warn receives non-fatal problems (a socket skipped, an xattr the
	// target file system refused).
	Warn func(string)

	// fromStore reads every chunk from the store, past a remote
	// repository's blob cache: a test restore proves what the store
	// holds.
	fromStore bool
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
// The target is created if missing and opened once; everything below it
// is reached through directory descriptors (restoredir.go), so a user who
// can rename entries inside the target cannot redirect a write outside it.
func (r *Repository) Restore(ctx context.Context, snap *Snapshot, node *Node, target string, o RestoreOptions) (*RestoreResult, error) {
	if o.Workers == 0 {
		o.Workers = 4
		if r.idx.IsRemote() {
			o.Workers = remoteRestoreWorkers
		}
	}
	if o.Progress == nil {
		o.Progress = &Progress{}
	}
	target = filepath.Clean(target)
	if err := os.MkdirAll(target, 0o700); err != nil {
		return nil, fmt.Errorf("snapshot: restore: %w", err)
	}
	tfd, err := unix.Open(target, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("snapshot: restore: open %s: %w", target, err)
	}
	root, err := newRestoreDir(nil, "", target, tfd)
	if err != nil {
		return nil, err
	}
	defer root.release()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	rs := &restorer{r: r, ctx: ctx, cancel: cancel, o: o, res: &RestoreResult{}, jobs: make(chan restoreJob, 64),
		links: map[[2]uint64]*linkFirst{}, failed: map[string]bool{}}
	if r.idx.IsRemote() {
		rs.loadSlots = make(chan struct{}, restoreLoads)
	}
	var wg sync.WaitGroup
	if rs.loadSlots != nil {
		batches := make(chan []restoreJob)
		go rs.batcher(batches)
		for i := 0; i < o.Workers; i++ {
			wg.Add(1)
			go func() { defer wg.Done(); rs.batchWorker(batches) }()
		}
	} else {
		for i := 0; i < o.Workers; i++ {
			wg.Add(1)
			go func() { defer wg.Done(); rs.worker() }()
		}
	}
	if node == nil {
		for i := range snap.Sources {
			n := snap.Sources[i].RootNode()
			if err = rs.restoreNode(&n, root, n.Name); err != nil {
				break
			}
		}
	} else {
		err = rs.restoreNode(node, root, node.Name)
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
	links     map[[2]uint64]*linkFirst // snapshot (dev, inode) -> its first restored name
	linkLater []linkLater
	failed    map[string]bool // paths removed: their data was corrupt or unreadable
	dirs      []dirMeta
	// files and bytes count only files restored whole: a file that
	// failed (its partial bytes removed with it) is in Failed instead.
	files atomic.Int64
	bytes atomic.Int64

	// loadSlots bounds the span loads of a restore from a remote
	// repository (restoreBatch); nil for a local one.
	loadSlots chan struct{}
}

// linkFirst is the first name of a hardlinked file, written with data;
// its other names are linked to it at the end. dev and ino are those of
// the file restore created, so a link made later links that file or none.
type linkFirst struct {
	dir      *restoreDir
	name     string
	path     string
	dev, ino uint64
}

type linkLater struct {
	first *linkFirst
	dir   *restoreDir
	name  string
	path  string
}

type restoreJob struct {
	node  *Node
	dir   *restoreDir // held for the job; released when it is done
	name  string
	first *linkFirst // set when this file's other names are linked to it later
}

func (j restoreJob) path() string { return j.dir.childPath(j.name) }

type dirMeta struct {
	node *Node
	dir  *restoreDir
}

func (rs *restorer) warn(format string, args ...any) {
	if rs.o.Warn != nil {
		rs.o.Warn(fmt.Sprintf(format, args...))
	}
}

// restoreNode restores n as name in parent, which the caller holds open.
func (rs *restorer) restoreNode(n *Node, parent *restoreDir, name string) error {
	if err := rs.ctx.Err(); err != nil {
		return context.Cause(rs.ctx)
	}
	path := parent.childPath(name)
	switch n.Type {
	case TypeDir:
		d, err := makeDir(parent, name)
		if err != nil {
			return err
		}
		defer d.release()
		rs.res.Dirs++
		if !n.Subtree.IsZero() {
			t, err := rs.r.LoadTreeAhead(rs.ctx, n.Subtree)
			if err != nil {
				return err
			}
			for i := range t.Nodes {
				if err := rs.restoreNode(&t.Nodes[i], d, t.Nodes[i].Name); err != nil {
					return err
				}
			}
		}
		rs.dirs = append(rs.dirs, dirMeta{n, d})
		return nil
	case TypeFile:
		job := restoreJob{node: n, dir: parent, name: name}
		if n.Nlink > 1 && n.Inode != 0 {
			key := [2]uint64{n.Dev, n.Inode}
			rs.mu.Lock()
			first, seen := rs.links[key]
			if seen {
				rs.linkLater = append(rs.linkLater, linkLater{first: first, dir: parent, name: name, path: path})
				rs.mu.Unlock()
				return nil
			}
			job.first = &linkFirst{dir: parent, name: name, path: path}
			rs.links[key] = job.first
			rs.mu.Unlock()
		}
		parent.hold()
		select {
		case rs.jobs <- job:
		case <-rs.ctx.Done():
			parent.release()
			return context.Cause(rs.ctx)
		}
		return nil
	case TypeSymlink:
		unlinkNonDir(parent.fd, name)
		if err := unix.Symlinkat(n.Target, parent.fd, name); err != nil {
			return fmt.Errorf("snapshot: restore %s: symlink: %w", path, err)
		}
	case TypeFIFO, TypeCharDev, TypeBlockDev:
		unlinkNonDir(parent.fd, name)
		if err := unix.Mknodat(parent.fd, name, n.Mode, int(n.Rdev)); err != nil {
			rs.warn("%s: cannot create special file: %v (skipped)", path, err)
			return nil
		}
	case TypeSocket:
		rs.warn("%s: socket not restored", path)
		return nil
	}
	rs.res.Others++
	return rs.applyMetaAt(n, parent.fd, name, path)
}

// makeDir creates the directory name in parent, or accepts a directory
// already there (a restore into a non-empty target), and opens it. Anything
// else there is refused: a symlink would carry the children, and later
// the directory's metadata, outside the target. The returned directory is
// held once, for the caller.
func makeDir(parent *restoreDir, name string) (*restoreDir, error) {
	path := parent.childPath(name)
	err := unix.Mkdirat(parent.fd, name, 0o700)
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return nil, fmt.Errorf("snapshot: restore %s: mkdir: %w", path, err)
	}
	existed := err != nil
	fd, err := unix.Openat(parent.fd, name, openDirFlags, 0)
	if errors.Is(err, unix.EACCES) && existed {
		fd, err = openUnreadableDir(parent.fd, name)
	}
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
		what := "unknown type"
		var st unix.Stat_t
		if unix.Fstatat(parent.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
			what = fileTypeName(st.Mode)
		}
		return nil, fmt.Errorf("snapshot: restore: %s: exists and is not a directory (%s); refusing to restore a directory through it", path, what)
	}
	if err != nil {
		return nil, fmt.Errorf("snapshot: restore %s: open: %w", path, err)
	}
	d, err := newRestoreDir(parent, name, path, fd)
	if err != nil {
		return nil, err
	}
	if existed {
		var st unix.Stat_t
		err := unix.Fstat(d.fd, &st)
		if err == nil && st.Mode&0o700 != 0o700 {
			// A read-only directory from an earlier restore: open it up as
			// a new one is, so its entries can be replaced; its mode is set
			// again with the other directories' metadata at the end.
			err = unix.Fchmod(d.fd, st.Mode&0o7777|0o700)
		}
		if err != nil {
			d.release()
			return nil, fmt.Errorf("snapshot: restore %s: %w", path, err)
		}
	}
	return d, nil
}

// openUnreadableDir opens a directory that an earlier restore left without
// read permission for its owner (a non-root restore may not open it):
// through a path-only descriptor it gives the owner rwx back (makeDir
// would anyway), then opens "." of that same descriptor, never the name
// again.
func openUnreadableDir(dirfd int, name string) (int, error) {
	pfd, err := unix.Openat(dirfd, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	defer unix.Close(pfd)
	var st unix.Stat_t
	if err := unix.Fstat(pfd, &st); err != nil {
		return -1, err
	}
	if err := unix.Chmod(procFd(pfd), st.Mode&0o7777|0o700); err != nil {
		return -1, err
	}
	return unix.Openat(pfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
}

func (rs *restorer) worker() {
	for job := range rs.jobs {
		if rs.ctx.Err() != nil {
			job.dir.release()
			continue
		}
		rs.done(job, rs.restoreFile(job))
	}
}

// done counts job's file restored, or handles why it was not: a file
// whose data cannot be read (corrupt, or a bad sector under its pack) is
// skipped and named, and the rest of the restore goes on; what stops it
// is the target failing (a full disk) or a cancel. It releases the job's
// directory.
func (rs *restorer) done(job restoreJob, err error) {
	job.dir.release()
	if err == nil {
		rs.files.Add(1)
		rs.bytes.Add(fileBytes(job.node))
		return
	}
	var re *readError
	if errors.Is(err, ErrCorrupt) || errors.As(err, &re) && rs.ctx.Err() == nil {
		path := job.path()
		rs.mu.Lock()
		rs.res.Failed = append(rs.res.Failed, fmt.Sprintf("%s (%v)", path, err))
		rs.failed[path] = true
		rs.mu.Unlock()
		rs.warn("%s: %v (not restored)", path, err)
		return
	}
	rs.cancel(err)
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

// restoreFile creates one file in its directory, writes its content and
// sets its metadata through the new descriptor (createFile, finishFile).
func (rs *restorer) restoreFile(job restoreJob) error {
	fd, f, err := rs.createFile(job)
	if err != nil {
		return err
	}
	return rs.finishFile(job, fd, f, rs.fillFile(job, f))
}

// createFile creates job's file, exclusively, replacing what was at its
// name (never writing through it).
func (rs *restorer) createFile(job restoreJob) (int, *os.File, error) {
	unlinkNonDir(job.dir.fd, job.name)
	fd, err := unix.Openat(job.dir.fd, job.name, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return -1, nil, fmt.Errorf("snapshot: restore %s: create: %w", job.path(), err)
	}
	return fd, os.NewFile(uintptr(fd), job.path()), nil
}

// fillFile writes job's content into f, chunk by chunk: a restore from
// a local repository (one from a store restores batches of files,
// restorebatch.go).
func (rs *restorer) fillFile(job restoreJob, f *os.File) error {
	for _, c := range job.node.Content {
		data, err := rs.r.loadData(rs.ctx, c.ID, rs.o.fromStore)
		if err == nil && int64(len(data)) != c.Length {
			err = &corruptLength{id: c.ID}
		}
		if err != nil {
			return rs.readFailed(err)
		}
		if _, err := f.WriteAt(data, c.Offset); err != nil {
			return fmt.Errorf("snapshot: restore %s: %w", job.path(), err)
		}
		rs.o.Progress.Bytes.Add(c.Length)
	}
	return nil
}

// readFailed is the error of a file whose chunk could not be loaded:
// corrupt data, a cancel, or else a readError.
func (rs *restorer) readFailed(err error) error {
	if rs.ctx.Err() != nil || errors.Is(err, ErrCorrupt) {
		return err
	}
	return &readError{err}
}

// finishFile ends a file createFile made and fillErr says whether it was
// filled: its size and metadata are set through fd. A file it could not
// fill, whatever stopped it (corrupt data, a full disk, Ctrl-C), is
// removed: the target holds whole files or none. What was at the name
// before is never removed on failure.
func (rs *restorer) finishFile(job restoreJob, fd int, f *os.File, fillErr error) (err error) {
	n, path := job.node, job.path()
	filled := false
	defer func() {
		if cerr := f.Close(); cerr != nil {
			filled = false // a failed close can mean lost writes
			if err == nil {
				err = fmt.Errorf("snapshot: restore %s: %w", path, cerr)
			}
		}
		// A file whose data is whole stays when only its metadata failed.
		if err != nil && !filled {
			unix.Unlinkat(job.dir.fd, job.name, 0)
		}
	}()
	if fillErr != nil {
		return fillErr
	}
	// Truncate sets the size, leaving any trailing hole unallocated.
	if err := f.Truncate(n.Size); err != nil {
		return fmt.Errorf("snapshot: restore %s: %w", path, err)
	}
	filled = true
	rs.o.Progress.Files.Add(1)
	if job.first != nil {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return fmt.Errorf("snapshot: restore %s: %w", path, err)
		}
		rs.mu.Lock()
		job.first.dev, job.first.ino = st.Dev, st.Ino
		rs.mu.Unlock()
	}
	return rs.applyMetaFd(n, fd, path)
}

// metaTimes is n's atime and mtime for utimensat.
func metaTimes(n *Node) []unix.Timespec {
	ts := []unix.Timespec{unix.NsecToTimespec(n.Atime), unix.NsecToTimespec(n.Mtime)}
	if n.Atime == 0 {
		ts[0] = ts[1]
	}
	return ts
}

// applyMetaFd sets owner, xattrs, mode and times of the file or directory
// fd holds. Order matters: chown clears setuid bits and
// security.capability, so xattrs and mode come after it; writing user.*
// xattrs needs write permission, which a read-only mode would deny a
// non-root restore, so chmod comes after the xattrs; times come last.
func (rs *restorer) applyMetaFd(n *Node, fd int, path string) error {
	if err := unix.Fchown(fd, int(n.UID), int(n.GID)); err != nil && os.Geteuid() == 0 {
		rs.warn("%s: chown: %v", path, err)
	}
	for _, x := range n.Xattrs {
		if err := unix.Fsetxattr(fd, x.Name, x.Value, 0); err != nil {
			rs.warn("%s: xattr %s: %v", path, x.Name, err)
		}
	}
	if err := unix.Fchmod(fd, n.Mode&07777); err != nil {
		return fmt.Errorf("snapshot: restore %s: chmod: %w", path, err)
	}
	if err := futimens(fd, metaTimes(n)); err != nil {
		return fmt.Errorf("snapshot: restore %s: times: %w", path, err)
	}
	return nil
}

// applyMetaAt is applyMetaFd for a symlink or special file, which restore
// does not open: each call names it as one component of the open
// directory dirfd and never follows it. In the same order as applyMetaFd.
func (rs *restorer) applyMetaAt(n *Node, dirfd int, name, path string) error {
	if err := unix.Fchownat(dirfd, name, int(n.UID), int(n.GID), unix.AT_SYMLINK_NOFOLLOW); err != nil && os.Geteuid() == 0 {
		rs.warn("%s: chown: %v", path, err)
	}
	for _, x := range n.Xattrs {
		// lsetxattr has no *at form; the directory's /proc name is its
		// descriptor, and the last component is not followed.
		if err := unix.Lsetxattr(procFd(dirfd)+"/"+name, x.Name, x.Value, 0); err != nil {
			rs.warn("%s: xattr %s: %v", path, x.Name, err)
		}
	}
	// Linux has no mode for a symlink itself (fchmodat refuses
	// AT_SYMLINK_NOFOLLOW on one), so symlinks keep theirs.
	if n.Type != TypeSymlink {
		if err := chmodNoFollow(dirfd, name, n.Mode&07777); err != nil {
			return fmt.Errorf("snapshot: restore %s: chmod: %w", path, err)
		}
	}
	if err := unix.UtimesNanoAt(dirfd, name, metaTimes(n), unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("snapshot: restore %s: times: %w", path, err)
	}
	return nil
}

// chmodNoFollow changes the mode of the special file name in dirfd, and
// refuses a symlink there instead of changing the mode of its target,
// which may lie outside the restore. It opens the entry as a path only
// (a device is never opened for I/O) and changes what that descriptor
// holds.
func chmodNoFollow(dirfd int, name string, mode uint32) error {
	fd, err := unix.Openat(dirfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return fmt.Errorf("%s is a symlink, not what restore created there", name)
	}
	return unix.Chmod(procFd(fd), mode)
}

// finish creates the deferred hardlinks, then sets directory metadata
// children before parents, after all files: creating entries changes a
// directory's mtime, and a parent already read-only or not searchable
// would deny a non-root restore its children. A failed hardlink does not
// skip the directories, which would keep restore's 0700 and today's times.
func (rs *restorer) finish() error {
	err := rs.makeLinks()
	// rs.dirs is in post-order: every directory after its children, so
	// the reopener holds at most one chain of ancestors open.
	ro := newReopener()
	defer ro.closeAll()
	for _, d := range rs.dirs {
		fd, derr := ro.fd(d.dir)
		if derr == nil {
			derr = rs.applyMetaFd(d.node, fd, d.dir.path)
			ro.done(d.dir)
		}
		if derr != nil && err == nil {
			err = derr
		}
	}
	rs.res.Files = rs.files.Load()
	rs.res.Bytes = rs.bytes.Load()
	return err
}

// makeLinks creates the hardlinks deferred until their first name was
// written. A first name removed because its data was corrupt or
// unreadable leaves nothing to link to: its other names fail with it, and
// the restore goes on. A link is made between two reopened directories,
// not followed (linkat without AT_SYMLINK_FOLLOW), and must be the file
// restore wrote; anything else a user put at the first name is unlinked
// again.
func (rs *restorer) makeLinks() error {
	ro := newReopener()
	defer ro.closeAll()
	for _, l := range rs.linkLater {
		first := l.first
		if rs.failed[first.path] {
			rs.res.Failed = append(rs.res.Failed, fmt.Sprintf("%s (hardlink to %s, which could not be restored)", l.path, first.path))
			rs.warn("%s: not restored: a hardlink to %s, which could not be restored", l.path, first.path)
			continue
		}
		if len(ro.open) > 256 {
			ro.closeAll() // bounded descriptors for trees with many linked directories
		}
		src, err := ro.fd(first.dir)
		if err != nil {
			return err
		}
		dst, err := ro.fd(l.dir)
		if err != nil {
			return err
		}
		unlinkNonDir(dst, l.name)
		if err := unix.Linkat(src, first.name, dst, l.name, 0); err != nil {
			return fmt.Errorf("snapshot: restore %s: hardlink to %s: %w", l.path, first.path, err)
		}
		var st unix.Stat_t
		if err := unix.Fstatat(dst, l.name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil || st.Dev != first.dev || st.Ino != first.ino {
			unix.Unlinkat(dst, l.name, 0)
			if err == nil {
				err = errReplaced
			}
			return fmt.Errorf("snapshot: restore %s: hardlink to %s: %w", l.path, first.path, err)
		}
		rs.files.Add(1)
	}
	return nil
}
