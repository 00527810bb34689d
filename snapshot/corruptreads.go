package snapshot

import (
	"encoding/json"
	"time"

	"citadelfs/index"
)

// CorruptReads is what reads through the mount found corrupt (chunks that
// failed their hash check, answered with EIO), kept in the index so that a
// restarted daemon, and `monitor --once` or `status` run on their own,
// still raise backup_corrupt about them. Damage does not heal by itself:
// the record stays until a full `check --read-data` passes.
type CorruptReads struct {
	// Reads is how many reads found corrupt data.
	Reads uint64 `json:"reads"`
	// Files is how many distinct paths those reads were of, counted by the
	// daemon that saw them (a path read again after a restart counts
	// again); Capped says a daemon stopped counting at its bound.
	Files  int  `json:"files"`
	Capped bool `json:"capped,omitempty"`
	// LastTime, LastPath and LastError describe the latest corrupt read:
	// when, the path inside the mount, and the one-line error.
	LastTime  time.Time `json:"last_time"`
	LastPath  string    `json:"last_path"`
	LastError string    `json:"last_error"`
}

// SaveCorruptReads replaces the recorded corrupt reads with c, synced:
// the caller (the mount's integrity record) saves on the first read of
// each damaged file, not on every read.
func (r *Repository) SaveCorruptReads(c CorruptReads) error {
	v, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return r.idx.KV.Put(index.CorruptReadsKey(), v, true)
}

// LoadCorruptReads returns the recorded corrupt reads, nil if there are
// none (or the record cannot be decoded).
func (r *Repository) LoadCorruptReads() (*CorruptReads, error) {
	return loadRecord[CorruptReads](r.idx.KV, index.CorruptReadsKey())
}

// clearCorruptReads forgets recorded corrupt reads once a full read-back
// found every chunk sound (the damaged pack was repaired or pruned). A
// daemon that counts corrupt reads in memory too resets its count after
// such a check (CheckOptions.ReadsAll and a report without problems).
func (r *Repository) clearCorruptReads() {
	if c, _ := r.LoadCorruptReads(); c != nil {
		r.idx.KV.Delete(index.CorruptReadsKey(), true)
	}
}
