package index

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Blobs calls fn for every blob in the index.
func (r *Repo) Blobs(fn func(BlobRef) error) error {
	lo := []byte{prefixBlob}
	return r.KV.Scan(lo, PrefixEnd(lo), func(k, v []byte) error {
		if len(k) != 33 {
			return fmt.Errorf("index: blob key of %d bytes: %w", len(k), ErrCorrupt)
		}
		var id ID
		copy(id[:], k[1:])
		ref, err := DecodeBlobRef(id, v)
		if err != nil {
			return err
		}
		return fn(ref)
	})
}

// IndexedPacks calls fn for every pack recorded in the index.
func (r *Repo) IndexedPacks(fn func(id ID, blobs int, size uint64) error) error {
	lo := []byte{prefixPack}
	return r.KV.Scan(lo, PrefixEnd(lo), func(k, v []byte) error {
		if len(k) != 33 || len(v) != 12 {
			return fmt.Errorf("index: pack record malformed: %w", ErrCorrupt)
		}
		var id ID
		copy(id[:], k[1:])
		return fn(id, int(uint32(v[0])|uint32(v[1])<<8|uint32(v[2])<<16|uint32(v[3])<<24), uint64(le64(v[4:])))
	})
}

func le64(b []byte) uint64 {
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
}

// DeleteBlobs removes index entries in one synced batch.
func (r *Repo) DeleteBlobs(ids []ID) error {
	b := r.KV.NewBatch()
	for _, id := range ids {
		b.Delete(blobKey(id))
	}
	return b.Commit(true)
}

// ReplacePack points the blobs salvaged from a damaged pack at the new
// pack that holds them now (entries, already durable: PackWriter.Finish),
// drops the blobs that could not be salvaged (lost) and the old pack's
// record, all in one synced batch. The old pack file and its quarantine
// records stay: the caller removes them after this (RemovePack), so a
// crash in between leaves a pack that no index entry uses and that its
// quarantine marks as damaged (AdoptOrphanPacks leaves it alone).
func (r *Repo) ReplacePack(old, pack ID, entries []PackEntry, size uint64, lost []ID) error {
	// (A rewrite with the same id replaced the old file; the store's
	// Commit dropped any open handle that would still read the damaged
	// bytes.)
	b := r.KV.NewBatch()
	if len(entries) > 0 {
		putPack(b, pack, entries, len(entries), size)
	}
	for _, id := range lost {
		b.Delete(blobKey(id))
	}
	if old != pack {
		b.Delete(append([]byte{prefixPack}, old[:]...))
	}
	if err := b.Commit(true); err != nil {
		return err
	}
	if len(entries) > 0 {
		r.noteWritten(pack, entries, size)
	}
	return nil
}

// rebuildPrefix names the directory a rebuild builds the new index in;
// replacedPrefix the old index, moved aside where RENAME_EXCHANGE is not
// available.
const (
	rebuildPrefix  = "index.new-"
	replacedPrefix = "index.replaced-"
)

// swapIn makes the finished index at building the repository's index in
// one atomic step: RENAME_EXCHANGE with the old one (which then sits at
// building and is removed), or a plain rename where there was none. The
// repository directory is synced so the swap survives a crash.
func swapIn(building, idx string) error {
	err := unix.Renameat2(unix.AT_FDCWD, building, unix.AT_FDCWD, idx, unix.RENAME_EXCHANGE)
	switch {
	case errors.Is(err, unix.ENOENT):
		err = os.Rename(building, idx)
	case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOSYS), errors.Is(err, unix.EOPNOTSUPP):
		// No RENAME_EXCHANGE here (NFS, CIFS, vfat, some FUSE file
		// systems): two renames. Between them there is no index, only
		// index.replaced-*, which Open puts back (see
		// finishInterruptedSwap), so a crash there leaves the old index,
		// as a killed rebuild does.
		replaced := filepath.Join(filepath.Dir(idx), replacedPrefix+filepath.Base(building)[len(rebuildPrefix):])
		if err = os.Rename(idx, replaced); err == nil {
			if err = os.Rename(building, idx); err != nil {
				os.Rename(replaced, idx)
			} else {
				building = replaced // removed below
			}
		}
	}
	if err != nil {
		return fmt.Errorf("index: put the rebuilt index in place: %w", err)
	}
	if err := syncDir(filepath.Dir(idx)); err != nil {
		return err
	}
	os.RemoveAll(building) // the old index, after an exchange
	return nil
}

// removeRebuildLeftovers removes what killed rebuilds left: an unfinished
// index.new-*, or after the swap the old index under that name. Only
// under the repository lock. (Versions before the swap moved the old
// index to index.old-* first and built in place: see oldRebuildLeftovers.)
func removeRebuildLeftovers(dir string) {
	finishInterruptedSwap(dir)
	left, _ := filepath.Glob(filepath.Join(dir, rebuildPrefix+"*"))
	for _, p := range left {
		os.RemoveAll(p)
	}
}

// finishInterruptedSwap settles a two-rename swap (see swapIn) that a
// crash cut short: with an index in place the old one aside is removed;
// with none, the old one goes back.
func finishInterruptedSwap(dir string) {
	idx := filepath.Join(dir, indexDir)
	replaced, _ := filepath.Glob(filepath.Join(dir, replacedPrefix+"*"))
	for _, p := range replaced {
		if _, err := os.Stat(idx); errors.Is(err, os.ErrNotExist) {
			if os.Rename(p, idx) == nil {
				syncDir(dir)
				continue
			}
		}
		os.RemoveAll(p)
	}
}

// oldRebuildLeftovers returns the index.old-* that a rebuild by an
// earlier version leaves when it is killed: then <repo>/index is only
// partly built, and opening it would hide snapshots (and prune would
// delete their data).
func oldRebuildLeftovers(dir string) []string {
	left, _ := filepath.Glob(filepath.Join(dir, "index.old-*"))
	return left
}

// ForgetMissingPacks drops from the index every pack that is no longer on
// disk, and the blobs it held: a pack deleted or lost by hand. Otherwise
// the next snapshot would find those chunks "already stored", reuse them
// (and the file-change cache would skip the files), and commit a
// snapshot that cannot be restored although its sources were intact.
// Dropped, the chunks are stored again from the sources. The snapshots
// that used them stay damaged; check names them. It returns the packs
// dropped and how many blobs went with them. Callers hold the write lock.
func (r *Repo) ForgetMissingPacks() (packs []ID, blobs int, err error) {
	onDisk, err := r.ListPacks()
	if err != nil {
		return nil, 0, err
	}
	present := make(map[ID]bool, len(onDisk))
	for _, p := range onDisk {
		present[p.ID] = true
	}
	lo := []byte{prefixPack}
	missing := map[ID]bool{}
	indexed := 0
	if err := r.KV.Scan(lo, PrefixEnd(lo), func(k, _ []byte) error {
		var id ID
		if len(k) == len(id)+1 {
			indexed++
			copy(id[:], k[1:])
			if !present[id] {
				missing[id] = true
			}
		}
		return nil
	}); err != nil {
		return nil, 0, err
	}
	if len(missing) == 0 {
		return nil, 0, nil
	}
	if len(missing)*2 > indexed {
		// Most of the repository gone at once is a disk not mounted or
		// a wrong path, not loss: forgetting it would take a repair to
		// undo. Refuse, and let the operator look.
		return nil, 0, fmt.Errorf("index: %d of %d pack files are missing from %s/%s (a disk not mounted?); nothing was changed: check the disk, then run `citadelfs check`: %w",
			len(missing), indexed, r.Dir, packsDir, ErrCorrupt)
	}
	var gone []ID
	if err := r.Blobs(func(b BlobRef) error {
		if missing[b.Pack] {
			gone = append(gone, b.ID)
		}
		return nil
	}); err != nil {
		return nil, 0, err
	}
	// One batch: the blobs and their packs go together or not at all.
	b := r.KV.NewBatch()
	for _, id := range gone {
		b.Delete(blobKey(id))
	}
	for id := range missing {
		b.Delete(append([]byte{prefixPack}, id[:]...))
		packs = append(packs, id)
	}
	if err := b.Commit(true); err != nil {
		return nil, 0, err
	}
	for _, id := range packs {
		if err := r.dropPackQuarantine(id); err != nil {
			return nil, 0, err
		}
	}
	return packs, len(gone), nil
}
