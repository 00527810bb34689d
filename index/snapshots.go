package index

import (
	"errors"
	"fmt"
	"time"
)

// PutSnapshot commits a snapshot record with Sync. This is the last write
// of a snapshot: before it, nothing of the snapshot is visible.
//
// In a remote repository the snapshot is committed by its snapshots/<id>
// object, put first: the cache's record follows it.
func (r *Repo) PutSnapshot(id ID, manifest []byte) error {
	if r.remote {
		if err := r.checkLock(); err != nil {
			return err
		}
		if err := r.checkPacksStillStored(id); err != nil {
			return err
		}
		// The index object first: a host that sees the snapshot finds
		// the packs it uses without reading their trailers.
		if err := r.FlushIndexObject(); err != nil {
			return err
		}
		obj := manifest
		if r.Keys != nil {
			// Sealed: the manifest names the host, the paths and the
			// root trees.
			var err error
			if obj, err = r.Keys.sealObject(adSnapshot, id[:], manifest); err != nil {
				return err
			}
		}
		if err := r.Store.Put(snapshotName(id), obj); err != nil && !errors.Is(err, ErrObjectExists) {
			return fmt.Errorf("index: commit snapshot %s: %w", id.Short(), err)
		}
	}
	return r.KV.Put(SnapshotKey(id), manifest, true)
}

// DeleteSnapshot removes a snapshot record.
// In a remote repository its snapshots/<id> object goes first.
func (r *Repo) DeleteSnapshot(id ID) error {
	if r.remote {
		err := r.Store.Delete(snapshotName(id))
		if errors.Is(err, ErrObjectLocked) {
			// Under Object Lock: forgotten/<id> says so until prune can
			// delete the manifest (ReapForgotten).
			// (Not empty: RGW answers an empty PUT that carries a
			// Content-MD5 with XAmzContentSHA256Mismatch.)
			err = r.Store.Put(forgottenName(id), []byte(time.Now().UTC().Format(time.RFC3339)+"\n"))
			if errors.Is(err, ErrObjectExists) {
				err = nil
			}
		}
		if err != nil {
			return fmt.Errorf("index: forget snapshot %s: %w", id.Short(), err)
		}
	}
	return r.KV.Delete(SnapshotKey(id), true)
}

// Snapshots calls fn with every snapshot record.
func (r *Repo) Snapshots(fn func(id ID, manifest []byte) error) error {
	lo := []byte{prefixSnapshot}
	return r.KV.Scan(lo, PrefixEnd(lo), func(k, v []byte) error {
		if len(k) != 33 {
			return nil
		}
		var id ID
		copy(id[:], k[1:])
		return fn(id, v)
	})
}

// HasSnapshot reports whether the index has the record of snapshot id.
func (r *Repo) HasSnapshot(id ID) (bool, error) { return r.KV.Has(SnapshotKey(id)) }

// SnapshotManifest returns the manifest bytes of snapshot id's record;
// ErrNotFound if the index has none.
func (r *Repo) SnapshotManifest(id ID) ([]byte, error) { return r.KV.Get(SnapshotKey(id)) }

// checkPacksStillStored refuses to commit snapshot id when a pack this
// cache indexes has gone from the store since the cache was synced: only
// a prune deletes packs, and one that ran beside this snapshot (its lock
// taken as stale, clocks adrift) may have deleted a pack whose blobs the
// snapshot reused. Committing would name data that is gone; refusing
// costs a rerun, which syncs the cache and stores those chunks again.
// One listing of packs/ per snapshot, independent of locks and clocks
// (docs/s3.md "Prune beside other hosts").
func (r *Repo) checkPacksStillStored(id ID) error {
	stored, err := r.ListPacks()
	if err != nil {
		return fmt.Errorf("index: commit snapshot %s: %w", id.Short(), err)
	}
	present := make(map[ID]bool, len(stored))
	for _, p := range stored {
		present[p.ID] = true
	}
	gone := 0
	if err := r.IndexedPacks(func(p ID, _ int, _ uint64) error {
		if !present[p] {
			gone++
		}
		return nil
	}); err != nil {
		return err
	}
	if gone > 0 {
		return fmt.Errorf("%w: %d packs this host's index holds were deleted from the store while snapshot %s ran (another host's prune); nothing was committed: run it again",
			ErrLocked, gone, id.Short())
	}
	return nil
}
