package snapshot

// The file saver: file workers read each file (its data extents only),
// cut it into chunks and hand them to the chunk workers, which hash,
// deduplicate, compress and store them through the blob saver.

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"citadelfs/index"
	"citadelfs/snapshot/chunker"
	"citadelfs/snapshot/codec"
)

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

// fileWorker reads files, cuts them into chunks and hands the chunks to
// the chunk workers.
func (a *archiver) fileWorker() {
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
	id := a.r.blobID(data)
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
			// The chunk is read straight into the buffer the chunk worker
			// gets (chunker.NextInto), not copied out of the chunker's.
			bp := a.bufPool.Get().(*[]byte)
			c, err := ch.NextInto(*bp)
			if err == io.EOF {
				a.bufPool.Put(bp)
				break
			}
			if err != nil {
				a.bufPool.Put(bp)
				a.skipFile(job, "%s: read: %v (not saved)", job.path, err)
				return nil, 0, false
			}
			n := len(c)
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
