package snapshot

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"citadelfs/index"
)

// Host a keeps the bucket open under a reader lock (a mount) while host
// b, with its own cache, forgets a snapshot and prunes: b's prune takes
// its exclusive lock beside a's reader lock, repacks the pack the two
// snapshots shared and deletes it. a's reads of the snapshot that stays
// meet the deleted pack, sync a's cache once (one sync for all of them,
// reading at once) and read the repacked copy: the same bytes. The
// forgotten snapshot is gone from a's list after that sync (the mount's
// adapter answers ESTALE for it, not a corrupt read), and its own data
// reads as missing, never as wrong bytes.
func TestReaderRereadsAfterAnotherHostsPrune(t *testing.T) {
	ctx := context.Background()
	store := index.NewLocalStore(t.TempDir(), 8) // the bucket
	t.Cleanup(func() { store.Close() })
	if err := InitStore(store, "fake://bucket", Options{}); err != nil {
		t.Fatal(err)
	}
	cacheA, cacheB := t.TempDir(), t.TempDir()
	b, err := OpenStore(store, "fake://bucket", Options{CacheDir: cacheB, Command: "citadelfs snapshot"})
	if err != nil {
		t.Fatal(err)
	}
	// s1 holds a big file of its own and three small ones that s2 holds
	// too: after s1 is forgotten its pack is mostly dead and repacked.
	big := make([]byte, 900<<10)
	fillRandom(big, 7)
	small := make([][]byte, 3)
	src1, src2 := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(src1, "big"), big, 0o644)
	for i := range small {
		small[i] = make([]byte, 20<<10)
		fillRandom(small[i], uint64(10+i))
		name := string(rune('a'+i)) + ".cfg"
		os.WriteFile(filepath.Join(src1, name), small[i], 0o644)
		os.WriteFile(filepath.Join(src2, name), small[i], 0o644)
	}
	r1, err := b.TakeSnapshot(ctx, Request{Host: "b", Sources: []SourceSpec{{Label: "d", Path: src1}}})
	if err != nil {
		t.Fatal(err)
	}
	r2, err := b.TakeSnapshot(ctx, Request{Host: "b", Sources: []SourceSpec{{Label: "d", Path: src2}}})
	if err != nil {
		t.Fatal(err)
	}
	b.Close()

	a, err := OpenStore(store, "fake://bucket", Options{CacheDir: cacheA, Reader: true, Command: "citadelfs mount"})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	// What a mount has listed before the prune: both snapshots' files.
	resolve := func(s index.ID, name string) *Node {
		t.Helper()
		snap, err := a.FindSnapshot(s.String())
		if err != nil {
			t.Fatal(err)
		}
		n, err := a.Resolve(ctx, snap, "d/"+name)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	bigNode := resolve(r1.Snapshot.ID, "big")
	var kept []*Node
	for i := range small {
		kept = append(kept, resolve(r2.Snapshot.ID, string(rune('a'+i))+".cfg"))
	}

	// Host b forgets s1 and prunes with no grace, a's reader lock held.
	b, err = OpenStore(store, "fake://bucket", Options{CacheDir: cacheB, Command: "citadelfs prune", Exclusive: true})
	if err != nil {
		t.Fatalf("b's prune beside a's reader lock: %v", err)
	}
	if err := b.Forget(ctx, []index.ID{r1.Snapshot.ID}); err != nil {
		t.Fatal(err)
	}
	res, err := b.PruneWith(ctx, PruneOptions{Grace: 0})
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	if res.PacksRepacked == 0 {
		t.Fatalf("set-up: b's prune repacked nothing (%+v): a's reads would not meet a moved blob", res)
	}

	var wg sync.WaitGroup
	got := make([][]byte, len(kept))
	errs := make([]error, len(kept))
	for i, n := range kept {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i] = make([]byte, n.Size)
			_, errs[i] = a.OpenFile(n).ReadAt(ctx, got[i], 0)
		}()
	}
	wg.Wait()
	for i := range kept {
		if errs[i] != nil && !errors.Is(errs[i], io.EOF) || !bytes.Equal(got[i], small[i]) {
			t.Fatalf("a's read of s2's file %d after b's prune: %v (bytes equal %v)", i, errs[i], bytes.Equal(got[i], small[i]))
		}
	}
	if a.resync.syncs != 1 {
		t.Errorf("a synced %d times for reads that missed at once, want 1", a.resync.syncs)
	}
	snaps, err := a.Snapshots()
	if err != nil || len(snaps) != 1 || snaps[0].ID != r2.Snapshot.ID {
		t.Fatalf("a's snapshots after the sync: %v %v, want only s2", snaps, err)
	}
	buf := make([]byte, 4096)
	if k, err := a.OpenFile(bigNode).ReadAt(ctx, buf, 0); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("a's read of the forgotten snapshot's file: %d bytes, %v; want it missing", k, err)
	}
}
