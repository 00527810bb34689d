package snapshot

import "citadelfs/index"

// CorruptReads is what reads through the mount found corrupt
// (index.CorruptReads, defined where it is persisted).
type CorruptReads = index.CorruptReads

// SaveCorruptReads replaces the recorded corrupt reads with c, synced:
// the caller (the mount's integrity record) saves on the first read of
// each damaged file, not on every read.
func (r *Repository) SaveCorruptReads(c CorruptReads) error {
	return r.idx.CorruptReadsStore().Save(c)
}

// LoadCorruptReads returns the recorded corrupt reads, nil if there are
// none (or the record cannot be decoded).
func (r *Repository) LoadCorruptReads() (*CorruptReads, error) {
	return r.idx.CorruptReadsStore().Load()
}

// clearCorruptReads forgets recorded corrupt reads once a full read-back
// found every chunk sound (the damaged pack was repaired or pruned). A
// daemon that counts corrupt reads in memory too resets its count after
// such a check (CheckOptions.ReadsAll and a report without problems).
func (r *Repository) clearCorruptReads() {
	if c, _ := r.LoadCorruptReads(); c != nil {
		r.idx.CorruptReadsStore().Delete()
	}
}
