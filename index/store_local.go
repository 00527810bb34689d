package index

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// LocalStore is a repository directory as a Store: object names are paths
// below it. It keeps the behaviour the repository had before the seam:
//
//   - packs are written with O_DIRECT where the file system allows it
//     (Align 4096), to a packs/<pid>-<n>.partial temp file; Commit cuts
//     the padding, fsyncs the file, makes packs/<xx> (syncing packs/),
//     renames the file into place and fsyncs its directory. Only then may
//     the index refer to its blobs (the crash-safety order in DESIGN.md);
//   - reads of pack ranges keep a bounded set of open files (packFiles)
//     and read big blobs that are not in the page cache with O_DIRECT
//     (readDirect).
type LocalStore struct {
	dir   string
	packs *packFiles
}

// NewLocalStore returns the store of repository directory dir, keeping
// at most openPacks pack files open (64 when 0).
func NewLocalStore(dir string, openPacks int) *LocalStore {
	if openPacks <= 0 {
		openPacks = 64
	}
	return &LocalStore{dir: dir, packs: newPackFiles(dir, openPacks)}
}

func (s *LocalStore) path(name string) string { return filepath.Join(s.dir, filepath.FromSlash(name)) }

// Put writes a small object with O_EXCL, fsyncs it and its directory.
func (s *LocalStore) Put(name string, data []byte) error {
	p := s.path(name)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return fmt.Errorf("index: put %s: %w", name, err)
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("index: put %s: %w", name, ErrObjectExists)
	}
	if err != nil {
		return fmt.Errorf("index: put %s: %w", name, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = syncDir(filepath.Dir(p))
	}
	if err != nil {
		os.Remove(p)
		return fmt.Errorf("index: put %s: %w", name, err)
	}
	return nil
}

// Create starts a pack as packs/<pid>-<n>.partial; Open removes those a
// killed writer left.
func (s *LocalStore) Create() (ObjectWriter, error) {
	name := filepath.Join(s.dir, packsDir, fmt.Sprintf("%d-%d.partial", os.Getpid(), packSeq.Add(1)))
	direct := true
	fd, err := unix.Open(name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC|unix.O_DIRECT, 0o600)
	if errors.Is(err, unix.ENOENT) {
		// A store directory used as a remote repository's (tests) has
		// no packs/ until its first pack.
		if err = os.MkdirAll(filepath.Dir(name), 0o700); err == nil {
			fd, err = unix.Open(name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC|unix.O_DIRECT, 0o600)
		}
	}
	if errors.Is(err, unix.EINVAL) {
		direct = false
		fd, err = unix.Open(name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o600)
	}
	if err != nil {
		return nil, fmt.Errorf("index: new pack: %w", &os.PathError{Op: "create", Path: name, Err: err})
	}
	return &localWriter{s: s, f: os.NewFile(uintptr(fd), name), direct: direct}, nil
}

type localWriter struct {
	s      *LocalStore
	f      *os.File
	direct bool
}

func (w *localWriter) Align() int {
	if w.direct {
		return directAlign
	}
	return 0
}

// packHeadroom is the room a pack never takes: below it a pack write
// fails as the disk being full, so the index's own writes that follow
// (the pack's batch, the attempt record) still find room. Pebble cannot
// take a failed log write back: it stops, for good in a mount daemon that
// keeps the index open. Measured as what an unprivileged writer may use,
// so on ext4 root's reserved blocks stay for Pebble (running as root)
// too.
const packHeadroom = 2 << 20

func (w *localWriter) Write(b []byte) (int, error) {
	var st unix.Statfs_t
	if unix.Fstatfs(int(w.f.Fd()), &st) == nil && int64(st.Bavail)*int64(st.Bsize) < packHeadroom+int64(len(b)) {
		return 0, &os.PathError{Op: "write", Path: w.f.Name(), Err: unix.ENOSPC}
	}
	n, err := w.f.Write(b)
	if errors.Is(err, unix.EINVAL) && w.direct {
		// Some file systems accept O_DIRECT at open and refuse it at
		// write: go on through the page cache. (The caller pads by
		// Align as it was at the start; Commit cuts the padding off
		// either way.)
		w.direct = false
		if fl, ferr := unix.FcntlInt(w.f.Fd(), unix.F_GETFL, 0); ferr == nil {
			unix.FcntlInt(w.f.Fd(), unix.F_SETFL, fl&^unix.O_DIRECT)
		}
		n, err = w.f.Write(b)
	}
	return n, err
}

func (w *localWriter) Commit(name string, size int64) error {
	if err := w.f.Truncate(size); err != nil {
		w.Abort()
		return fmt.Errorf("index: write pack: %w", err)
	}
	if err := w.f.Sync(); err != nil {
		w.Abort()
		return fmt.Errorf("index: fsync pack: %w", err)
	}
	tmp := w.f.Name()
	if err := w.f.Close(); err != nil {
		os.Remove(tmp)
		w.f = nil
		return fmt.Errorf("index: close pack: %w", err)
	}
	w.f = nil
	final := w.s.path(name)
	if err := makeFanoutDir(filepath.Dir(final)); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, final); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("index: rename pack: %w", err)
	}
	// A rewrite under the same name (repair packs) replaced the file: an
	// open handle would still read the old bytes.
	if id, ok := packIDFromName(name); ok {
		w.s.packs.drop(id)
	}
	if err := syncDir(filepath.Dir(final)); err != nil {
		return fmt.Errorf("index: fsync pack dir: %w", err)
	}
	return nil
}

func (w *localWriter) Abort() {
	if w.f != nil {
		name := w.f.Name()
		w.f.Close()
		os.Remove(name)
		w.f = nil
	}
}

// makeFanoutDir makes packs/<xx> if it is new, and syncs packs/ so that
// the new directory entry, and the pack about to be renamed into it,
// survive a crash.
func makeFanoutDir(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("index: pack dir: %w", err)
	}
	if err := syncDir(filepath.Dir(dir)); err != nil {
		return fmt.Errorf("index: fsync packs dir: %w", err)
	}
	return nil
}

// ReadRange reads from a cached open pack file (packFiles), with O_DIRECT
// where readDirect applies; other objects are opened for the one read.
func (s *LocalStore) ReadRange(name string, off int64, n int, buf []byte) ([]byte, error) {
	id, isPack := packIDFromName(name)
	if !isPack {
		f, err := os.Open(s.path(name))
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return readRangeFrom(f, off, n, buf)
	}
	pf, release, err := s.packs.acquire(id)
	if err != nil {
		return nil, err
	}
	defer release()
	if b, ok := readDirect(pf, off, n, buf); ok {
		return b, nil
	}
	return readRangeFrom(pf.f, off, n, buf)
}

func readRangeFrom(f *os.File, off int64, n int, buf []byte) ([]byte, error) {
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	got, err := f.ReadAt(buf, off)
	if got == n {
		return buf, nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		return nil, io.ErrUnexpectedEOF // the object ends before the range does
	}
	// The disk or the file system failed (EIO, ESTALE, ...).
	return nil, err
}

// Stat returns the size of an object.
func (s *LocalStore) Stat(name string) (int64, error) {
	fi, err := os.Stat(s.path(name))
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// List walks the directory the prefix names (up to its last slash) and
// reports the regular files below it whose names start with prefix;
// .partial files are not complete objects and are left out.
func (s *LocalStore) List(prefix string, fn func(name string, size int64) error) error {
	base := prefix[:strings.LastIndex(prefix, "/")+1]
	root := s.path(base)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == root && errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() || strings.HasSuffix(d.Name(), ".partial") || !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(s.dir, p)
		if err != nil {
			return err
		}
		name := filepath.ToSlash(rel)
		if !strings.HasPrefix(name, prefix) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		return fn(name, fi.Size())
	})
	return err
}

// Delete removes an object; a missing one is fine.
func (s *LocalStore) Delete(name string) error {
	if id, ok := packIDFromName(name); ok {
		s.packs.drop(id)
	}
	if err := os.Remove(s.path(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// Close closes the cached pack files.
func (s *LocalStore) Close() error {
	s.packs.closeAll()
	return nil
}

// Info gives an object's size and mtime (a directory has no retention).
func (s *LocalStore) Info(name string) (ObjectInfo, error) {
	fi, err := os.Stat(s.path(name))
	if err != nil {
		return ObjectInfo{}, err
	}
	return ObjectInfo{Size: fi.Size(), Modified: fi.ModTime()}, nil
}
