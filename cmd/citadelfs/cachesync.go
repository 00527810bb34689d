package main

import (
	"log/slog"
	"sync"
	"time"

	"citadelfs/snapshot"
)

// cacheSync keeps the index cache of the repository a mount daemon holds
// in a store up to date with the store, so that what other hosts commit
// (snapshots, forgets, prunes) shows in the mount and in the commands the
// daemon runs, without a remount: every --sync-interval, and before each
// command a client hands over (a command run on its own syncs when it
// opens the repository; one run in the daemon should see no less; only
// status takes a sync that finished within clientSyncAge). Between these, a read that meets a
// pack another host's prune deleted syncs at once (snapshot/missingpack.go:
// the daemon's reader lock holds no prune back); the mount notices the
// snapshots that sync dropped by their generation.
type cacheSync struct {
	repo    *snapshot.Repository
	refresh func() // has the kernel forget the names that changed
	log     *slog.Logger

	mu      sync.Mutex // one sync at a time
	last    time.Time  // when the last sync that ran finished
	failing bool       // the last sync failed (logged once until one works)
}

// clientSyncAge: status, run for a client, skips the sync when one
// finished this recently (a status --watch asking every second costs no
// listing each). Other commands always sync: a snapshot another host
// committed a moment ago must be in their answer.
const clientSyncAge = 2 * time.Second

func newCacheSync(repo *snapshot.Repository, refresh func(), log *slog.Logger) *cacheSync {
	return &cacheSync{repo: repo, refresh: refresh, log: log, last: time.Now()}
}

// start syncs every interval until the returned func is called.
func (c *cacheSync) start(every time.Duration) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-quit:
				return
			case <-tick.C:
				c.sync(0)
			}
		}
	}()
	return func() { close(quit); <-done }
}

// sync brings the cache up to date unless a sync finished within maxAge.
// A store that cannot be reached is logged once until a sync succeeds
// again: the mount keeps serving what the cache knows, and a command that
// needs the store says so itself.
func (c *cacheSync) sync(maxAge time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if maxAge > 0 && time.Since(c.last) < maxAge {
		return
	}
	res, ran, err := c.repo.SyncCache()
	switch {
	case !ran:
		return // a writer of this process runs; the next sync comes
	case err != nil:
		if !c.failing {
			c.log.Warn("mount: cannot bring the cache up to date with the store; serving what it knows", "err", err)
		}
		c.failing = true
		return
	case c.failing:
		c.log.Info("mount: the store answers again; cache up to date")
		c.failing = false
	}
	c.last = time.Now()
	if res.SnapshotsAdded+res.SnapshotsDropped+res.PacksAdded+res.PacksDropped > 0 {
		c.log.Info("mount: cache synced with the store", "snapshots_added", res.SnapshotsAdded, "snapshots_dropped", res.SnapshotsDropped,
			"packs_added", res.PacksAdded, "packs_dropped", res.PacksDropped)
		c.refresh()
	}
}
