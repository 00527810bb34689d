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
		if err := r.rlock.Check(); err != nil {
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
