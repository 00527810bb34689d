package snapshot

import (
	"context"
	"fmt"

	"citadelfs/index"
)

// Forget removes snapshots. Each manifest lives alone in its own pack, so
// the record goes first (synced) and the pack after it: a crash in between
// leaves a pack that `repair index` would bring back, never a record
// pointing at nothing. Data is reclaimed by Prune.
func (r *Repository) Forget(ctx context.Context, ids []index.ID) error {
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	defer r.changed()
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return err
		}
		ref, lerr := r.idx.Lookup(id)
		if err := r.idx.DeleteSnapshot(id); err != nil {
			return err
		}
		if lerr != nil {
			continue
		}
		entries, _, err := r.idx.ReadPackTrailer(ref.Pack)
		if err == nil && len(entries) == 1 && entries[0].ID == id {
			if err := r.idx.DeleteBlobs([]index.ID{id}); err != nil {
				return err
			}
			if err := r.idx.RemovePack(ref.Pack); err != nil {
				return err
			}
		}
	}
	return nil
}

// PruneResult says what prune reclaimed.
type PruneResult struct {
	PacksDeleted, PacksRepacked int
	BlobsDeleted                int
	BytesFreed                  int64
	DryRun                      bool
}

// Prune deletes data no snapshot references. Packs that hold only dead
// blobs are deleted; packs that are mostly dead (less than half live by
// bytes) are rewritten with their live blobs first. Order for crash
// safety: new pack durable and indexed → old blob entries dropped → old
// pack file deleted, so every referenced blob is always reachable.
func (r *Repository) Prune(ctx context.Context, dryRun bool) (*PruneResult, error) {
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	live, err := r.liveBlobs(ctx)
	if err != nil {
		return nil, err
	}
	type packUse struct {
		all        []index.BlobRef
		liveBytes  int64
		totalBytes int64
	}
	packs := map[index.ID]*packUse{}
	if err := r.idx.Blobs(func(b index.BlobRef) error {
		u := packs[b.Pack]
		if u == nil {
			u = &packUse{}
			packs[b.Pack] = u
		}
		u.all = append(u.all, b)
		u.totalBytes += int64(b.Length)
		if live[b.ID] {
			u.liveBytes += int64(b.Length)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	res := &PruneResult{DryRun: dryRun}
	var pw *index.PackWriter
	var moved []index.ID
	var toDelete []index.ID
	flush := func() error {
		if pw == nil {
			return nil
		}
		id, entries, err := pw.Finish()
		if err != nil {
			return err
		}
		pw = nil
		return r.idx.CommitPack(id, entries, 0)
	}
	for packID, u := range packs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if u.liveBytes*2 >= u.totalBytes {
			continue
		}
		var dead []index.ID
		for _, b := range u.all {
			if !live[b.ID] {
				dead = append(dead, b.ID)
				res.BlobsDeleted++
				res.BytesFreed += int64(b.Length)
				continue
			}
			if dryRun {
				continue
			}
			// Copy the live blob, verified, into the new pack.
			stored, err := r.idx.ReadStored(b, nil)
			if err != nil {
				return nil, fmt.Errorf("snapshot: prune: %w", err)
			}
			if _, err := r.LoadBlob(ctx, b.ID, false); err != nil {
				return nil, fmt.Errorf("snapshot: prune: refusing to repack a damaged blob: %w", err)
			}
			if pw == nil {
				if pw, err = index.NewPackWriter(r.idx.Dir); err != nil {
					return nil, err
				}
			}
			if err := pw.Add(b.Type, b.Codec, b.ID, stored, int(b.RawLength)); err != nil {
				return nil, err
			}
			moved = append(moved, b.ID)
			if pw.Size() >= uint64(r.opts.PackSize) {
				if err := flush(); err != nil {
					return nil, err
				}
			}
		}
		if u.liveBytes == 0 {
			res.PacksDeleted++
		} else {
			res.PacksRepacked++
		}
		if dryRun {
			continue
		}
		if err := r.idx.DeleteBlobs(dead); err != nil {
			return nil, err
		}
		toDelete = append(toDelete, packID)
	}
	if !dryRun {
		if err := flush(); err != nil {
			return nil, err
		}
		for _, p := range toDelete {
			if err := r.idx.RemovePack(p); err != nil {
				return nil, err
			}
		}
		_ = moved
	}
	return res, nil
}

// liveBlobs marks every blob reachable from a snapshot.
func (r *Repository) liveBlobs(ctx context.Context) (map[index.ID]bool, error) {
	snaps, err := r.Snapshots()
	if err != nil {
		return nil, err
	}
	live := map[index.ID]bool{}
	var walk func(id index.ID) error
	walk = func(id index.ID) error {
		if live[id] {
			return nil
		}
		live[id] = true
		t, err := r.LoadTree(ctx, id)
		if err != nil {
			return fmt.Errorf("snapshot: prune: cannot read tree %s (run check; nothing was deleted): %w", id.Short(), err)
		}
		for i := range t.Nodes {
			n := &t.Nodes[i]
			for _, c := range n.Content {
				live[c.ID] = true
			}
			if n.Type == TypeDir {
				if err := walk(n.Subtree); err != nil {
					return err
				}
			}
		}
		return nil
	}
	for _, s := range snaps {
		live[s.ID] = true
		for _, src := range s.Sources {
			if err := walk(src.Tree); err != nil {
				return nil, err
			}
		}
	}
	return live, nil
}
