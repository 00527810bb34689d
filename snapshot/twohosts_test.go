package snapshot

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"citadelfs/index"
)

// Two hosts that store the same new chunks at the same moment both
// upload them: each asks only its own cache, which does not know the
// other's packs until its next open. The packs differ (other neighbours),
// so the bucket holds those chunks twice. That is accepted: both
// snapshots restore, and a prune from either host reclaims the second
// copy (the copy its index does not serve is dead). The host whose copy
// the prune took must then find its chunks in the other's pack: its
// cache had skipped them there (it held them already), and dropping the
// pruned pack left them unindexed, so its own snapshot no longer
// restored and check called it damaged (the old SyncCache).
func TestTwoHostsSameChunksAtOnceThenPrune(t *testing.T) {
	ctx := context.Background()
	store := index.NewLocalStore(t.TempDir(), 8) // the bucket
	t.Cleanup(func() { store.Close() })
	if err := InitStore(store, "fake://bucket", Options{}); err != nil {
		t.Fatal(err)
	}
	cacheA, cacheB := t.TempDir(), t.TempDir()
	open := func(cache string, exclusive bool) *Repository {
		t.Helper()
		r, err := OpenStore(store, "fake://bucket", Options{CacheDir: cache, PackSize: 16 << 20, Exclusive: exclusive})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	model := make([]byte, 6<<20) // the same weights on both hosts
	fillRandom(model, 42)
	own := make([]byte, 200<<10) // host b's own file, stored beside them
	fillRandom(own, 43)
	srcA, srcB := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(srcA, "model"), model, 0o644)
	os.WriteFile(filepath.Join(srcB, "model"), model, 0o644)
	os.WriteFile(filepath.Join(srcB, "a-own"), own, 0o644)

	// Both open (and sync) before either stores anything: at once.
	a, b := open(cacheA, false), open(cacheB, false)
	resA, err := a.TakeSnapshot(ctx, Request{Host: "a", Sources: []SourceSpec{{Label: "d", Path: srcA}}})
	if err != nil {
		t.Fatal(err)
	}
	resB, err := b.TakeSnapshot(ctx, Request{Host: "b", Sources: []SourceSpec{{Label: "d", Path: srcB}}})
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	b.Close()
	stored := func() int64 {
		packs, err := index.ListStorePacks(store)
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		for _, p := range packs {
			n += p.Size
		}
		return n
	}
	before := stored()
	if before < int64(len(model))*19/10 {
		t.Fatalf("the bucket holds %d bytes: the model was not stored twice (the race this test is about did not happen)", before)
	}

	// Host b runs something (any open syncs its cache): it learns a's
	// pack, and indexes none of the model's chunks there, having them.
	open(cacheB, false).Close()

	// Host a prunes: b's copy of the model is dead in a's index.
	a = open(cacheA, true)
	pres, err := a.PruneWith(ctx, PruneOptions{}) // no grace: the packs are seconds old
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	after := stored()
	if after > int64(len(model)+len(own))*11/10 {
		t.Fatalf("after prune the bucket holds %d bytes (%d before, prune %+v): the second copy was not reclaimed", after, before, pres)
	}

	// Each host, through its own cache, restores both snapshots and
	// checks clean.
	for _, cache := range []string{cacheB, cacheA} {
		r := open(cache, false)
		mustCheck(t, r, "after prune")
		mustRestore(t, r, findByID(t, r, resA.Snapshot.ID), "model", model)
		mustRestore(t, r, findByID(t, r, resB.Snapshot.ID), "model", model)
		mustRestore(t, r, findByID(t, r, resB.Snapshot.ID), "a-own", own)
		r.Close()
	}
}
