package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"citadelfs/index"
	"citadelfs/snapshot"
)

// Two hosts' repositories over one store (a directory standing in for
// the bucket), each with its own cache, as a fleet shares an s3:// one.
func sharedStoreRepos(t *testing.T) (bucket string, open func(cache string, wrap func(index.Store) index.Store) *snapshot.Repository) {
	t.Helper()
	bucket = t.TempDir()
	s := index.NewLocalStore(bucket, 4)
	if err := snapshot.InitStore(s, "fake://fleet", snapshot.Options{}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	open = func(cache string, wrap func(index.Store) index.Store) *snapshot.Repository {
		t.Helper()
		r, err := snapshot.OpenStore(index.NewLocalStore(bucket, 4), "fake://fleet", snapshot.Options{CacheDir: cache, WrapStore: wrap})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		return r
	}
	return bucket, open
}

func repoSnapshotIDs(t *testing.T, r *snapshot.Repository) []string {
	t.Helper()
	snaps, err := r.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, s := range snaps {
		ids = append(ids, s.ID.String())
	}
	return ids
}

// The mount daemon's cache follows the store: another host's snapshot
// shows after a sync, and its forget too (the periodic sync); a client's
// command skips the sync when one just ran; and a store that cannot be
// listed is logged once, then once more when it answers again.
func TestCacheSyncFollowsOtherHosts(t *testing.T) {
	_, open := sharedStoreRepos(t)
	var faulty *index.FaultyStore
	a := open(filepath.Join(t.TempDir(), "cache-a"), func(s index.Store) index.Store { faulty = index.NewFaultyStore(s); return faulty })
	b := open(filepath.Join(t.TempDir(), "cache-b"), nil)
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "f"), []byte("weights"), 0o644)
	res, err := b.TakeSnapshot(context.Background(), snapshot.Request{Sources: []snapshot.SourceSpec{{Label: "m", Path: src}}, Host: "b"})
	if err != nil {
		t.Fatal(err)
	}
	id := res.Snapshot.ID.String()

	refreshed := make(chan struct{}, 10)
	var logBuf bytes.Buffer
	cs := newCacheSync(a, func() { refreshed <- struct{}{} }, slog.New(slog.NewTextHandler(&logBuf, nil)))
	// A client's command right after a sync does not sync again.
	cs.sync(time.Hour)
	if ids := repoSnapshotIDs(t, a); len(ids) != 0 {
		t.Fatalf("synced although a sync had just run: %v", ids)
	}
	gen := a.Generation()
	cs.sync(0)
	if ids := repoSnapshotIDs(t, a); len(ids) != 1 || ids[0] != id {
		t.Fatalf("after a sync a has %v, want b's %s", ids, id)
	}
	if a.Generation() == gen {
		t.Error("the generation did not move: the mount would keep its old view")
	}
	select {
	case <-refreshed:
	default:
		t.Error("no refresh after the snapshots changed")
	}

	// The periodic sync sees b's forget.
	stop := cs.start(10 * time.Millisecond)
	if err := b.Forget(context.Background(), []index.ID{res.Snapshot.ID}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-refreshed:
	case <-time.After(10 * time.Second):
		t.Fatal("the periodic sync did not see b's forget")
	}
	stop()
	if ids := repoSnapshotIDs(t, a); len(ids) != 0 {
		t.Fatalf("after b's forget a still has %v", ids)
	}

	// The store gone: two failed syncs, one log line; back: one more.
	faulty.SetFaults(index.Fault{Op: index.OpList, Sticky: true, Err: index.ErrStoreUnavailable})
	cs.sync(0)
	cs.sync(0)
	faulty.SetFaults()
	cs.sync(0)
	log := logBuf.String()
	if n := strings.Count(log, "cannot bring the cache up to date"); n != 1 {
		t.Errorf("%d warnings for two failed syncs, want 1:\n%s", n, log)
	}
	if !strings.Contains(log, "the store answers again") {
		t.Errorf("no line when the store answered again:\n%s", log)
	}
}
