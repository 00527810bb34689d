package snapshot

import (
	"sync"
	"time"

	"citadelfs/index"
)

// A mount daemon holds only a reader lock in the store (index.LockReader),
// so another host's prune may delete, or repack, a pack the daemon's cache
// still names. A read that meets such a pack (ErrPackMissing from the
// store) syncs the cache once and reads the blob again where the synced
// index says it is now: a blob a snapshot still references was repacked,
// and the repacked pack was put before the old one was deleted. A blob
// found nowhere after the sync is gone: the caller reports it as missing
// (ErrCorrupt), and the mount's adapter tells a snapshot the same sync
// dropped as forgotten (ESTALE, no backup_corrupt) from one that still
// exists (damage).
//
// The sync is single-flight and bounded: reads that miss while one runs
// wait for it and use its result (the cache then says something else of
// their blob), and two syncs start at least missingResyncEvery apart, so
// a damaged repository read in a loop lists the store no more often than
// that. It does not run beside a writer of this process (SyncCache);
// such a read fails as the cache stands.

// missingResyncEvery is the least time between two syncs that reads of
// missing packs start.
var missingResyncEvery = 2 * time.Second

type missingResync struct {
	// syncMu is held by every sync of the cache (SyncCache): a sync drops
	// a gone pack's blobs before it indexes the pack they moved to, so a
	// lookup in between finds neither (lookupSettled waits).
	syncMu  sync.Mutex
	mu      sync.Mutex // one sync at a time; reads that miss wait here
	started time.Time  // when the last sync began (monotonic)
	syncs   int        // how many ran (tests)
}

// refindAfterPrune finds where blob id lives now that the pack of
// missed, its ref when the read began, is gone from the store: where
// the cache says, once a sync has changed what it says of id (another
// read's, which this one waited for), or else after a sync of its own
// (at most one per missingResyncEvery). ok is false when the synced
// cache has it nowhere.
func (r *Repository) refindAfterPrune(id index.ID, missed index.BlobRef) (ref index.BlobRef, ok bool) {
	rs := &r.resync
	rs.mu.Lock()
	defer rs.mu.Unlock()
	ref, err := r.lookupSettled(id)
	if err != nil || ref.Pack != missed.Pack {
		// A sync ran since this read looked id up: it moved id, or
		// dropped it with its pack.
		return ref, err == nil
	}
	if !rs.started.IsZero() {
		if wait := missingResyncEvery - time.Since(rs.started); wait > 0 {
			time.Sleep(wait)
		}
	}
	rs.started = time.Now()
	rs.syncs++
	// A sync does not run beside a writer of this process (ran false):
	// the read then fails as the cache stands. An error (the store gone)
	// fails it too, as the read itself would.
	r.SyncCache()
	ref, err = r.lookupSettled(id)
	return ref, err == nil
}

// lookupSettled looks blob id up once no sync of the cache is running.
func (r *Repository) lookupSettled(id index.ID) (index.BlobRef, error) {
	r.resync.syncMu.Lock()
	defer r.resync.syncMu.Unlock()
	return r.idx.Lookup(id)
}
