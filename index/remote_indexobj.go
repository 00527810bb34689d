package index

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
)

// Index objects: each process that commits packs to a remote repository
// also puts index/<random>, which names the blobs of every pack it
// committed (the trailers' entries, with each pack's id and size), before
// the snapshot that uses them becomes visible. A host catching up reads
// one index object per writing session instead of two ranged reads per
// pack; packs no index object names (a writer killed before it put one)
// are still read from their trailers. Entries of packs no longer in the
// store (pruned) are skipped. The cache remembers which index objects it
// applied (prefixIndexObj).
//
// Layout: "CTDLIDX1" | pack count u32 | per pack: id [32] | size u64 |
// entry count u32 | entries (the trailer's encoding) | CRC-32C of all
// that u32.

const (
	indexObjsPrefix = "index/"
	indexObjMagic   = "CTDLIDX1"
	// prefixIndexObj: i<object name> -> nothing: an index object applied
	// to this cache (remote repositories only).
	prefixIndexObj = 'i'
)

type writtenPack struct {
	id      ID
	size    uint64
	entries []PackEntry
}

// noteWritten records a pack this process committed, for its next index
// object.
func (r *Repo) noteWritten(id ID, entries []PackEntry, size uint64) {
	if !r.remote {
		return
	}
	r.writtenMu.Lock()
	r.written = append(r.written, writtenPack{id, size, append([]PackEntry(nil), entries...)})
	r.writtenMu.Unlock()
}

// FlushIndexObject puts an index object naming the packs this process
// committed since the last one; nothing when there are none.
func (r *Repo) FlushIndexObject() error {
	if !r.remote {
		return nil
	}
	r.writtenMu.Lock()
	defer r.writtenMu.Unlock()
	if len(r.written) == 0 {
		return nil
	}
	var rnd [16]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return err
	}
	name := indexObjsPrefix + hex.EncodeToString(rnd[:])
	obj := encodeIndexObj(r.written)
	if r.Keys != nil {
		// Sealed: it names every blob and pack, as the trailers do.
		var err error
		if obj, err = r.Keys.sealObject(adIndexObj, []byte(name), obj); err != nil {
			return err
		}
	}
	if err := r.Store.Put(name, obj); err != nil {
		return fmt.Errorf("index: put index object: %w", err)
	}
	// Our own cache knows these packs already.
	if err := r.KV.Put(append([]byte{prefixIndexObj}, name...), nil, false); err != nil {
		return err
	}
	r.written = nil
	return nil
}

func encodeIndexObj(ps []writtenPack) []byte {
	b := []byte(indexObjMagic)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(ps)))
	for _, p := range ps {
		b = append(b, p.id[:]...)
		b = binary.LittleEndian.AppendUint64(b, p.size)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(p.entries)))
		b = append(b, encodeTrailer(p.entries)...)
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, crcTable))
}

var errBadIndexObj = fmt.Errorf("index object malformed: %w", ErrCorrupt)

// decodeStoredIndexObj decodes index object name as read from the store:
// for an encrypted repository it opens it first (a changed byte, or an
// object moved to another name, is ErrNotAuthentic).
func decodeStoredIndexObj(keys *Keys, name string, b []byte) ([]writtenPack, error) {
	if keys != nil {
		plain, err := keys.openObject(adIndexObj, []byte(name), b)
		if err != nil {
			return nil, err
		}
		b = plain
	}
	return decodeIndexObjMax(b, storedBlobMax(keys != nil))
}

func decodeIndexObj(b []byte) ([]writtenPack, error) { return decodeIndexObjMax(b, MaxBlobSize) }

func decodeIndexObjMax(b []byte, maxStored uint32) ([]writtenPack, error) {
	if len(b) < len(indexObjMagic)+8 || string(b[:len(indexObjMagic)]) != indexObjMagic {
		return nil, errBadIndexObj
	}
	body, sum := b[:len(b)-4], binary.LittleEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, crcTable) != sum {
		return nil, fmt.Errorf("index object checksum mismatch: %w", ErrCorrupt)
	}
	rest := body[len(indexObjMagic):]
	n := binary.LittleEndian.Uint32(rest)
	rest = rest[4:]
	var out []writtenPack
	for i := uint32(0); i < n; i++ {
		if len(rest) < 32+8+4 {
			return nil, errBadIndexObj
		}
		var p writtenPack
		copy(p.id[:], rest)
		p.size = binary.LittleEndian.Uint64(rest[32:])
		c := uint64(binary.LittleEndian.Uint32(rest[40:]))
		rest = rest[44:]
		if c*entrySize > uint64(len(rest)) {
			return nil, errBadIndexObj
		}
		es, err := parseTrailerMax(rest[:c*entrySize], p.size, maxStored)
		if err != nil {
			return nil, err
		}
		p.entries = es
		rest = rest[c*entrySize:]
		out = append(out, p)
	}
	if len(rest) != 0 {
		return nil, errBadIndexObj
	}
	return out, nil
}

// applyIndexObjects indexes, from the index objects this cache has not
// applied yet, the packs of present (the store's, with sizes) that the
// cache does not know. It returns how many packs it indexed; a damaged
// index object is named in res.Damaged and its packs are left to their
// trailers.
func (r *Repo) applyIndexObjects(present map[ID]int64, res *SyncResult) (int, error) {
	var names []string
	if err := r.Store.List(indexObjsPrefix, func(name string, size int64) error {
		names = append(names, name)
		return nil
	}); err != nil {
		return 0, fmt.Errorf("index: list index objects: %w", err)
	}
	added := 0
	for _, name := range names {
		key := append([]byte{prefixIndexObj}, name...)
		if ok, err := r.KV.Has(key); err != nil || ok {
			if err != nil {
				return added, err
			}
			continue
		}
		size, err := r.Store.Stat(name)
		if err != nil {
			if isNotExist(err) {
				continue
			}
			return added, err
		}
		if size > 256<<20 {
			res.Damaged = append(res.Damaged, fmt.Sprintf("%s: %d bytes", name, size))
			continue
		}
		data, err := r.Store.ReadRange(name, 0, int(size), nil)
		if err != nil {
			return added, fmt.Errorf("index: read %s: %w", name, err)
		}
		ps, err := decodeStoredIndexObj(r.Keys, name, data)
		if err != nil {
			res.Damaged = append(res.Damaged, fmt.Sprintf("%s: %v", strings.TrimPrefix(name, indexObjsPrefix), err))
			continue
		}
		for _, p := range ps {
			sz, ok := present[p.id]
			if !ok || uint64(sz) != p.size {
				continue // pruned since, or not what the store holds
			}
			if ok, err := r.IsIndexedPack(p.id); err != nil || ok {
				if err != nil {
					return added, err
				}
				continue
			}
			var keep []PackEntry
			for _, e := range p.entries {
				if has, err := r.HasBlob(e.ID); err != nil {
					return added, err
				} else if !has {
					keep = append(keep, e)
				}
			}
			if err := r.commitRebuiltPack(p.id, keep, len(p.entries), p.size); err != nil {
				return added, err
			}
			added++
		}
		if err := r.KV.Put(key, nil, true); err != nil {
			return added, err
		}
	}
	return added, nil
}

// dropDeadIndexObjects deletes the index objects none of whose packs the
// store still holds. Only a holder of the exclusive lock that deleted
// packs (prune, repair) runs it: nobody else deletes packs.
func (r *Repo) dropDeadIndexObjects() error {
	present := map[ID]bool{}
	packs, err := r.ListPacks()
	if err != nil {
		return err
	}
	for _, p := range packs {
		present[p.ID] = true
	}
	var names []string
	if err := r.Store.List(indexObjsPrefix, func(name string, _ int64) error {
		names = append(names, name)
		return nil
	}); err != nil {
		return err
	}
	for _, name := range names {
		size, err := r.Store.Stat(name)
		if err != nil || size > 256<<20 {
			continue
		}
		data, err := r.Store.ReadRange(name, 0, int(size), nil)
		if err != nil {
			continue
		}
		ps, err := decodeStoredIndexObj(r.Keys, name, data)
		if err != nil {
			continue // damaged: left for the operator to look at
		}
		live := false
		for _, p := range ps {
			if present[p.id] {
				live = true
				break
			}
		}
		if !live {
			// One still under Object Lock stays until its retention ends.
			if err := r.Store.Delete(name); err != nil && !errors.Is(err, ErrObjectLocked) {
				return err
			}
		}
	}
	return nil
}
