package snapshot

import (
	"citadelfs/index"
)

// quarantine records damaged copies of blobs (index/quarantine.go), so the
// next snapshot stores them again from the source instead of reusing them.
// It is best effort: a repository opened read-only cannot record, and the
// finding is reported either way (check's problems, the read's error).
func (r *Repository) quarantine(ds []index.Damaged) {
	if r.opts.ReadOnly || len(ds) == 0 {
		return
	}
	fresh := ds[:0:0]
	for _, d := range ds {
		if _, seen := r.quarantined.LoadOrStore(quarantineSeen{d.Pack, d.Blob}, true); !seen {
			fresh = append(fresh, d)
		}
	}
	if err := r.idx.Quarantine(fresh); err != nil {
		for _, d := range fresh {
			r.quarantined.Delete(quarantineSeen{d.Pack, d.Blob})
		}
	}
}

// quarantineSeen keys the copies this process has already recorded, so a
// damaged file read over and over through the mount writes its record once.
type quarantineSeen struct{ pack, blob index.ID }

// noteDamagedRead quarantines the copy ref names after a read found it
// corrupt (a restore, a read through the mount).
func (r *Repository) noteDamagedRead(ref index.BlobRef, err error) {
	r.quarantine([]index.Damaged{{Pack: ref.Pack, Blob: ref.ID, Time: r.opts.Now(), Reason: OneLine(err.Error(), 200)}})
}

// quarantineFound records what a check found damaged, with the check's
// time and reason even for copies recorded before.
func (r *Repository) quarantineFound(ds []index.Damaged) {
	if r.opts.ReadOnly || len(ds) == 0 {
		return
	}
	if r.idx.Quarantine(ds) == nil {
		for _, d := range ds {
			r.quarantined.Store(quarantineSeen{d.Pack, d.Blob}, true)
		}
	}
}

// unquarantine lifts the records of copies in pack that a read-back found
// sound.
func (r *Repository) unquarantine(pack index.ID, blobs []index.ID) {
	if r.opts.ReadOnly || len(blobs) == 0 {
		return
	}
	if r.idx.Unquarantine(pack, blobs) == nil {
		for _, id := range blobs {
			r.quarantined.Delete(quarantineSeen{pack, id})
		}
	}
}
