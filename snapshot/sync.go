package snapshot

import "citadelfs/index"

// SyncCache brings a remote repository's cache up to date with the store
// (index.Repo.SyncCache) while the repository stays open: the mount
// daemon calls it periodically so that other hosts' snapshots, forgets
// and prunes show without a remount. It waits for a running writer
// (snapshot, forget, prune) of this process: a sync that listed the store
// before that writer's pack was put, and read the index after the pack
// was recorded, would drop the pack as gone. The generation moves when
// the snapshots changed, so the mount rebuilds its view.
func (r *Repository) SyncCache() (*index.SyncResult, error) {
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	res, err := r.idx.SyncCache()
	if err != nil {
		return nil, err
	}
	if res.SnapshotsAdded+res.SnapshotsDropped+res.PacksDropped > 0 {
		r.changed()
	}
	return res, nil
}
