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
		links: map[[2]uint64]string{}}
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
	dirs      []dirMeta
	bytes     atomic.Int64
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
		if err := os.Mkdir(path, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
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
		rs.res.Files++
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
		if err != nil {
			if errors.Is(err, ErrCorrupt) {
				os.Remove(job.path)
				rs.mu.Lock()
				rs.res.Failed = append(rs.res.Failed, fmt.Sprintf("%s (%v)", job.path, err))
				rs.mu.Unlock()
				rs.warn("%s: %v (not restored)", job.path, err)
				continue
			}
			rs.cancel(err)
		}
	}
}

func (rs *restorer) restoreFile(n *Node, path string) error {
	removeExisting(path)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("snapshot: restore: %w", err)
	}
	for _, c := range n.Content {
		data, err := rs.r.LoadBlob(rs.ctx, c.ID, false)
		if err == nil && int64(len(data)) != c.Length {
			err = &corruptLength{id: c.ID}
		}
		if err != nil {
			f.Close()
			return err
		}
		if _, err := f.WriteAt(data, c.Offset); err != nil {
			f.Close()
			return fmt.Errorf("snapshot: restore %s: %w", path, err)
		}
		rs.o.Progress.Bytes.Add(c.Length)
		rs.bytes.Add(c.Length)
	}
	// Truncate sets the size, leaving any trailing hole unallocated.
	if err := f.Truncate(n.Size); err != nil {
		f.Close()
		return fmt.Errorf("snapshot: restore %s: %w", path, err)
	}
	rs.o.Progress.Files.Add(1)
	return f.Close()
}

// applyMeta sets owner, mode, xattrs and times. Order matters: chown
// clears setuid bits, so chmod comes after it; times come last.
func (rs *restorer) applyMeta(n *Node, path string) error {
	if err := unix.Lchown(path, int(n.UID), int(n.GID)); err != nil && os.Geteuid() == 0 {
		rs.warn("%s: chown: %v", path, err)
	}
	if n.Type != TypeSymlink {
		if err := unix.Chmod(path, n.Mode&07777); err != nil {
			return fmt.Errorf("snapshot: restore %s: chmod: %w", path, err)
		}
	}
	for _, x := range n.Xattrs {
		if err := unix.Lsetxattr(path, x.Name, x.Value, 0); err != nil {
			rs.warn("%s: xattr %s: %v", path, x.Name, err)
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

// finish creates the deferred hardlinks and sets directory metadata
// deepest first (writing into a directory changes its mtime).
func (rs *restorer) finish() error {
	for _, l := range rs.linkLater {
		removeExisting(l[1])
		if err := os.Link(l[0], l[1]); err != nil {
			return fmt.Errorf("snapshot: restore: hardlink: %w", err)
		}
	}
	for i := len(rs.dirs) - 1; i >= 0; i-- {
		d := rs.dirs[i]
		if err := rs.applyMeta(d.node, d.path); err != nil {
			return err
		}
	}
	rs.res.Bytes = rs.bytes.Load()
	return nil
}
