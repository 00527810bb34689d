package snapshot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"citadelfs/index"
)

// RepairPacksResult is what RepairPacks did (or, with DryRun, would do).
type RepairPacksResult struct {
	DryRun bool         `json:"dry_run"`
	Packs  []PackRepair `json:"packs"`
	// Salvaged and Lost total the blobs over every pack.
	Salvaged int `json:"salvaged"`
	Lost     int `json:"lost"`
	// Dropped totals the damaged blobs no snapshot used.
	Dropped int `json:"dropped"`
	// Affected names what uses a lost blob: "snapshot <id> <time>:
	// <label>/<path>", as check does.
	Affected []string `json:"affected"`
}

// PackRepair is one damaged pack.
type PackRepair struct {
	Pack index.ID `json:"pack"`
	// Why it was taken as damaged.
	Why string `json:"why"`
	// Salvaged blobs were copied, verified, into NewPack (zero when none
	// or in a dry run).
	Salvaged      int      `json:"salvaged"`
	SalvagedBytes int64    `json:"salvaged_bytes"`
	NewPack       index.ID `json:"new_pack,omitzero"`
	// Lost lists the blobs that could not be read back whole: dropped
	// from the index with the pack. The next snapshot stores them again
	// where a source still has them; `repair snapshots` rewrites the
	// snapshots that still miss them.
	Lost []index.ID `json:"lost"`
	// Dropped lists damaged blobs that no snapshot uses: dropped too,
	// and no loss.
	Dropped []index.ID `json:"dropped"`
}

// RepairPacks salvages damaged packs: every blob the index serves from
// one (and, for a pack the index no longer knows, every blob of it the
// index lacks) is read, verified and copied as stored into a new pack;
// then the damaged pack is dropped from the index and from disk. The
// damaged packs are those named in packs (id prefixes), or, with none
// named, those with quarantine records (a check or a read found damage
// in them) and the indexed packs whose trailer cannot be read.
//
// Order, per pack, for crash safety (as prune): the new pack written and
// synced; one synced batch re-points the salvaged blobs, drops the lost
// ones and the old pack's record; then the old file is removed, and its
// quarantine records with it. Killed in between, the old pack is left
// unindexed and still quarantined: Open does not adopt it, and the next
// `repair packs` removes it.
func (r *Repository) RepairPacks(ctx context.Context, packs []string, dryRun bool) (*RepairPacksResult, error) {
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	res := &RepairPacksResult{DryRun: dryRun, Packs: []PackRepair{}, Affected: []string{}}
	targets, err := r.damagedPacks(packs)
	if err != nil {
		return nil, err
	}
	// Which blobs the index serves from each target.
	served := map[index.ID][]index.BlobRef{}
	if err := r.idx.Blobs(func(b index.BlobRef) error {
		if _, ok := targets[b.Pack]; ok {
			served[b.Pack] = append(served[b.Pack], b)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	ids := make([]index.ID, 0, len(targets))
	for id := range targets {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b index.ID) int { return bytes.Compare(a[:], b[:]) })
	lost := map[index.ID]bool{}
	for _, p := range ids {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		pr, err := r.repairPack(p, targets[p], served[p], dryRun)
		if err != nil {
			return res, err
		}
		res.Packs = append(res.Packs, *pr)
		res.Salvaged += pr.Salvaged
		res.Lost += len(pr.Lost)
		for _, id := range pr.Lost {
			lost[id] = true
		}
	}
	if len(lost) > 0 {
		var used map[index.ID]bool
		if res.Affected, used, err = r.affectedBy(ctx, lost); err != nil {
			return res, err
		}
		// A damaged blob no snapshot uses is no loss.
		res.Lost = 0
		for i := range res.Packs {
			pr := &res.Packs[i]
			var keep []index.ID
			for _, id := range pr.Lost {
				if used[id] {
					keep = append(keep, id)
				} else {
					pr.Dropped = append(pr.Dropped, id)
				}
			}
			pr.Lost = append(pr.Lost[:0], keep...)
			res.Lost += len(pr.Lost)
			res.Dropped += len(pr.Dropped)
		}
	}
	return res, nil
}

// damagedPacks resolves the packs to repair, with why each one.
func (r *Repository) damagedPacks(named []string) (map[index.ID]string, error) {
	onDisk, err := r.idx.ListPacks()
	if err != nil {
		return nil, err
	}
	out := map[index.ID]string{}
	if len(named) > 0 {
		for _, n := range named {
			var found []index.ID
			for _, p := range onDisk {
				if len(n) >= 4 && strings.HasPrefix(p.ID.String(), strings.ToLower(n)) {
					found = append(found, p.ID)
				}
			}
			switch len(found) {
			case 0:
				return nil, fmt.Errorf("snapshot: repair packs: no pack %q in the repository", n)
			case 1:
				out[found[0]] = "named"
			default:
				return nil, fmt.Errorf("snapshot: repair packs: %q is ambiguous (%s, %s)", n, found[0].Short(), found[1].Short())
			}
		}
		return out, nil
	}
	present := map[index.ID]bool{}
	for _, p := range onDisk {
		present[p.ID] = true
	}
	if err := r.idx.QuarantineRecords(func(d index.Damaged) error {
		if _, ok := out[d.Pack]; !ok && present[d.Pack] {
			out[d.Pack] = "quarantined: blob " + d.Blob.Short() + " " + d.Reason
		}
		return nil
	}); err != nil {
		return nil, err
	}
	if err := r.idx.IndexedPacks(func(id index.ID, _ int, _ uint64) error {
		if _, ok := out[id]; !ok && present[id] {
			if _, _, err := r.idx.ReadPackTrailer(id); err != nil {
				out[id] = err.Error()
			}
		}
		return nil
	}); err != nil {
		return nil, err
	}
	return out, nil
}

// repairPack salvages one pack.
func (r *Repository) repairPack(p index.ID, why string, served []index.BlobRef, dryRun bool) (*PackRepair, error) {
	pr := &PackRepair{Pack: p, Why: OneLine(why, 200), Lost: []index.ID{}, Dropped: []index.ID{}}
	indexed, err := r.idx.IsIndexedPack(p)
	if err != nil {
		return nil, err
	}
	cands := served
	if !indexed {
		// Not in the index (a repair killed half way, a pack prune found
		// damaged): what of it the index lacks is all that could matter.
		if es, _, err := r.idx.ReadPackTrailer(p); err == nil {
			for _, e := range es {
				if e.Type == index.SnapshotBlob {
					continue // a manifest never committed stays invisible
				}
				if has, err := r.idx.HasBlob(e.ID); err != nil {
					return nil, err
				} else if !has {
					cands = append(cands, index.BlobRef{ID: e.ID, PackEntry: e, Pack: p})
				}
			}
		}
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].Offset < cands[j].Offset })
	var pw *index.PackWriter
	defer func() {
		if pw != nil {
			pw.Abort()
		}
	}()
	var lostIDs []index.ID
	for _, b := range cands {
		stored, err := r.idx.ReadStored(b, nil)
		if err == nil {
			err = r.verifyStored(b, stored)
		}
		if err != nil {
			if !errors.Is(err, index.ErrCorrupt) && !errors.Is(err, ErrCorrupt) {
				// The disk failed to answer (EIO...): not a finding
				// about the blob. Nothing of this pack is changed.
				return nil, fmt.Errorf("snapshot: repair pack %s (nothing of it changed): %w", p.Short(), err)
			}
			pr.Lost = append(pr.Lost, b.ID)
			if indexed {
				lostIDs = append(lostIDs, b.ID)
			}
			continue
		}
		pr.Salvaged++
		pr.SalvagedBytes += int64(b.RawLength)
		if dryRun {
			continue
		}
		if pw == nil {
			if pw, err = r.idx.NewPackWriter(); err != nil {
				return nil, err
			}
		}
		if err := pw.Add(b.Type, b.Codec, b.ID, stored, int(b.RawLength)); err != nil {
			return nil, err
		}
	}
	if dryRun {
		return pr, nil
	}
	var newID index.ID
	var entries []index.PackEntry
	var size uint64
	if pw != nil {
		if newID, entries, err = pw.Finish(); err != nil {
			return nil, err
		}
		size = pw.Size()
		pw = nil
		pr.NewPack = newID
	}
	if err := r.idx.ReplacePack(p, newID, entries, size, lostIDs); err != nil {
		return nil, err
	}
	if newID == p {
		// Every blob salvaged, at the same offsets: the rewrite is the
		// same pack (its id hashes header and trailer), now whole again,
		// and it replaced the damaged file. Its records are void.
		return pr, r.idx.Unquarantine(p, quarantinedIn(r, p))
	}
	return pr, r.idx.RemovePack(p)
}

// quarantinedIn lists the blobs with records in pack p.
func quarantinedIn(r *Repository, p index.ID) []index.ID {
	ds, _ := r.idx.PackQuarantine(p)
	out := make([]index.ID, len(ds))
	for i, d := range ds {
		out[i] = d.Blob
	}
	return out
}

// affectedBy names every file and directory of every snapshot that uses
// one of the blobs in ids, as check does, and returns those used.
func (r *Repository) affectedBy(ctx context.Context, ids map[index.ID]bool) ([]string, map[index.ID]bool, error) {
	snaps, err := r.Snapshots()
	if err != nil {
		return nil, nil, err
	}
	out := []string{}
	used := map[index.ID]bool{}
	for _, s := range snaps {
		for _, src := range s.Sources {
			where := fmt.Sprintf("snapshot %s %s: %s", s.ID.Short(), s.Time.Local().Format("2006-01-02T15:04:05"), src.Label)
			var walk func(tree index.ID, path string) error
			walk = func(tree index.ID, path string) error {
				if ids[tree] {
					used[tree] = true
					out = append(out, fmt.Sprintf("%s/%s (directory)", where, path))
					return nil
				}
				t, err := r.LoadTree(ctx, tree)
				if err != nil {
					if ctx.Err() != nil {
						return ctx.Err()
					}
					out = append(out, fmt.Sprintf("%s/%s (directory unreadable)", where, path))
					return nil
				}
				for _, part := range t.Parts {
					if ids[part.ID] {
						used[part.ID] = true
						out = append(out, fmt.Sprintf("%s/%s (directory)", where, path))
						return nil
					}
				}
				for i := range t.Nodes {
					n := &t.Nodes[i]
					switch n.Type {
					case TypeDir:
						if err := walk(n.Subtree, path+n.Name+"/"); err != nil {
							return err
						}
					case TypeFile:
						for _, c := range n.Content {
							if ids[c.ID] {
								used[c.ID] = true
								out = append(out, fmt.Sprintf("%s/%s", where, path+n.Name))
								break
							}
						}
					}
				}
				return nil
			}
			if err := walk(src.Tree, ""); err != nil {
				return nil, nil, err
			}
		}
	}
	return out, used, nil
}
