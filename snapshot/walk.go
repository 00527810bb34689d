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
	"time"

	"golang.org/x/sys/unix"

	"citadelfs/index"
	"citadelfs/snapshot/codec"
)

func (a *archiver) saveSource(spec SourceSpec) (*Source, error) {
	start := time.Now()
	src := &sourceState{label: spec.Label}
	abs, err := filepath.Abs(spec.Path)
	if err != nil {
		return nil, fmt.Errorf("snapshot: source %s: %w", spec.Label, err)
	}
	var st unix.Stat_t
	if err := unix.Stat(abs, &st); err != nil {
		a.warn(src, "source %s: %s: %v (skipped)", spec.Label, abs, err)
		return nil, nil
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		a.warn(src, "source %s: %s is not a directory (skipped)", spec.Label, abs)
		return nil, nil
	}
	root := nodeFromStat(".", &st)
	root.Xattrs = readXattrs(abs)
	tree, err := a.saveDir(abs, "", src)
	if err != nil {
		return nil, err
	}
	src.stats.DurationMS = time.Since(start).Milliseconds()
	return &Source{Label: spec.Label, Path: abs, Tree: tree, Stats: src.stats, Warnings: src.warns, Root: rootMetaOf(root)}, nil
}

// saveDir stores the tree of the directory at path (rel inside the source)
// and returns its id. Files are handed to the workers; subdirectories are
// walked depth-first while those files are being read.
func (a *archiver) saveDir(path, rel string, src *sourceState) (index.ID, error) {
	names, err := readDirNames(path)
	if err != nil {
		a.warn(src, "%s: %v (directory saved empty)", path, err)
		src.add(func(s *SourceStats) { s.Unreadable++ })
	}
	src.add(func(s *SourceStats) { s.Dirs++ })
	var dirSt unix.Stat_t
	unix.Stat(path, &dirSt)
	dirDev := dirSt.Dev
	tb := newTreeBuilder(a.ctx, a.saveTreeBlob)
	for _, name := range names {
		if err := a.ctx.Err(); err != nil {
			return index.ID{}, context.Cause(a.ctx)
		}
		full := path + "/" + name
		var st unix.Stat_t
		if err := unix.Lstat(full, &st); err != nil {
			if errors.Is(err, unix.ENOENT) {
				a.warn(src, "%s: vanished during the snapshot", full)
			} else {
				a.warn(src, "%s: %v", full, err)
			}
			src.add(func(s *SourceStats) { s.Unreadable++ })
			continue
		}
		n := nodeFromStat(name, &st)
		n.Xattrs = readXattrs(full)
		switch n.Type {
		case TypeDir:
			if st.Dev != dirDev && isFUSE(full) {
				// Most likely our own mount (or another FUSE file system,
				// which may be slow or hang): backing up snapshots of
				// snapshots helps nobody. Recorded as an empty directory.
				a.warn(src, "%s: FUSE mount point not descended into (recorded empty)", full)
				n.Subtree, _ = a.saveTree(&Tree{})
				break
			}
			sub, err := a.saveDir(full, rel+name+"/", src)
			if err != nil {
				return index.ID{}, err
			}
			n.Subtree = sub
		case TypeSymlink:
			t, err := os.Readlink(full)
			if err != nil {
				a.warn(src, "%s: %v", full, err)
				src.add(func(s *SourceStats) { s.Unreadable++ })
				continue
			}
			n.Target = t
			src.add(func(s *SourceStats) { s.Others++ })
		case TypeFile:
			src.add(func(s *SourceStats) { s.Files++; s.Bytes += n.Size })
			key := index.FileCacheKey(src.label + "\x00" + rel + name)
			if content, ok := a.cachedContent(key, n); ok {
				n.Content = content
				var data int64
				for _, c := range content {
					data += c.Length
				}
				src.add(func(s *SourceStats) { s.DataBytes += data })
				a.progress.Files.Add(1)
				a.progress.Bytes.Add(n.Size)
				break
			}
			job := &fileJob{path: full, key: key, node: n, stat: st, src: src, done: make(chan struct{})}
			select {
			case a.fileCh <- job:
			case <-a.ctx.Done():
				return index.ID{}, context.Cause(a.ctx)
			}
			if err := tb.add(n, job.done, &job.skip); err != nil {
				return index.ID{}, err
			}
			continue
		case TypeSocket:
			a.warn(src, "%s: socket recorded (restore skips sockets)", full)
			src.add(func(s *SourceStats) { s.Others++ })
		default:
			src.add(func(s *SourceStats) { s.Others++ })
		}
		if err := tb.add(n, nil, nil); err != nil {
			return index.ID{}, err
		}
	}
	id, err := tb.finish()
	if err != nil && a.ctx.Err() == nil {
		return id, fmt.Errorf("snapshot: directory %s: %w", path, err)
	}
	return id, err
}

func (a *archiver) saveTree(t *Tree) (index.ID, error) {
	return a.saveTreeBlob(t.Encode())
}

// saveTreeBlob stores one encoded tree blob (a listing or a part index).
func (a *archiver) saveTreeBlob(b []byte) (index.ID, error) {
	id := index.Hash(b)
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
