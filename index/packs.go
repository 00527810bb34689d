package index

import (
	"encoding/binary"
	"fmt"
)

// AdoptOrphanPacks indexes complete packs on disk that the index does not
// know (left by a writer killed between a pack's rename and its index
// commit). Only blobs not indexed elsewhere are added. Packs whose trailer
// does not verify are left alone for check to report. It returns the
// number of packs adopted.
func (r *Repo) AdoptOrphanPacks() (int, error) {
	packs, err := r.ListPacks()
	if err != nil {
		return 0, err
	}
	adopted := 0
	for _, p := range packs {
		if ok, err := r.KV.Has(append([]byte{prefixPack}, p.ID[:]...)); err != nil || ok {
			if err != nil {
				return adopted, err
			}
			continue
		}
		if q, err := r.PackQuarantine(p.ID); err != nil || len(q) > 0 {
			// Known damaged: `repair packs` was dropping it (or prune
			// found it bad). Its good blobs are indexed elsewhere.
			if err != nil {
				return adopted, err
			}
			continue
		}
		es, size, err := r.ReadPackTrailer(p.ID)
		if err != nil {
			continue
		}
		var fresh []PackEntry
		for _, e := range es {
			if e.Type == SnapshotBlob {
				continue // an uncommitted snapshot stays invisible
			}
			if ok, err := r.HasBlob(e.ID); err != nil {
				return adopted, err
			} else if !ok {
				fresh = append(fresh, e)
			}
		}
		if err := r.CommitPack(p.ID, fresh, uint64(size)); err != nil {
			return adopted, err
		}
		adopted++
	}
	return adopted, nil
}

// IsIndexedPack reports whether the index has a record of pack id.
func (r *Repo) IsIndexedPack(id ID) (bool, error) {
	return r.KV.Has(append([]byte{prefixPack}, id[:]...))
}

// putPack adds to b the blob entries of pack that it serves and the
// pack's own record (how many blobs it holds, its size): the one place
// the pack record is encoded, for a commit, a repair and a rebuild.
func putPack(b *Batch, pack ID, serves []PackEntry, count int, size uint64) {
	for _, e := range serves {
		b.Put(blobKey(e.ID), encodeBlobRef(pack, e))
	}
	var pv [12]byte
	binary.LittleEndian.PutUint32(pv[0:], uint32(count))
	binary.LittleEndian.PutUint64(pv[4:], size)
	b.Put(append([]byte{prefixPack}, pack[:]...), pv[:])
}

// CommitPack records a finished, durable pack and all its blobs in one
// synced batch. extra is applied in the same batch (snapshot records go
// in a later, separate commit).
func (r *Repo) CommitPack(pack ID, entries []PackEntry, size uint64) error {
	b := r.KV.NewBatch()
	putPack(b, pack, entries, len(entries), size)
	if err := b.Commit(true); err != nil {
		return err
	}
	r.noteWritten(pack, entries, size)
	return nil
}

// PackInfo describes a pack file on disk.
type PackInfo struct {
	ID   ID
	Size int64
}

// ListPacks lists every complete pack in the store.
func (r *Repo) ListPacks() ([]PackInfo, error) { return ListStorePacks(r.Store) }

// ListPackFiles is ListPacks for a repository directory that is not open.
func ListPackFiles(repoDir string) ([]PackInfo, error) {
	return ListStorePacks(NewLocalStore(repoDir, 1))
}

// ReadPackTrailer reads the trailer of pack id.
func (r *Repo) ReadPackTrailer(id ID) ([]PackEntry, int64, error) {
	return ReadStoreTrailerWith(r.Store, id, r.Keys)
}

// ReadStoreTrailer reads the trailer of pack id in store s: a stat and
// three ranged reads (header, footer, trailer), never the whole pack.
func ReadStoreTrailer(s Store, id ID) ([]PackEntry, int64, error) {
	return ReadStoreTrailerWith(s, id, nil)
}

// ReadStoreTrailerWith is ReadStoreTrailer for a repository with keys
// (DecodeTrailerWith).
func ReadStoreTrailerWith(s Store, id ID, keys *Keys) ([]PackEntry, int64, error) {
	name := PackName(id)
	size, err := s.Stat(name)
	if isNotExist(err) {
		return nil, 0, fmt.Errorf("index: pack %s is missing: %w", id.Short(), errPackMissing)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("index: stat pack %s: %w", id.Short(), err)
	}
	es, err := decodeTrailer(readerAt{s, name}, size, keys, &id)
	if err != nil {
		return nil, 0, fmt.Errorf("pack %s: %w", id.Short(), err)
	}
	return es, size, nil
}

// RemovePack deletes a pack file and its index record. Callers must first
// have removed (or re-pointed) every blob entry that refers to it.
func (r *Repo) RemovePack(id ID) error {
	if err := r.checkLock(); err != nil {
		return err
	}
	if err := r.Store.Delete(PackName(id)); err != nil {
		return fmt.Errorf("index: remove pack %s: %w", id.Short(), err)
	}
	r.packsRemoved.Add(1)
	if err := r.KV.Delete(append([]byte{prefixPack}, id[:]...), true); err != nil {
		return err
	}
	// The damaged copies it held went with it.
	return r.dropPackQuarantine(id)
}
