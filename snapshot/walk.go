package snapshot

// The walk: the scanner side of a snapshot. It lists directories depth
// first, stats every entry, and hands regular files to the file workers
// while it goes on walking; it writes each directory's tree once all its
// files are read.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"citadelfs/index"
	"citadelfs/snapshot/codec"
)

func (a *archiver) saveSource(ps preparedSource) (*Source, error) {
	start := time.Now()
	spec := ps.spec
	src := &sourceState{label: spec.Label, excludes: ps.rules, excludeCaches: spec.ExcludeCaches, oneFS: spec.OneFileSystem}
	if len(spec.Paths) == 0 {
		abs, err := filepath.Abs(spec.Path)
		if err != nil {
			return nil, fmt.Errorf("snapshot: source %s: %w", spec.Label, err)
		}
		var st unix.Stat_t
		if err := unix.Stat(abs, &st); err != nil {
			a.warn(src, "source %s: %s: %v (skipped)", spec.Label, abs, err)
			return nil, nil
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			root := nodeFromStat(".", &st)
			root.Xattrs = readXattrs(abs)
			tree, err := a.saveDir(abs, "", st.Dev, src)
			if err != nil {
				return nil, err
			}
			src.stats.DurationMS = time.Since(start).Milliseconds()
			return &Source{Label: spec.Label, Path: abs, Tree: tree, Stats: src.stats, Warnings: src.warns, Root: rootMetaOf(root)}, nil
		}
		// A single file is a source of one path: kept under its absolute
		// path, like a list of them.
	}
	return a.savePaths(spec, src, start)
}

// pathNode is one directory on the way to the roots of a source of paths.
type pathNode struct {
	children map[string]*pathNode
	leaf     bool // a root: saved whole, as found
}

// insert adds the root at comps; a root inside another is covered by it.
func (p *pathNode) insert(comps []string) {
	for _, c := range comps {
		if p.leaf {
			return
		}
		if p.children == nil {
			p.children = map[string]*pathNode{}
		}
		next := p.children[c]
		if next == nil {
			next = &pathNode{}
			p.children[c] = next
		}
		p = next
	}
	p.leaf, p.children = true, nil
}

// savePaths saves a source of files, directories and globs under their
// absolute paths: the tree's root is "/", and the directories on the way
// to each path are recorded with their own metadata but only the entries
// that lead to a path.
func (a *archiver) savePaths(spec SourceSpec, src *sourceState, start time.Time) (*Source, error) {
	var given []string
	if spec.Path != "" {
		given = append(given, spec.Path)
	}
	given = append(given, spec.Paths...)
	top := &pathNode{}
	var abses []string
	found := 0
	for _, p := range given {
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, fmt.Errorf("snapshot: source %s: %w", spec.Label, err)
		}
		abses = append(abses, abs)
		matches := []string{abs}
		if hasGlobMeta(abs) {
			if matches, err = filepath.Glob(abs); err != nil {
				return nil, fmt.Errorf("snapshot: source %s: %q: %w", spec.Label, p, err)
			}
			if len(matches) == 0 {
				a.warn(src, "source %s: %s matches nothing", spec.Label, abs)
				continue
			}
		}
		for _, m := range matches {
			var st unix.Stat_t
			if err := unix.Lstat(m, &st); err != nil {
				a.warn(src, "source %s: %s: %v (skipped)", spec.Label, m, err)
				continue
			}
			rel := strings.TrimPrefix(m, "/")
			if rel != "" && excludedPrefix(src.excludes, rel, st.Mode&unix.S_IFMT == unix.S_IFDIR) {
				src.add(func(s *SourceStats) { s.Excluded++ })
				continue
			}
			found++
			if rel == "" {
				top.insert(nil)
			} else {
				top.insert(strings.Split(rel, "/"))
			}
		}
	}
	if found == 0 {
		return nil, nil
	}
	var st unix.Stat_t
	if err := unix.Stat("/", &st); err != nil {
		return nil, fmt.Errorf("snapshot: source %s: /: %w", spec.Label, err)
	}
	root := nodeFromStat(".", &st)
	root.Xattrs = readXattrs("/")
	var tree index.ID
	var err error
	if top.leaf {
		tree, err = a.saveDir("/", "", st.Dev, src)
	} else {
		tree, err = a.saveParents("/", "", top, src)
	}
	if err != nil {
		return nil, err
	}
	src.stats.DurationMS = time.Since(start).Milliseconds()
	return &Source{Label: spec.Label, Path: "/", Paths: abses, Tree: tree, Stats: src.stats, Warnings: src.warns, Root: rootMetaOf(root)}, nil
}

// saveParents stores the tree of a directory on the way to roots: only
// the entries of p, each root saved whole.
func (a *archiver) saveParents(path, rel string, p *pathNode, src *sourceState) (index.ID, error) {
	src.add(func(s *SourceStats) { s.Dirs++ })
	names := make([]string, 0, len(p.children))
	for name := range p.children {
		names = append(names, name)
	}
	sort.Strings(names)
	tb := newTreeBuilder(a.ctx, a.saveTreeBlob)
	for _, name := range names {
		if err := a.ctx.Err(); err != nil {
			return index.ID{}, context.Cause(a.ctx)
		}
		full := joinPath(path, name)
		child := p.children[name]
		var st unix.Stat_t
		if child.leaf {
			if err := unix.Lstat(full, &st); err != nil {
				a.warnStat(src, full, err)
				continue
			}
			// A root counts as its own file system, and is walked even
			// when it is a mount point.
			if err := a.saveEntry(tb, full, rel, name, &st, st.Dev, st.Dev, src); err != nil {
				return index.ID{}, err
			}
			continue
		}
		// A directory on the way (followed if a symlink: the path was
		// given through it).
		if err := unix.Stat(full, &st); err != nil {
			a.warnStat(src, full, err)
			continue
		}
		n := nodeFromStat(name, &st)
		n.Xattrs = readXattrs(full)
		sub, err := a.saveParents(full, rel+name+"/", child, src)
		if err != nil {
			return index.ID{}, err
		}
		n.Subtree = sub
		if err := tb.add(n, nil, nil); err != nil {
			return index.ID{}, err
		}
	}
	return a.finishDir(tb, path)
}

// saveDir stores the tree of the directory at path (rel inside the source)
// and returns its id. Files are handed to the workers; subdirectories are
// walked depth-first while those files are being read. rootDev is the
// device of the root this directory was reached from (--one-file-system).
func (a *archiver) saveDir(path, rel string, rootDev uint64, src *sourceState) (index.ID, error) {
	names, err := readDirNames(path)
	if err != nil {
		a.warn(src, "%s: %v (directory saved empty)", path, err)
		src.add(func(s *SourceStats) { s.Unreadable++ })
	}
	if src.excludeCaches && hasCacheTag(path, names) {
		// As restic: the tag file stays, so a restore shows why the
		// directory is empty.
		src.add(func(s *SourceStats) { s.Excluded += int64(len(names) - 1) })
		names = []string{cacheTagName}
	}
	src.add(func(s *SourceStats) { s.Dirs++ })
	var dirSt unix.Stat_t
	unix.Stat(path, &dirSt)
	tb := newTreeBuilder(a.ctx, a.saveTreeBlob)
	for _, name := range names {
		if err := a.ctx.Err(); err != nil {
			return index.ID{}, context.Cause(a.ctx)
		}
		full := joinPath(path, name)
		var st unix.Stat_t
		if err := unix.Lstat(full, &st); err != nil {
			a.warnStat(src, full, err)
			continue
		}
		if err := a.saveEntry(tb, full, rel, name, &st, dirSt.Dev, rootDev, src); err != nil {
			return index.ID{}, err
		}
	}
	return a.finishDir(tb, path)
}

func (a *archiver) warnStat(src *sourceState, full string, err error) {
	if errors.Is(err, unix.ENOENT) {
		a.warn(src, "%s: vanished during the snapshot", full)
	} else {
		a.warn(src, "%s: %v", full, err)
	}
	src.add(func(s *SourceStats) { s.Unreadable++ })
}

// saveEntry records the entry name (lstat'ed as st) of the directory
// being saved in d: directories are walked now, files queued for the
// workers. parentDev is its directory's device, rootDev its root's.
func (a *archiver) saveEntry(tb *treeBuilder, full, rel, name string, st *unix.Stat_t, parentDev, rootDev uint64, src *sourceState) error {
	isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
	if excluded(src.excludes, rel+name, isDir) {
		src.add(func(s *SourceStats) { s.Excluded++ })
		return nil
	}
	n := nodeFromStat(name, st)
	n.Xattrs = readXattrs(full)
	if src.oneFS && st.Dev != rootDev {
		if !isDir { // a file bind-mounted here: on another file system
			src.add(func(s *SourceStats) { s.Excluded++ })
			return nil
		}
		// As restic: the mount point itself is kept, empty.
		n.Subtree, _ = a.saveTree(&Tree{})
		src.add(func(s *SourceStats) { s.Dirs++ })
		return tb.add(n, nil, nil)
	}
	switch n.Type {
	case TypeDir:
		if st.Dev != parentDev && isFUSE(full) {
			// Most likely our own mount (or another FUSE file system,
			// which may be slow or hang): backing up snapshots of
			// snapshots helps nobody. Recorded as an empty directory.
			a.warn(src, "%s: FUSE mount point not descended into (recorded empty)", full)
			n.Subtree, _ = a.saveTree(&Tree{})
			break
		}
		sub, err := a.saveDir(full, rel+name+"/", rootDev, src)
		if err != nil {
			return err
		}
		n.Subtree = sub
	case TypeSymlink:
		t, err := os.Readlink(full)
		if err != nil {
			a.warn(src, "%s: %v", full, err)
			src.add(func(s *SourceStats) { s.Unreadable++ })
			return nil
		}
		n.Target = t
		src.add(func(s *SourceStats) { s.Others++ })
	case TypeFile:
		src.add(func(s *SourceStats) { s.Files++; s.Bytes += n.Size })
		key := a.r.idx.FileCache().Key(src.label, rel+name)
		if content, ok := a.cachedContent(key, n); ok {
			n.Content = content
			var data int64
			for _, c := range content {
				data += c.Length
			}
			src.add(func(s *SourceStats) { s.DataBytes += data })
			a.progress.Files.Add(1)
			a.progress.Bytes.Add(data) // data bytes, as the scan's total counts them
			break
		}
		job := &fileJob{path: full, key: key, node: n, stat: *st, src: src, done: make(chan struct{})}
		select {
		case a.fileCh <- job:
		case <-a.ctx.Done():
			return context.Cause(a.ctx)
		}
		return tb.add(n, job.done, &job.skip)
	case TypeSocket:
		a.warn(src, "%s: socket recorded (restore skips sockets)", full)
		src.add(func(s *SourceStats) { s.Others++ })
	default:
		src.add(func(s *SourceStats) { s.Others++ })
	}
	return tb.add(n, nil, nil)
}

// finishDir waits for the directory's files and stores its tree.
func (a *archiver) finishDir(tb *treeBuilder, path string) (index.ID, error) {
	id, err := tb.finish()
	if err != nil && a.ctx.Err() == nil {
		return id, fmt.Errorf("snapshot: directory %s: %w", path, err)
	}
	return id, err
}

func joinPath(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}

func hasGlobMeta(p string) bool { return strings.ContainsAny(p, "*?[") }

func (a *archiver) saveTree(t *Tree) (index.ID, error) {
	return a.saveTreeBlob(t.Encode())
}

// saveTreeBlob stores one encoded tree blob (a listing or a part index).
func (a *archiver) saveTreeBlob(b []byte) (index.ID, error) {
	id := a.r.blobID(b)
	isNew, err := a.saver.Reserve(id)
	if err != nil || !isNew {
		return id, err
	}
	enc := codec.NewEncoder(codec.Options{})
	out, cid, err := enc.Encode(nil, b)
	if err != nil {
		return id, fmt.Errorf("snapshot: encode tree: %w", err)
	}
	return id, a.saver.Add(index.TreeBlob, uint8(cid), id, out, len(b))
}

func readDirNames(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, errnoText(err)
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	sort.Strings(names)
	if err != nil {
		return names, errnoText(err)
	}
	return names, nil
}
