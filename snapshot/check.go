package snapshot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"

	"citadelfs/index"
	"citadelfs/snapshot/codec"
)

// CheckOptions select how deep check goes.
type CheckOptions struct {
	// ReadData reads every blob back and verifies its hash.
	ReadData bool
	// Subset, with ReadData, reads only this fraction (0,1] of the packs,
	// chosen at random, so a nightly check can cover the repository over
	// several nights.
	Subset float64
	// Progress is called after each pack read with (done, total).
	Progress func(done, total int)
}

// CheckReport is what check found.
type CheckReport struct {
	Snapshots, Trees, DataBlobs, Packs, PacksRead int
	// IndexTables and IndexKeys are what the index check read: every
	// table's blocks and every key (index.KV.Verify).
	IndexTables int
	IndexKeys   int64
	// Problems lists every structural or data error found.
	Problems []string
	// Notes are findings that are not damage, such as packs no index
	// entry refers to (prune reclaims them).
	Notes []string
	// Affected lists "snapshot <id> <time>: <label>/<path>" for each file
	// or tree that uses damaged or missing data.
	Affected []string
}

// ReadsAll reports whether a check with o reads every chunk back.
func (o CheckOptions) ReadsAll() bool { return o.ReadData && !o.sampled() }

// sampled reports whether Subset picks a part of the packs (0 and 1 mean
// all of them).
func (o CheckOptions) sampled() bool { return o.Subset > 0 && o.Subset < 1 }

// OK reports whether nothing was wrong.
func (c *CheckReport) OK() bool { return len(c.Problems) == 0 }

// Check verifies the repository: every snapshot's trees load and verify,
// every referenced chunk is indexed and its pack exists with a matching
// trailer, and with ReadData every blob's bytes hash to its id.
//
// Every run that is not cancelled through ctx records its outcome (see
// LastCheck).
func (r *Repository) Check(ctx context.Context, o CheckOptions) (rep *CheckReport, err error) {
	start := r.opts.Now()
	defer func() { r.recordCheck(ctx, o, rep, start, err) }()
	rep = &CheckReport{}
	bad := map[index.ID]string{} // blob -> why
	problem := func(format string, args ...any) { rep.Problems = append(rep.Problems, fmt.Sprintf(format, args...)) }

	// The index first: everything below reads it. Every table block and
	// every key, file-change cache included, whatever the depth: it is
	// small (tens of bytes per chunk), and a block nothing else reads
	// would otherwise rot until a compaction fails on it. Damage there
	// is the one problem reported: what the rest would find through a
	// damaged index is not to be trusted, and `repair index` comes first.
	vst, err := r.idx.KV.Verify(ctx)
	rep.IndexTables, rep.IndexKeys = vst.Tables, vst.Keys
	if errors.Is(err, index.ErrCorrupt) {
		problem("%v", err)
		return rep, nil
	}
	if err != nil {
		return nil, err
	}
	// Every table reads sound now. A background failure recorded earlier
	// that was damage still counts: the damaged table may have been
	// compacted away since, with what it held (Pebble 1.1 drops a bad
	// block's keys when it compacts), so only `repair index`, which
	// rebuilds from the packs, clears it. Any other (a flush on a full
	// disk) left nothing behind. A read-only repository keeps the record
	// for a writer's check.
	if p, err := r.idx.KV.Problem(); err != nil {
		return nil, err
	} else if p != nil && p.Corrupt {
		problem("index: a background compaction found damage at %s (%s); records in that table may be lost: run `citadelfs repair index` to rebuild the index from the packs",
			p.Time.Local().Format("2006-01-02T15:04:05"), p.Error)
		return rep, nil
	}
	_ = r.idx.KV.ClearProblem()

	// Packs: what the index says against what is on disk.
	onDisk, err := r.idx.ListPacks()
	if err != nil {
		return nil, err
	}
	diskSet := map[index.ID]int64{}
	for _, p := range onDisk {
		diskSet[p.ID] = p.Size
	}
	packBlobs := map[index.ID][]index.BlobRef{}
	if err := r.idx.Blobs(func(b index.BlobRef) error {
		packBlobs[b.Pack] = append(packBlobs[b.Pack], b)
		return nil
	}); err != nil {
		return nil, err
	}
	for _, p := range onDisk {
		if _, ok := packBlobs[p.ID]; !ok {
			rep.Notes = append(rep.Notes, fmt.Sprintf("pack %s (%d bytes) holds nothing the index uses; prune reclaims it", p.ID.Short(), p.Size))
		}
	}
	// Packs in id order, so that two checks of the same damage report it
	// the same way (the first problem is what the check record keeps).
	packIDs := make([]index.ID, 0, len(packBlobs))
	for p := range packBlobs {
		packIDs = append(packIDs, p)
	}
	slices.SortFunc(packIDs, func(a, b index.ID) int { return bytes.Compare(a[:], b[:]) })
	// Copies found damaged before (by a check or a read) that the index
	// still serves: damaged until a read-back finds them sound again.
	quarantined, err := r.idx.QuarantinedInUse()
	if err != nil {
		return nil, err
	}
	var found []index.Damaged // damaged copies this check found, quarantined at the end
	damaged := func(b index.BlobRef, why string) {
		found = append(found, index.Damaged{Pack: b.Pack, Blob: b.ID, Time: start, Reason: why})
	}
	badPacks := map[index.ID]bool{}
	for _, pack := range packIDs {
		blobs := packBlobs[pack]
		rep.Packs++
		if _, ok := diskSet[pack]; !ok {
			problem("pack %s is missing (%d blobs)", pack.Short(), len(blobs))
			badPacks[pack] = true
			for _, b := range blobs {
				bad[b.ID] = "pack " + pack.Short() + " missing"
			}
			continue
		}
		entries, _, err := r.idx.ReadPackTrailer(pack)
		if err != nil {
			problem("pack %s: %v", pack.Short(), err)
			badPacks[pack] = true
			for _, b := range blobs {
				bad[b.ID] = "pack " + pack.Short() + " damaged"
				damaged(b, "pack trailer: "+err.Error())
			}
			continue
		}
		inTrailer := map[index.ID]index.PackEntry{}
		for _, e := range entries {
			inTrailer[e.ID] = e
		}
		for _, b := range blobs {
			if e, ok := inTrailer[b.ID]; !ok || e.Offset != b.Offset || e.Length != b.Length {
				problem("blob %s: index and pack %s trailer disagree", b.ID.Short(), pack.Short())
				bad[b.ID] = "index mismatch"
				damaged(b, "index and pack trailer disagree")
			}
		}
	}

	// Data: read packs back and verify every blob.
	if o.ReadData {
		packs := make([]index.ID, 0, len(packIDs))
		for _, p := range packIDs {
			if !badPacks[p] {
				packs = append(packs, p)
			}
		}
		if o.sampled() && len(packs) > 0 {
			rand.Shuffle(len(packs), func(i, j int) { packs[i], packs[j] = packs[j], packs[i] })
			packs = packs[:max(1, int(float64(len(packs))*o.Subset+0.5))]
		}
		dec := codec.NewDecoder()
		for i, p := range packs {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if err := r.verifyPack(p, packBlobs[p], dec, bad, problem, damaged); err != nil {
				return nil, err
			}
			// Quarantined copies read back sound (the pack was put right
			// by hand): in use again.
			var sound []index.ID
			for _, b := range packBlobs[p] {
				if q, ok := quarantined[b.ID]; ok && q.Pack == p {
					delete(quarantined, b.ID)
					if _, isBad := bad[b.ID]; !isBad {
						sound = append(sound, b.ID)
					}
				}
			}
			r.unquarantine(p, sound)
			rep.PacksRead++
			if o.Progress != nil {
				o.Progress(i+1, len(packs))
			}
		}
	}

	// Quarantined copies not read back this time are still damaged.
	qids := make([]index.ID, 0, len(quarantined))
	for id := range quarantined {
		qids = append(qids, id)
	}
	slices.SortFunc(qids, func(a, b index.ID) int { return bytes.Compare(a[:], b[:]) })
	var qPending []index.ID // reported once the walk says whether a snapshot uses them
	for _, id := range qids {
		if _, ok := bad[id]; ok {
			continue
		}
		bad[id] = "quarantined as damaged"
		qPending = append(qPending, id)
	}
	r.quarantineFound(found)

	// Structure: walk every snapshot.
	snaps, err := r.Snapshots()
	if err != nil {
		return nil, err
	}
	rep.Snapshots = len(snaps)
	seenTrees := map[index.ID]bool{}
	seenData := map[index.ID]bool{}
	usedBad := map[index.ID]bool{}
	for _, s := range snaps {
		for _, src := range s.Sources {
			w := &checkWalk{r: r, ctx: ctx, bad: bad, seenTrees: seenTrees, seenData: seenData, usedBad: usedBad, rep: rep,
				where: fmt.Sprintf("snapshot %s %s: %s", s.ID.Short(), s.Time.Local().Format("2006-01-02T15:04:05"), src.Label)}
			if err := w.walk(src.Tree, ""); err != nil {
				return nil, err
			}
		}
	}
	rep.Trees = len(seenTrees)
	rep.DataBlobs = len(seenData)
	for _, id := range qPending {
		q := quarantined[id]
		if usedBad[id] {
			problem("chunk %s in pack %s is quarantined as damaged (found %s: %s); the next snapshot stores it again if a source still has it",
				id.Short(), q.Pack.Short(), q.Time.Local().Format("2006-01-02T15:04:05"), q.Reason)
		} else {
			rep.Notes = append(rep.Notes, fmt.Sprintf("pack %s holds a damaged copy of blob %s that no snapshot uses; `repair packs` drops it", q.Pack.Short(), id.Short()))
		}
	}
	return rep, nil
}

func (r *Repository) verifyPack(p index.ID, blobs []index.BlobRef, dec *codec.Decoder, bad map[index.ID]string,
	problem func(string, ...any), damaged func(index.BlobRef, string)) error {
	if _, err := r.idx.Store.Stat(index.PackName(p)); err != nil {
		problem("pack %s: %v", p.Short(), err)
		for _, b := range blobs {
			bad[b.ID] = "pack unreadable"
		}
		return nil
	}
	sort.Slice(blobs, func(i, j int) bool { return blobs[i].Offset < blobs[j].Offset })
	var buf, plain []byte
	for _, b := range blobs {
		stored, err := r.idx.ReadStored(b, buf)
		if err != nil {
			problem("pack %s: blob %s: %v", p.Short(), b.ID.Short(), err)
			bad[b.ID] = "unreadable"
			damaged(b, "unreadable: "+err.Error())
			continue
		}
		buf = stored[:0]
		plain, err = decodeVerified(r.idx.Keys, dec, plain[:0], b, stored)
		var bd *blobDamage
		if errors.As(err, &bd) {
			problem("pack %s: blob %s %s", p.Short(), b.ID.Short(), bd.what())
			bad[b.ID] = bd.reason()
			damaged(b, bd.what())
		}
	}
	return nil
}

type checkWalk struct {
	r                   *Repository
	ctx                 context.Context
	bad                 map[index.ID]string
	seenTrees, seenData map[index.ID]bool
	usedBad             map[index.ID]bool // bad blobs a snapshot uses
	rep                 *CheckReport
	where               string
}

func (w *checkWalk) walk(tree index.ID, path string) error {
	if why, ok := w.bad[tree]; ok {
		w.usedBad[tree] = true
		w.rep.Affected = append(w.rep.Affected, fmt.Sprintf("%s/%s (directory: %s)", w.where, path, why))
		return nil
	}
	first := !w.seenTrees[tree]
	w.seenTrees[tree] = true
	t, err := w.r.LoadTree(w.ctx, tree)
	if err != nil {
		if w.ctx.Err() != nil {
			return w.ctx.Err()
		}
		w.bad[tree] = err.Error()
		if first {
			w.rep.Problems = append(w.rep.Problems, fmt.Sprintf("tree %s: %v", tree.Short(), err))
		}
		w.rep.Affected = append(w.rep.Affected, fmt.Sprintf("%s/%s (directory unreadable)", w.where, path))
		return nil
	}
	for _, part := range t.Parts {
		w.seenTrees[part.ID] = true
	}
	for i := range t.Nodes {
		n := &t.Nodes[i]
		p := path + n.Name
		switch n.Type {
		case TypeDir:
			if err := w.walk(n.Subtree, p+"/"); err != nil {
				return err
			}
		case TypeFile:
			for _, c := range n.Content {
				if why, ok := w.bad[c.ID]; ok {
					w.usedBad[c.ID] = true
					w.rep.Affected = append(w.rep.Affected, fmt.Sprintf("%s/%s (%s)", w.where, p, why))
					break
				}
				if w.seenData[c.ID] {
					continue
				}
				w.seenData[c.ID] = true
				if ok, err := w.r.idx.HasBlob(c.ID); err != nil {
					return err
				} else if !ok {
					w.bad[c.ID] = "chunk not in index"
					w.rep.Problems = append(w.rep.Problems, fmt.Sprintf("chunk %s is not in the index", c.ID.Short()))
					w.rep.Affected = append(w.rep.Affected, fmt.Sprintf("%s/%s (chunk missing)", w.where, p))
					break
				}
			}
		}
	}
	return nil
}
