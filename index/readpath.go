package index

import (
	"errors"
	"fmt"
	"io"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ErrPackMissing: the pack file an index entry names is not on disk. It
// is ErrCorrupt too, unless prune moved the blob a moment ago (look it up
// again).
var ErrPackMissing = errors.New("pack missing")

// errPackMissing is ErrPackMissing and ErrCorrupt at once, printed once.
var errPackMissing = fmt.Errorf("%w: %w", ErrPackMissing, ErrCorrupt)

// ReadStored returns the stored (still encoded) bytes of a blob, read
// into buf when it is large enough (the result may start inside buf).
//
// The store decides how: LocalStore copies blobs already in the page
// cache from it and reads others of at least directReadMin bytes straight
// from the disk (O_DIRECT) into buf, when buf is aligned and has room for
// the blob plus directAlign on each side (see readDirect).
//
// It always reads the store: check, copy, prune and repair judge or carry
// the repository's own bytes. Reads that only want the data (restore, the
// mount) use ReadStoredCached.
func (r *Repo) ReadStored(ref BlobRef, buf []byte) ([]byte, error) {
	b, err := r.Store.ReadRange(PackName(ref.Pack), int64(ref.Offset), int(ref.Length), buf)
	switch {
	case err == nil:
		return b, nil
	case isNotExist(err):
		return nil, fmt.Errorf("index: pack %s is missing: %w", ref.Pack.Short(), errPackMissing)
	case errors.Is(err, io.ErrUnexpectedEOF):
		// The pack ends before the blob does: truncated.
		return nil, fmt.Errorf("index: read blob %s from pack %s: short read: %w", ref.ID.Short(), ref.Pack.Short(), ErrCorrupt)
	}
	// The disk, the file system or the store failed (EIO, ESTALE, a
	// 503, ...): an error, but not a finding about the backup's bytes.
	return nil, fmt.Errorf("index: read blob %s from pack %s: %w", ref.ID.Short(), ref.Pack.Short(), err)
}

// ReadSpan returns n stored bytes of pack from off, into buf when it is
// large enough: several blobs that lie back to back, fetched at once (a
// restore from a store reads a file's chunks this way, one ranged GET
// for many). The caller checks each blob it cuts from them; on an error
// it reads them one by one with ReadStored, whose errors say which blob
// and what is wrong.
func (r *Repo) ReadSpan(pack ID, off int64, n int, buf []byte) ([]byte, error) {
	b, err := r.Store.ReadRange(PackName(pack), off, n, buf)
	if err != nil {
		return nil, fmt.Errorf("index: read %d bytes at %d of pack %s: %w", n, off, pack.Short(), err)
	}
	return b, nil
}

// ReadStoredCached is ReadStored through the repository's BlobCache, if
// it has one: a hit is not fetched, and with keep what is fetched is kept
// (a restore, which reads each blob once, does not keep: that would write
// everything it restores a second time, and push out what the mount
// reads again).
func (r *Repo) ReadStoredCached(ref BlobRef, buf []byte, keep bool) ([]byte, error) {
	if r.BlobCache == nil {
		return r.ReadStored(ref, buf)
	}
	if b, ok := r.BlobCache.Get(ref, buf); ok {
		return b, nil
	}
	b, err := r.ReadStored(ref, buf)
	if err == nil && keep {
		r.BlobCache.Put(ref, b)
	}
	return b, err
}

// DropCached removes ref's entry from the blob cache and reports whether
// there was one. A blob whose bytes fail their check after a read is
// dropped and read once more before it counts as damage: what the cache
// held may be what a store handed back wrong once, not what it holds.
func (r *Repo) DropCached(ref BlobRef) bool {
	return r.BlobCache != nil && r.BlobCache.Drop(ref)
}

// CacheStored keeps b, the stored bytes of ref, in the blob cache (if
// there is one): after DropCached, what the store returned and its check
// passed.
func (r *Repo) CacheStored(ref BlobRef, b []byte) {
	if r.BlobCache != nil {
		r.BlobCache.Put(ref, b)
	}
}

// directReadMin is the smallest blob read with O_DIRECT: small blobs
// (config files) are read through the page cache, where their neighbours
// in the pack come along.
const directReadMin = 64 << 10

// readDirect reads a blob that is not in the page cache with O_DIRECT. ok
// is false when that does not apply or failed; the caller then reads the
// ordinary way, which also reports the error if there is one.
//
// Reading a backup back (a restore, a cp -a out of the mount) this way
// neither evicts the server's own files (model weights) from the page
// cache nor pays for filling it with pages nobody reads twice; the
// decoded file is what the mount's readers get cached. It applies when
// buf is aligned and has room for the blob plus directAlign on each side.
func readDirect(pf *packFile, off int64, n int, buf []byte) ([]byte, bool) {
	if pf.direct == nil || n < directReadMin {
		return nil, false
	}
	start := off &^ (directAlign - 1)
	end := (off + int64(n) + directAlign - 1) &^ (directAlign - 1)
	span := int(end - start)
	if cap(buf) < span || uintptr(unsafe.Pointer(&buf[:1][0]))&(directAlign-1) != 0 {
		return nil, false
	}
	// In the page cache already (read a moment ago, or by someone else):
	// the ordinary read takes it from there. cachestat(2) asks without
	// side effects (a RWF_NOWAIT read that misses starts readahead of the
	// very pages this is meant to skip); without it (Linux < 6.5) every
	// read is an ordinary one.
	var cs unix.Cachestat_t
	if err := unix.Cachestat(uint(pf.f.Fd()), &unix.CachestatRange{Off: uint64(start), Len: uint64(span)}, &cs, 0); err != nil ||
		cs.Cache >= uint64(span)/directAlign {
		return nil, false
	}
	got, err := unix.Pread(int(pf.direct.Fd()), buf[:span], start)
	if err != nil || int64(got) < off+int64(n)-start {
		return nil, false // at the end of a short pack got is less than span
	}
	skip := int(off - start)
	return buf[skip : skip+n], true
}
