package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"time"

	"citadelfs/index"
	"citadelfs/snapshot/codec"
)

// Forget removes snapshots. Each manifest lives alone in its own pack, so
// the record goes first (synced) and the pack after it: a crash in between
// leaves a pack that `repair index` would bring back, never a record
// pointing at nothing. Data is reclaimed by Prune.
func (r *Repository) Forget(ctx context.Context, ids []index.ID) (err error) {
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	r.idx.MakeRoom()
	defer r.idx.EnsureReserve()
	start := r.opts.Now()
	defer func() { r.recordMaintenance(ctx, OpForget, start, len(ids), 0, err) }()
	return r.forgetLocked(ctx, ids)
}

// forgetLocked is Forget for a caller that holds writeMu.
func (r *Repository) forgetLocked(ctx context.Context, ids []index.ID) error {
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
			// A manifest pack under Object Lock stays: prune deletes
			// it once its retention ends.
			if err := r.idx.RemovePack(ref.Pack); err != nil && !errors.Is(err, index.ErrObjectLocked) {
				return err
			}
		}
	}
	return nil
}

// PruneResult says what prune reclaimed. Its JSON (prune --json) has
// snake_case keys, as every command's output does (docs/cli.md).
type PruneResult struct {
	PacksDeleted  int   `json:"packs_deleted"`
	PacksRepacked int   `json:"packs_repacked"`
	BlobsDeleted  int   `json:"blobs_deleted"`
	BytesFreed    int64 `json:"bytes_freed"`
	DryRun        bool  `json:"dry_run"`
	// PacksKeptDamaged counts packs left in place, although mostly dead,
	// because a live blob's only copy in them is damaged (quarantined).
	PacksKeptDamaged int `json:"packs_kept_damaged"`
	// RepackSkipped: the disk was too full to rewrite partly used packs
	// even after the unused ones were deleted; only those were.
	RepackSkipped bool `json:"repack_skipped"`
	// ObjectsKeptLocked counts objects prune would have deleted (packs,
	// forgotten snapshots' manifests) that are still inside their Object
	// Lock retention; LockedUntil is when the last of those ends (a later
	// prune deletes them then).
	ObjectsKeptLocked int        `json:"objects_kept_locked"`
	LockedUntil       *time.Time `json:"locked_until,omitempty"`
	// PacksKeptYoung counts unreferenced packs younger than the grace:
	// another host's snapshot may have uploaded them and not yet put its
	// manifest. Grace is the grace this prune kept ("0s": none).
	PacksKeptYoung int    `json:"packs_kept_young"`
	Grace          string `json:"grace"`
	// RetentionRenewed counts the objects in use whose Object Lock
	// retention prune moved out to RetainedUntil (a full retention from
	// now).
	RetentionRenewed int        `json:"retention_renewed"`
	RetainedUntil    *time.Time `json:"retained_until,omitempty"`

	inUse []index.ID // packs that stay with a live blob in them
}

// uncount takes back a count of a pack that stayed after all.
func (res *PruneResult) uncount(blobs int, freed int64, whole bool) {
	res.BlobsDeleted -= blobs
	res.BytesFreed -= freed
	if whole {
		res.PacksDeleted--
	} else {
		res.PacksRepacked--
	}
}

// keptLocked counts one object kept for its retention until t.
func (res *PruneResult) keptLocked(t time.Time) {
	res.ObjectsKeptLocked++
	if res.LockedUntil == nil || t.After(*res.LockedUntil) {
		t := t.UTC()
		res.LockedUntil = &t
	}
}

// PruneOptions tune PruneWith.
type PruneOptions struct {
	DryRun bool
	// Grace: in a repository in a store, a pack no snapshot references
	// is deleted (or rewritten) only once it is older than Grace by the
	// store's LastModified, because another host's running snapshot
	// uploads packs that no manifest names until it ends (docs/s3.md
	// "Prune beside other hosts"). 0: none. A local directory, in
	// either layout, is one host's and has no grace.
	Grace time.Duration
}

// DefaultPruneGrace is prune's grace unless --grace says otherwise: four
// times the store lock's expiry, so a snapshot whose host lost its lock
// (and may have kept uploading) is long over.
const DefaultPruneGrace = 2 * time.Hour

func (res *PruneResult) count(blobs int, freed int64, whole bool) {
	res.BlobsDeleted += blobs
	res.BytesFreed += freed
	if whole {
		res.PacksDeleted++
	} else {
		res.PacksRepacked++
	}
}

// holdsDamaged reports whether one of needed is served from the
// quarantined copy in its pack.
func holdsDamaged(needed []index.BlobRef, quarantined map[index.ID]index.Damaged) bool {
	for _, b := range needed {
		if q, ok := quarantined[b.ID]; ok && q.Pack == b.Pack {
			return true
		}
	}
	return false
}

// Prune deletes data no snapshot references. It walks the pack files on
// disk, not just the index, so packs a killed writer left unindexed are
// reclaimed too. A pack none of whose blobs is needed is deleted; a pack
// less than half needed (by bytes) has its needed blobs rewritten into a
// new pack first. Order for crash safety: new pack durable and indexed →
// dead index entries dropped → old pack file deleted, so every referenced
// blob is always reachable. Packs whose trailer fails its checks are left
// for `check` to report.
//
// On a full disk the rewrite has no room: prune then deletes the packs no
// snapshot needs at all, which writes nothing but index deletions (the
// reserve, see index/reserve.go, makes room for those), and tries the
// rewrite again in the room that made. A pack the failed rewrite had
// already written is indexed and complete: the second pass finds the old
// pack's blobs indexed there and deletes it.
func (r *Repository) Prune(ctx context.Context, dryRun bool) (res *PruneResult, err error) {
	return r.PruneWith(ctx, PruneOptions{DryRun: dryRun, Grace: DefaultPruneGrace})
}

// PruneWith is Prune with its options. In a repository in a store it also
// keeps what is still retained under Object Lock (never deleting it,
// which S3 would refuse, or rewriting it, which would only duplicate it)
// and unreferenced packs younger than o.Grace, and deletes the manifests
// of forgotten snapshots whose retention has ended.
func (r *Repository) PruneWith(ctx context.Context, o PruneOptions) (res *PruneResult, err error) {
	dryRun := o.DryRun
	if !r.idx.IsRemote() || index.IsDirectoryStore(r.idx.Store) {
		o.Grace = 0 // a directory (an encrypted one has the store layout) has one host
	}
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	if !dryRun {
		// On a full disk the reserve makes room for the index batches
		// that come before any deletion; held again once space is back
		// (after the maintenance record below is written).
		r.idx.MakeRoom()
		defer r.idx.EnsureReserve()
		start := r.opts.Now()
		defer func() {
			var n int
			var freed int64
			if res != nil {
				n, freed = res.PacksDeleted+res.PacksRepacked, res.BytesFreed
			}
			r.recordMaintenance(ctx, OpPrune, start, n, freed, err)
		}()
	}
	res, err = r.prune(ctx, o, false)
	if err == nil && !dryRun {
		err = r.reapForgotten(res)
	}
	if err == nil && !dryRun {
		err = r.renewRetention(res)
	}
	if dryRun || !index.IsDiskFull(err) {
		return res, err
	}
	r.idx.ReleaseReserve()
	whole, err := r.prune(ctx, PruneOptions{Grace: o.Grace}, true)
	if err != nil {
		return nil, err
	}
	res, err = r.prune(ctx, PruneOptions{Grace: o.Grace}, false)
	if index.IsDiskFull(err) {
		whole.RepackSkipped = true
		return whole, nil
	}
	if err != nil {
		return nil, err
	}
	res.PacksDeleted += whole.PacksDeleted
	res.BlobsDeleted += whole.BlobsDeleted
	res.BytesFreed += whole.BytesFreed
	return res, nil
}

// reapForgotten deletes forgotten snapshots' manifests whose retention
// has ended (index.ReapForgotten) and counts those still retained.
func (r *Repository) reapForgotten(res *PruneResult) error {
	kept, until, err := r.idx.ReapForgotten()
	for range kept {
		res.keptLocked(until)
	}
	return err
}

// renewRetention moves the Object Lock retention of what stays in use
// (the packs with a live blob, the manifests, citadel.json, key slots)
// out to a full retention from now (index.ExtendRetention), so data that
// every snapshot still shares never falls out of its protection.
func (r *Repository) renewRetention(res *PruneResult) error {
	n, until, err := r.idx.ExtendRetention(res.inUse)
	res.RetentionRenewed = n
	if n > 0 {
		until = until.UTC()
		res.RetainedUntil = &until
	}
	return err
}

// keptByAge reports whether pack id must stay although prune would delete
// or rewrite it: still under Object Lock retention, or younger than the
// grace. It asks the store (a HEAD) only for such packs.
func (r *Repository) keptByAge(id index.ID, grace time.Duration, res *PruneResult) (bool, error) {
	if !r.idx.IsRemote() {
		return false, nil
	}
	info, ok, err := index.StoreInfo(r.idx.Store, index.PackName(id))
	if errors.Is(err, fs.ErrNotExist) {
		return true, nil // gone since the listing: nothing to delete
	}
	if err != nil {
		return false, fmt.Errorf("snapshot: prune: pack %s: %w", id.Short(), err)
	}
	if !ok {
		return false, nil
	}
	now := r.opts.Now()
	if info.RetainUntil.After(now) {
		res.keptLocked(info.RetainUntil)
		return true, nil
	}
	if grace > 0 && now.Sub(info.Modified) < grace {
		res.PacksKeptYoung++
		return true, nil
	}
	return false, nil
}

// prune is one pass of Prune, for a caller holding writeMu; wholeOnly
// deletes only the packs no blob of which is needed, writing none.
func (r *Repository) prune(ctx context.Context, o PruneOptions, wholeOnly bool) (*PruneResult, error) {
	dryRun := o.DryRun
	live, err := r.liveBlobs(ctx)
	if err != nil {
		return nil, err
	}
	onDisk, err := r.idx.ListPacks()
	if err != nil {
		return nil, err
	}
	quarantined, err := r.idx.QuarantinedInUse()
	if err != nil {
		return nil, err
	}
	res := &PruneResult{DryRun: dryRun, Grace: o.Grace.String()}
	var pw *index.PackWriter
	var toDelete []index.ID
	written := map[index.ID]bool{}       // packs this prune wrote: never deleted
	holdsManifest := map[index.ID]bool{} // packs to delete that hold a snapshot manifest
	inUse := map[index.ID]bool{}         // packs that stay with a live blob in them
	countedAs := map[index.ID][3]int64{} // per pack to delete: blobs, bytes freed, live blobs
	defer func() {
		for id := range inUse {
			res.inUse = append(res.inUse, id)
		}
	}()
	defer func() {
		if pw != nil { // an error or cancel left a pack half written
			pw.Abort()
		}
	}()
	flush := func() error {
		if pw == nil {
			return nil
		}
		id, entries, err := pw.Finish()
		if err != nil {
			return err
		}
		size := pw.Size()
		pw = nil
		written[id] = true
		return r.idx.CommitPack(id, entries, size)
	}
	for _, p := range onDisk {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		entries, size, err := r.idx.ReadPackTrailer(p.ID)
		if err != nil {
			continue
		}
		var needed []index.BlobRef
		var deadHere []index.ID
		var neededBytes int64
		for _, e := range entries {
			ref, lerr := r.idx.Lookup(e.ID)
			indexed := lerr == nil
			here := indexed && ref.Pack == p.ID
			switch {
			case live[e.ID] && (here || !indexed):
				needed = append(needed, index.BlobRef{ID: e.ID, PackEntry: e, Pack: p.ID})
				neededBytes += int64(e.Length)
			case here:
				deadHere = append(deadHere, e.ID)
			}
		}
		if len(needed) > 0 {
			inUse[p.ID] = true
		}
		if len(needed) == len(entries) || neededBytes*2 >= size {
			// Every blob here is still needed, or most of the bytes
			// are. (On a small pack the header and trailer alone can be
			// half its size; rewriting it whole gives a pack with the
			// same id, which the removal below would then delete.)
			continue
		}
		if wholeOnly && len(needed) > 0 {
			continue
		}
		if holdsDamaged(needed, quarantined) {
			// A live blob's only copy here is damaged: rewriting the pack
			// would lose it. The pack stays until a snapshot stores that
			// chunk again or `repair packs` salvages the rest.
			res.PacksKeptDamaged++
			continue
		}
		if kept, err := r.keptByAge(p.ID, o.Grace, res); err != nil {
			return nil, err
		} else if kept {
			continue
		}
		if dryRun {
			res.count(len(entries)-len(needed), size-neededBytes, len(needed) == 0)
			continue
		}
		damagedHere := false
		for _, b := range needed {
			// Copy the blob as stored, after verifying it decodes to its id.
			stored, err := r.idx.ReadStored(b, nil)
			if err == nil {
				err = r.verifyStored(b, stored)
			}
			if errors.Is(err, index.ErrCorrupt) || errors.Is(err, ErrCorrupt) {
				// Damage no check had found yet: quarantine the copy
				// and keep the pack (what was copied already is
				// indexed in the new pack: two good copies).
				r.quarantineFound([]index.Damaged{{Pack: p.ID, Blob: b.ID, Time: r.opts.Now(), Reason: OneLine(err.Error(), 200)}})
				damagedHere = true
				break
			}
			if err != nil {
				return nil, fmt.Errorf("snapshot: prune: %w", err)
			}
			if pw == nil {
				if pw, err = r.idx.NewPackWriter(); err != nil {
					return nil, err
				}
			}
			if err := pw.Add(b.Type, b.Codec, b.ID, stored, int(b.RawLength)); err != nil {
				return nil, err
			}
			if pw.Size() >= uint64(r.opts.PackSize) {
				if err := flush(); err != nil {
					return nil, err
				}
			}
		}
		if damagedHere {
			res.PacksKeptDamaged++
			continue
		}
		res.count(len(entries)-len(needed), size-neededBytes, len(needed) == 0)
		countedAs[p.ID] = [3]int64{int64(len(entries) - len(needed)), size - neededBytes, int64(len(needed))}
		if err := r.idx.DeleteBlobs(deadHere); err != nil {
			return nil, err
		}
		toDelete = append(toDelete, p.ID)
		delete(inUse, p.ID)
		for _, e := range entries {
			if e.Type == index.SnapshotBlob {
				holdsManifest[p.ID] = true
			}
		}
	}
	// Packs holding a forgotten snapshot's manifest go first: if a crash
	// stops the deletions half way, `repair index` must not find a
	// manifest whose data packs are already gone and bring back a
	// snapshot that cannot be restored.
	slices.SortStableFunc(toDelete, func(a, b index.ID) int {
		switch {
		case holdsManifest[a] == holdsManifest[b]:
			return 0
		case holdsManifest[a]:
			return -1
		}
		return 1
	})
	if !dryRun {
		if err := flush(); err != nil {
			return nil, err
		}
		// The last point to stop at: what is left undeleted is only
		// garbage for the next prune (the dead entries are dropped, the
		// live blobs indexed in their new packs).
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		for _, p := range toDelete {
			if written[p] {
				// A pack's id is the hash of its header and trailer, so
				// a rewrite with the same blobs at the same offsets is
				// the same pack: it now holds what it held before.
				continue
			}
			if err := r.idx.RemovePack(p); err != nil {
				// Retained after all (its retention was not readable
				// before): it stays, its dead entries already dropped,
				// and a later prune deletes it.
				if t, ok := index.LockedUntil(err); ok {
					c := countedAs[p]
					res.uncount(int(c[0]), c[1], c[2] == 0)
					res.keptLocked(t)
					continue
				}
				return nil, err
			}
		}
	}
	return res, nil
}

// verifyStored checks a blob's stored bytes (decodeVerified) before prune
// or repair packs copies them as they are.
func (r *Repository) verifyStored(b index.BlobRef, stored []byte) error {
	dec := r.decoders.Get().(*codec.Decoder)
	defer r.decoders.Put(dec)
	_, err := decodeVerified(r.idx.Keys, dec, nil, b, stored)
	return err
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
		for _, p := range t.Parts {
			live[p.ID] = true
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
