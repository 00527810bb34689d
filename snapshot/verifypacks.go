package snapshot

import (
	"context"
	"errors"
	"fmt"

	"citadelfs/index"
	"citadelfs/snapshot/codec"
)

// VerifyReport is what VerifyPacks found.
type VerifyReport struct {
	Packs, Blobs int
	Bytes        int64 // stored bytes read back
	DamagedPacks int   // packs with at least one problem
	// Problems names each damaged pack or blob; empty when all is sound.
	Problems []string
}

// OK reports whether every blob read back sound.
func (v *VerifyReport) OK() bool { return len(v.Problems) == 0 }

// VerifyPacks reads back every blob of packs from the store (LocalStore
// reads with O_DIRECT, so the bytes come from the disk, not from the page
// cache the write left) and checks that it decodes and hashes to its id:
// the check validation.verify_after_backup asks for after each snapshot,
// on the packs Result.Packs names, with check --read-data's verifier.
//
// The pack's trailer is read too and must agree with the index. A damaged
// copy is quarantined as check quarantines it, so the next snapshot stores
// those chunks again from the sources and the snapshot just taken heals.
// Damage is in the report, not an error: the error is for reading that
// could not be done at all (ctx, the index).
func (r *Repository) VerifyPacks(ctx context.Context, packs []index.ID) (*VerifyReport, error) {
	rep := &VerifyReport{}
	start := r.opts.Now()
	problem := func(format string, args ...any) { rep.Problems = append(rep.Problems, fmt.Sprintf(format, args...)) }
	var found []index.Damaged
	damaged := func(b index.BlobRef, why string) {
		found = append(found, index.Damaged{Pack: b.Pack, Blob: b.ID, Time: start, Reason: why})
	}
	defer func() { r.quarantineFound(found) }()
	dec := codec.NewDecoder()
	bad := map[index.ID]string{}
	for _, p := range packs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		rep.Packs++
		before := len(rep.Problems)
		entries, _, err := r.idx.ReadPackTrailer(p)
		if err != nil {
			problem("pack %s: %v", p.Short(), err)
			rep.DamagedPacks++
			continue
		}
		blobs := make([]index.BlobRef, 0, len(entries))
		for _, e := range entries {
			ref := index.BlobRef{ID: e.ID, PackEntry: e, Pack: p}
			got, err := r.idx.Lookup(e.ID)
			switch {
			case errors.Is(err, index.ErrBlobMissing):
				problem("pack %s: blob %s is not in the index", p.Short(), e.ID.Short())
				continue
			case err != nil:
				return nil, err
			case got.Pack != p:
				continue // served from another copy; this one is not used
			case got.Offset != e.Offset || got.Length != e.Length:
				problem("pack %s: blob %s: index and pack trailer disagree", p.Short(), e.ID.Short())
				continue
			}
			blobs = append(blobs, ref)
			rep.Bytes += int64(e.Length)
		}
		rep.Blobs += len(blobs)
		if err := r.verifyPack(p, blobs, dec, bad, problem, damaged); err != nil {
			return nil, err
		}
		if len(rep.Problems) > before {
			rep.DamagedPacks++
		}
	}
	return rep, nil
}
