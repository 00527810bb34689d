package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"citadelfs/index"
	"citadelfs/snapshot/chunker"
	"citadelfs/snapshot/codec"
)

// SourceSpec names one directory to snapshot under a label.
type SourceSpec struct {
	Label string
	Path  string
}

// Request describes one snapshot.
type Request struct {
	Sources []SourceSpec
	Tags    []string
	// Time is the time the snapshot represents (default: now).
	Time time.Time
	Host string
	// Progress, if set, is updated as the snapshot runs.
	Progress *Progress
	// Warn receives each warning (unreadable, vanished, changed files).
	Warn func(msg string)
	// ReadAll reads every file again instead of trusting the file-change
	// cache (same size, mtime, ctime, inode): for files changed in ways
	// that move none of those, such as stores through a shared mmap to a
	// page already dirty, which do not update mtime.
	ReadAll bool
}

// Progress is updated atomically by a running snapshot; a terminal
// renderer polls it.
type Progress struct {
	Files, Bytes, ReadBytes, NewBytes, StoredBytes atomic.Int64
	// TotalFiles and TotalBytes grow as a concurrent scan walks the
	// sources; ScanDone says when they are final.
	TotalFiles, TotalBytes atomic.Int64
	ScanDone               atomic.Bool
	Start                  time.Time
}

// Result is what Snapshot returns.
type Result struct {
	Snapshot *Snapshot
	Warnings []string
	Duration time.Duration
}

// ErrBusy: another writer holds the repository.
var ErrBusy = errors.New("another snapshot, forget or prune is running in this repository")

// TakeSnapshot takes one snapshot of req.Sources. Warnings (unreadable or
// vanished files) do not fail it; they come back in Result.Warnings.
// Nothing is visible until the final manifest commit, so a failure or a
// kill at any point leaves no partial snapshot, and the packs already
// committed are reused by the next run.
func (r *Repository) TakeSnapshot(ctx context.Context, req Request) (res *Result, err error) {
	if len(req.Sources) == 0 {
		return nil, errors.New("snapshot: no sources given")
	}
	seen := map[string]bool{}
	for _, s := range req.Sources {
		if !validName(s.Label) || seen[s.Label] {
			return nil, fmt.Errorf("snapshot: bad or repeated source label %q", s.Label)
		}
		seen[s.Label] = true
	}
	if !r.writeMu.TryLock() {
		if req.Warn != nil {
			req.Warn("waiting for another snapshot, forget or prune in this repository to finish")
		}
		r.writeMu.Lock()
	}
	defer r.writeMu.Unlock()

	// A pack lost since the last snapshot must not be deduplicated
	// against: its chunks are stored again (see ForgetMissingPacks).
	if packs, blobs, ferr := r.idx.ForgetMissingPacks(); ferr != nil {
		return nil, ferr
	} else if len(packs) > 0 && req.Warn != nil {
		req.Warn(fmt.Sprintf("%d pack file(s) are missing from the repository (first %s); their %d chunks will be stored again from the sources, and the snapshots that used them stay damaged: run `citadelfs check`",
			len(packs), packs[0].Short(), blobs))
	}

	start := r.opts.Now()
	defer func() { r.recordAttempts(req.Sources, res, start, err) }()
	if req.Time.IsZero() {
		req.Time = start
	}
	if req.Host == "" {
		req.Host, _ = os.Hostname()
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	a := &archiver{r: r, ctx: ctx, cancel: cancel, saver: newBlobSaver(r), progress: req.Progress, warnFn: req.Warn, readAll: req.ReadAll,
		fileCh: make(chan *fileJob, 64), chunkCh: make(chan *chunkJob, 2*r.opts.Workers)}
	if a.progress == nil {
		a.progress = &Progress{}
	}
	a.progress.Start = start
	a.bufPool.New = func() any { b := make([]byte, r.params.Max); return &b }
	if req.Progress != nil {
		go scanTotals(ctx, req.Sources, req.Progress)
	}
	var wg sync.WaitGroup
	// Counted before any starts, so the last to finish (and close chunkCh)
	// is really the last.
	a.fileWorkers.Store(int32(r.opts.Workers))
	for i := 0; i < r.opts.Workers; i++ {
		wg.Add(2)
		go func() { defer wg.Done(); a.chunkWorker() }()
		go func() { defer wg.Done(); a.fileWorker() }()
	}
	m := &Manifest{Version: 1, Time: req.Time.UTC(), Host: req.Host, Tags: req.Tags, Program: "citadelfs"}
	var walkErr error
	for _, spec := range req.Sources {
		src, err := a.saveSource(spec)
		if err != nil {
			walkErr = err
			break
		}
		if src != nil {
			m.Sources = append(m.Sources, *src)
		}
	}
	close(a.fileCh)
	// File workers exit, then chunk workers: the chunk channel is closed by
	// the last file worker (see fileWorker), so no send races a close.
	wg.Wait()
	if walkErr == nil {
		walkErr = context.Cause(ctx)
	}
	if walkErr != nil {
		a.saver.Abort()
		if errors.Is(walkErr, context.Canceled) && a.firstErr() != nil {
			walkErr = a.firstErr()
		}
		return nil, walkErr
	}
	if err := a.saver.Flush(); err != nil {
		return nil, err
	}
	if err := a.writeFileCache(); err != nil {
		return nil, err
	}
	if len(m.Sources) == 0 {
		return nil, fmt.Errorf("snapshot: no source could be read (%d warnings)", len(a.warnings))
	}
	m.Created = r.opts.Now().UTC()
	id, err := r.writeManifest(m)
	if err != nil {
		return nil, err
	}
	return &Result{Snapshot: &Snapshot{ID: id, Manifest: *m}, Warnings: a.warnings, Duration: r.opts.Now().Sub(start)}, nil
}

type archiver struct {
	r        *Repository
	ctx      context.Context
	cancel   context.CancelCauseFunc
	saver    *blobSaver
	progress *Progress
	warnFn   func(string)
	readAll  bool // Request.ReadAll

	fileCh      chan *fileJob
	chunkCh     chan *chunkJob
	fileWorkers atomic.Int32
	bufPool     sync.Pool

	mu         sync.Mutex
	warnings   []string
	err        error
	cacheBatch [][2][]byte
}

type sourceState struct {
	label string
	stats SourceStats
	st    sync.Mutex
	warns []string
}

func (s *sourceState) add(f func(*SourceStats)) {
	s.st.Lock()
	f(&s.stats)
	s.st.Unlock()
}

type fileJob struct {
	path  string
	key   []byte
	node  *Node
	stat  unix.Stat_t
	src   *sourceState
	done  chan struct{}
	skip  bool
	cache bool
}

type chunkJob struct {
	buf *[]byte
	n   int
	ref *ChunkRef
	wg  *sync.WaitGroup
	src *sourceState
}

func (a *archiver) fail(err error) {
	a.mu.Lock()
	if a.err == nil {
		a.err = err
	}
	a.mu.Unlock()
	a.cancel(err)
}

func (a *archiver) firstErr() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err
}

func (a *archiver) warn(src *sourceState, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	a.mu.Lock()
	a.warnings = append(a.warnings, msg)
	a.mu.Unlock()
	if src != nil {
		src.st.Lock()
		if len(src.warns) < 100 { // the manifest keeps a sample; the caller gets all
			src.warns = append(src.warns, msg)
		}
		src.st.Unlock()
	}
	if a.warnFn != nil {
		a.warnFn(msg)
	}
}

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
	nodes := make([]*Node, 0, len(names))
	var jobs []*fileJob
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
			jobs = append(jobs, job)
		case TypeSocket:
			a.warn(src, "%s: socket recorded (restore skips sockets)", full)
			src.add(func(s *SourceStats) { s.Others++ })
		default:
			src.add(func(s *SourceStats) { s.Others++ })
		}
		nodes = append(nodes, n)
	}
	skipped := map[*Node]bool{}
	for _, j := range jobs {
		select {
		case <-j.done:
		case <-a.ctx.Done():
			return index.ID{}, context.Cause(a.ctx)
		}
		if j.skip {
			skipped[j.node] = true
		}
	}
	t := &Tree{Nodes: make([]Node, 0, len(nodes))}
	for _, n := range nodes {
		if !skipped[n] {
			t.Nodes = append(t.Nodes, *n)
		}
	}
	return a.saveTree(t)
}

func (a *archiver) saveTree(t *Tree) (index.ID, error) {
	b := t.Encode()
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

// fileWorker reads files, cuts them into chunks and hands the chunks to
// the chunk workers.
func (a *archiver) fileWorker() {
	defer func() {
		if a.fileWorkers.Add(-1) == 0 {
			close(a.chunkCh)
		}
	}()
	ch := &chunker.Chunker{}
	buf := make([]byte, 3*a.r.params.Max)
	for job := range a.fileCh {
		if a.ctx.Err() == nil {
			a.readFile(job, ch, buf)
		}
		close(job.done)
	}
}

// chunkWorker hashes, dedups, compresses and stores chunks.
func (a *archiver) chunkWorker() {
	enc := codec.NewEncoder(codec.Options{})
	var out []byte
	for job := range a.chunkCh {
		if a.ctx.Err() == nil {
			if err := a.storeChunk(job, enc, &out); err != nil {
				a.fail(err)
			}
		}
		a.bufPool.Put(job.buf)
		job.wg.Done()
	}
}

func (a *archiver) storeChunk(job *chunkJob, enc *codec.Encoder, out *[]byte) error {
	data := (*job.buf)[:job.n]
	id := index.Hash(data)
	job.ref.ID = id
	isNew, err := a.saver.Reserve(id)
	if err != nil || !isNew {
		return err
	}
	o, cid, err := enc.Encode((*out)[:0], data)
	if err != nil {
		return fmt.Errorf("snapshot: encode chunk: %w", err)
	}
	*out = o
	if err := a.saver.Add(index.DataBlob, uint8(cid), id, o, len(data)); err != nil {
		return err
	}
	job.src.add(func(s *SourceStats) { s.NewBytes += int64(len(data)); s.StoredBytes += int64(len(o)); s.NewChunks++ })
	a.progress.NewBytes.Add(int64(len(data)))
	a.progress.StoredBytes.Add(int64(len(o)))
	return nil
}

// testHookRead, when a test sets it, runs in readFile with off -1 after the
// walk has stat'ed path and before the file is opened, and with each data
// extent's offset before that extent is read: the moments at which a test
// changes a real file under the snapshot deterministically.
var testHookRead func(path string, off int64)

func (a *archiver) readFile(job *fileJob, ch *chunker.Chunker, buf []byte) {
	src := job.src
	if testHookRead != nil {
		testHookRead(job.path, -1)
	}
	fd, err := unix.Open(job.path, unix.O_RDONLY|unix.O_NOATIME|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if errors.Is(err, unix.EPERM) { // O_NOATIME needs ownership or CAP_FOWNER
		fd, err = unix.Open(job.path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	}
	if err != nil {
		a.skipFile(job, "%s: %v (not saved)", job.path, errnoText(err))
		return
	}
	f := os.NewFile(uintptr(fd), job.path)
	defer f.Close()
	var before unix.Stat_t
	if err := unix.Fstat(fd, &before); err != nil {
		a.skipFile(job, "%s: %v (not saved)", job.path, err)
		return
	}
	extents, err := dataExtents(fd, &before)
	if err != nil {
		a.skipFile(job, "%s: %v (not saved)", job.path, err)
		return
	}
	refs, size, ok := a.readExtents(job, f, before.Size, extents, ch, buf)
	if !ok {
		return
	}
	if sparse := len(extents) != 1 || extents[0] != (extent{0, before.Size}); sparse && fileChanged(fd, &job.stat, &before) {
		// The holes came from SEEK_HOLE at one moment and the data from
		// reads at others: a file shrunk and regrown in between would get
		// a hole where it never had zeros. Read it again whole, so every
		// byte recorded is one the file held (it is saved as changed).
		var again unix.Stat_t
		if err := unix.Fstat(fd, &again); err != nil {
			a.skipFile(job, "%s: %v (not saved)", job.path, err)
			return
		}
		if refs, size, ok = a.readExtents(job, f, again.Size, []extent{{0, again.Size}}, ch, buf); !ok {
			return
		}
		before = again
	}
	job.node.Content = make([]ChunkRef, len(refs))
	var read int64
	for i, r := range refs {
		job.node.Content[i] = *r
		read += r.Length
	}
	// The node was made from the walk's stat, which may be older than the
	// file opened here: its size must be the one read, or the missing
	// tail would be restored as zeros that never were in the file.
	job.node.Size = size
	src.add(func(s *SourceStats) { s.ReadBytes += read; s.DataBytes += read })
	a.progress.Files.Add(1)
	if fileChanged(fd, &job.stat, &before) {
		// Keep what was read (it is a valid past state of most of the
		// file) but say so, and do not cache it: the next run reads again.
		a.warn(src, "%s: changed while being read (saved as read; next snapshot reads it again)", job.path)
		src.add(func(s *SourceStats) { s.Changed++ })
		return
	}
	a.queueCacheEntry(job.key, job.node)
}

// readExtents cuts the data extents of f into chunks for the chunk workers
// and returns them with the file's size as read: size as stat'ed, or the
// offset where a read first came up short. Nothing past a short read is
// read, so a file shrunk and regrown meanwhile never gets a hole recorded
// where it had data. ok is false if the file was skipped or the snapshot
// cancelled.
func (a *archiver) readExtents(job *fileJob, f *os.File, size int64, extents []extent, ch *chunker.Chunker, buf []byte) (refs []*ChunkRef, end int64, ok bool) {
	var wg sync.WaitGroup
	defer wg.Wait() // the chunk workers fill in the refs' ids
	for _, ext := range extents {
		if testHookRead != nil {
			testHookRead(job.path, ext.off)
		}
		ch.Reset(io.NewSectionReader(f, ext.off, ext.len), a.r.params, buf)
		pos := ext.off
		for {
			c, err := ch.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				a.skipFile(job, "%s: read: %v (not saved)", job.path, err)
				return nil, 0, false
			}
			bp := a.bufPool.Get().(*[]byte)
			n := copy(*bp, c)
			ref := &ChunkRef{Offset: pos, Length: int64(n)}
			refs = append(refs, ref)
			pos += int64(n)
			wg.Add(1)
			select {
			case a.chunkCh <- &chunkJob{buf: bp, n: n, ref: ref, wg: &wg, src: job.src}:
			case <-a.ctx.Done():
				wg.Done()
				return nil, 0, false
			}
			a.progress.Bytes.Add(int64(n))
			a.progress.ReadBytes.Add(int64(n))
		}
		if pos < ext.off+ext.len {
			return refs, pos, true
		}
	}
	return refs, size, true
}

// fileChanged reports whether the open file fd differs now from its stat
// before reading, or that from the walk's stat of its path.
func fileChanged(fd int, walked, before *unix.Stat_t) bool {
	var now unix.Stat_t
	return unix.Fstat(fd, &now) != nil || !sameFile(walked, before) || !sameFile(before, &now)
}

// sameFile reports whether two stats of one path show the same file with
// the same content, as far as a stat can tell.
func sameFile(x, y *unix.Stat_t) bool {
	return x.Ino == y.Ino && x.Dev == y.Dev && x.Size == y.Size && x.Mtim == y.Mtim && x.Ctim == y.Ctim
}

func (a *archiver) skipFile(job *fileJob, format string, args ...any) {
	job.skip = true
	a.warn(job.src, format, args...)
	job.src.add(func(s *SourceStats) { s.Unreadable++ })
}

func errnoText(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

type extent struct{ off, len int64 }

// dataExtents lists the regions of a file that hold data. Only a file
// whose allocated blocks are fewer than its size can have holes, so the
// common case costs no extra system calls.
func dataExtents(fd int, st *unix.Stat_t) ([]extent, error) {
	if st.Size == 0 {
		return nil, nil
	}
	if st.Blocks*512 >= st.Size {
		return []extent{{0, st.Size}}, nil
	}
	var out []extent
	var off int64
	for off < st.Size {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // only a hole remains
		}
		if err != nil {
			if errors.Is(err, unix.EINVAL) { // file system without SEEK_DATA
				return []extent{{0, st.Size}}, nil
			}
			return nil, err
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			return nil, err
		}
		if hole > st.Size {
			hole = st.Size
		}
		if hole > data {
			out = append(out, extent{data, hole - data})
		}
		off = hole
	}
	return out, nil
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

func nodeFromStat(name string, st *unix.Stat_t) *Node {
	n := &Node{Name: name, Mode: st.Mode, UID: st.Uid, GID: st.Gid, Size: st.Size,
		Mtime: st.Mtim.Nano(), Atime: st.Atim.Nano(), Ctime: st.Ctim.Nano(),
		Inode: st.Ino, Dev: st.Dev, Nlink: uint32(st.Nlink), Rdev: st.Rdev}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		n.Type = TypeFile
	case unix.S_IFDIR:
		n.Type = TypeDir
		n.Size = 0
		n.Nlink = 0 // derived from the tree when served; keeps trees stable
	case unix.S_IFLNK:
		n.Type = TypeSymlink
	case unix.S_IFIFO:
		n.Type = TypeFIFO
		n.Size = 0
	case unix.S_IFCHR:
		n.Type = TypeCharDev
		n.Size = 0
	case unix.S_IFBLK:
		n.Type = TypeBlockDev
		n.Size = 0
	default:
		n.Type = TypeSocket
		n.Size = 0
	}
	if n.Type != TypeFile {
		n.Inode, n.Dev = 0, 0 // only files form hardlink groups
		if n.Type != TypeDir {
			n.Nlink = 1
		}
	}
	// Atime is recorded for regular files (read with O_NOATIME, so our own
	// reads never change it). Listing a directory or reading a symlink
	// updates its atime, so those are left out: unchanged trees stay
	// byte-identical and deduplicate.
	if n.Type != TypeFile {
		n.Atime = 0
	}
	return n
}

// readXattrs returns a path's extended attributes in name order.
func readXattrs(path string) []Xattr {
	sz, err := unix.Llistxattr(path, nil)
	if err != nil || sz <= 0 {
		return nil
	}
	buf := make([]byte, sz)
	sz, err = unix.Llistxattr(path, buf)
	if err != nil {
		return nil
	}
	var out []Xattr
	for _, name := range splitNul(buf[:sz]) {
		vs, err := unix.Lgetxattr(path, name, nil)
		if err != nil {
			continue
		}
		val := make([]byte, vs)
		vs, err = unix.Lgetxattr(path, name, val)
		if err != nil {
			continue
		}
		out = append(out, Xattr{Name: name, Value: val[:vs]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func splitNul(b []byte) []string {
	var out []string
	start := 0
	for i, c := range b {
		if c == 0 {
			if i > start {
				out = append(out, string(b[start:i]))
			}
			start = i + 1
		}
	}
	return out
}

// scanTotals walks the sources concurrently with the snapshot to give the
// progress display a total for its ETA.
func scanTotals(ctx context.Context, sources []SourceSpec, p *Progress) {
	defer p.ScanDone.Store(true)
	for _, s := range sources {
		filepath.WalkDir(s.Path, func(path string, d fs.DirEntry, err error) error {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err != nil || !d.Type().IsRegular() {
				return nil
			}
			if fi, err := d.Info(); err == nil {
				p.TotalFiles.Add(1)
				p.TotalBytes.Add(fi.Size())
			}
			return nil
		})
	}
}

// fuseSuperMagic is FUSE's f_type in statfs(2).
const fuseSuperMagic = 0x65735546

func isFUSE(path string) bool {
	var sfs unix.Statfs_t
	return unix.Statfs(path, &sfs) == nil && sfs.Type == fuseSuperMagic
}
