package snapshot

import "citadelfs/index"

// SyncCache brings a remote repository's cache up to date with the store
// (index.Repo.SyncCache) while the repository stays open: the mount
// daemon calls it periodically, and before each command it runs for a
// client, so that other hosts' snapshots, forgets and prunes show without
// a remount. It does not run beside a writer (snapshot, forget, prune) of
// this process: a sync that listed the store before that writer's pack
// was put, and read the index after the pack was recorded, would drop the
// pack as gone. Then it returns ran false at once (the writer may take
// minutes; the next call syncs). The generation moves when the snapshots
// changed, so the mount rebuilds its view.
func (r *Repository) SyncCache() (res *index.SyncResult, ran bool, err error) {
	if !r.writeMu.TryLock() {
		return nil, false, nil
	}
	defer r.writeMu.Unlock()
	r.resync.syncMu.Lock()
	defer r.resync.syncMu.Unlock()
	res, err = r.idx.SyncCache()
	if err != nil {
		return nil, true, err
	}
	if res.SnapshotsAdded+res.SnapshotsDropped+res.PacksDropped > 0 {
		r.changed()
	}
	return res, true, nil
}
