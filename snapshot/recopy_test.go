package snapshot

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"citadelfs/index"
	"citadelfs/internal/testutil"
)

// smallChunks are chunker parameters unlike the default ones: other sizes
// and another gear table, so every file of more than 64 KiB is cut
// elsewhere.
var smallChunks = index.ChunkerParams{Min: 64 << 10, Avg: 128 << 10, Max: 512 << 10, Seed: 0x5eed}

// newRepoWith is newRepo with the given chunker parameters.
func newRepoWith(t *testing.T, p index.ChunkerParams) (*Repository, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "repo")
	if _, err := index.InitWithReserve(dir, p, time.Now(), 0); err != nil {
		t.Fatal(err)
	}
	r, err := Open(dir, Options{PackSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, dir
}

// restoreAll restores snap of r into a new directory and returns it.
func restoreAll(t *testing.T, r *Repository, snap *Snapshot) string {
	t.Helper()
	out := t.TempDir()
	if _, err := r.Restore(context.Background(), snap, nil, out, RestoreOptions{}); err != nil {
		t.Fatalf("restore %s: %v", snap.ID.Short(), err)
	}
	return out
}

func findByID(t *testing.T, r *Repository, id index.ID) *Snapshot {
	t.Helper()
	s, err := r.FindSnapshot(id.String())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A copy into a repository that chunks differently re-chunks every file:
// the snapshots get new ids, keep their metadata and name their source,
// restore identical (holes, hardlinks, xattrs, owners and all), and the
// target's chunks are its own sizes. A second copy, and a copy back the
// other way, transfer nothing.
func TestCopyRechunksIntoOtherChunker(t *testing.T) {
	testutil.NeedRoot(t, "to chown")
	ctx := context.Background()
	src := t.TempDir()
	makeSource(t, src)
	a, _ := newRepo(t)
	b, _ := newRepoWith(t, smallChunks)
	first, err := a.TakeSnapshot(ctx, Request{Sources: []SourceSpec{{Label: "data", Path: src}}, Tags: []string{"daily"}, Host: "gpu1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "sub", "text.yaml"), []byte("changed\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	second, err := a.TakeSnapshot(ctx, Request{Sources: []SourceSpec{{Label: "data", Path: src}}, Host: "gpu1"})
	if err != nil {
		t.Fatal(err)
	}
	if a.CopiesAsStored(b) {
		t.Fatal("repositories with other chunker parameters copy as stored")
	}
	snaps := []*Snapshot{first.Snapshot, second.Snapshot}
	res, err := a.Copy(ctx, b, snaps, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Rechunked || len(res.Copied) != 2 || len(res.Targets) != 2 || res.Blobs == 0 || res.PlainBytes < 3<<20 {
		t.Fatalf("copy: %+v", res)
	}
	for i, s := range snaps {
		if res.Targets[i] == s.ID {
			t.Fatalf("snapshot %s kept its id in a repository that chunks differently", s.ID.Short())
		}
		got := findByID(t, b, res.Targets[i])
		if got.CopiedFrom != s.ID || !got.Origin.IsZero() || !got.Time.Equal(s.Time) || !got.Created.Equal(s.Created) ||
			got.Host != "gpu1" || len(got.Tags) != len(s.Tags) || got.Sources[0].Label != "data" || got.Sources[0].Stats != s.Sources[0].Stats {
			t.Fatalf("copied manifest %+v\nof %+v", got.Manifest, s.Manifest)
		}
		compareTrees(t, filepath.Join(restoreAll(t, a, s), "data"), filepath.Join(restoreAll(t, b, got), "data"))
	}
	// The verifier migrate runs: each copy matches its source, and a
	// copy of the other snapshot (one file changed) does not.
	v := NewCopyVerifier(a, b)
	for i, s := range snaps {
		if err := v.Verify(ctx, s, findByID(t, b, res.Targets[i])); err != nil {
			t.Fatalf("verify copy of %s: %v", s.ID.Short(), err)
		}
		if c, err := b.FindCopy(s); err != nil || c.ID != res.Targets[i] {
			t.Fatalf("FindCopy(%s): %v %v", s.ID.Short(), c, err)
		}
	}
	if vr := v.Result(); vr.Snapshots != 2 || vr.Files == 0 || vr.Bytes < 3<<20 {
		t.Fatalf("verified %+v", vr)
	}
	if err := NewCopyVerifier(a, b).Verify(ctx, first.Snapshot, findByID(t, b, res.Targets[1])); !errors.Is(err, ErrCopyDiffers) {
		t.Fatalf("verify against the copy of another snapshot: %v, want ErrCopyDiffers", err)
	}

	// The target's chunks are cut by its own chunker.
	bt, err := b.LoadTree(ctx, findByID(t, b, res.Targets[0]).Sources[0].Tree)
	if err != nil {
		t.Fatal(err)
	}
	big, _ := bt.Find("big.bin")
	if len(big.Content) < 6 {
		t.Fatalf("big.bin (3 MiB) is %d chunks in a repository of at most 512 KiB chunks", len(big.Content))
	}
	for _, c := range big.Content {
		if c.Length > 512<<10 {
			t.Fatalf("a chunk of %d bytes in a repository of at most 512 KiB chunks", c.Length)
		}
	}
	if rep, err := b.Check(ctx, CheckOptions{ReadData: true}); err != nil || !rep.OK() {
		t.Fatalf("check of the target: %v %v", err, rep.Problems)
	}

	again, err := a.Copy(ctx, b, snaps, nil)
	if err != nil || len(again.Copied) != 0 || len(again.Skipped) != 2 || again.Blobs != 0 || again.PlainBytes != 0 {
		t.Fatalf("second copy: %v %+v", err, again)
	}
	back, err := b.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	home, err := b.Copy(ctx, a, back, nil)
	if err != nil || len(home.Copied) != 0 || len(home.Skipped) != 2 || home.Blobs != 0 {
		t.Fatalf("copy back into the repository the snapshots came from: %v %+v", err, home)
	}

	// A copy of the copy, into a third chunking: it names the copy it
	// came from, and the first snapshot as its origin; the origin's
	// repository then sees it as had.
	c, _ := newRepoWith(t, index.ChunkerParams{Min: 128 << 10, Avg: 256 << 10, Max: 1 << 20, Seed: 7})
	third, err := b.Copy(ctx, c, back[:1], nil)
	if err != nil || len(third.Copied) != 1 {
		t.Fatalf("copy of a copy: %v %+v", err, third)
	}
	cs := findByID(t, c, third.Targets[0])
	if cs.CopiedFrom != back[0].ID || cs.Origin != back[0].CopiedFrom {
		t.Fatalf("copy of a copy: copied_from %s origin %s, want %s and %s", cs.CopiedFrom.Short(), cs.Origin.Short(), back[0].ID.Short(), back[0].CopiedFrom.Short())
	}
	cSnaps, _ := c.Snapshots()
	if home, err := c.Copy(ctx, a, cSnaps, nil); err != nil || len(home.Skipped) != 1 || home.Blobs != 0 {
		t.Fatalf("copy of a copy back to its origin: %v %+v", err, home)
	}
}

// A re-chunking copy stopped part-way (a kill, here a cancel from the
// progress callback) leaves no snapshot in the target; the rerun stores
// only what is missing and the target checks clean.
func TestCopyRechunkResumes(t *testing.T) {
	ctx := context.Background()
	a, _ := newRepo(t)
	_, data, res := snapshotRandomFile(t, a, "model.bin", 12<<20, 42)
	b, _ := newRepoWith(t, smallChunks)
	cctx, cancel := context.WithCancel(ctx)
	var packsBefore int
	_, err := a.Copy(cctx, b, []*Snapshot{res.Snapshot}, func(_ index.ID, blobs, _ int64) {
		if blobs == 40 { // past the first 1 MiB packs
			cancel()
		}
	})
	cancel()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("stopped copy: %v", err)
	}
	if snaps, _ := b.Snapshots(); len(snaps) != 0 {
		t.Fatalf("a stopped copy left %d snapshots", len(snaps))
	}
	b.Index().IndexedPacks(func(index.ID, int, uint64) error { packsBefore++; return nil })
	if packsBefore == 0 {
		t.Fatal("the stopped copy committed no pack: nothing to resume from")
	}
	again, err := a.Copy(ctx, b, []*Snapshot{res.Snapshot}, nil)
	if err != nil || len(again.Copied) != 1 || again.BlobsPresent == 0 {
		t.Fatalf("rerun: %v %+v", err, again)
	}
	if rep, err := b.Check(ctx, CheckOptions{ReadData: true}); err != nil || !rep.OK() {
		t.Fatalf("check of the target: %v %v", err, rep.Problems)
	}
	s := findByID(t, b, again.Targets[0])
	got, err := os.ReadFile(filepath.Join(restoreAll(t, b, s), s.Sources[0].Label, "model.bin"))
	if err != nil || string(got) != string(data) {
		t.Fatalf("restore from the target: %v, %d bytes (want %d, identical)", err, len(got), len(data))
	}
}

// A damaged source chunk stops a re-chunking copy with ErrCorrupt before
// the snapshot reaches the target: its bytes are never re-chunked into
// good-looking blobs of the other repository.
func TestCopyRechunkStopsAtDamage(t *testing.T) {
	ctx := context.Background()
	a, dir := newRepo(t)
	_, _, res := snapshotRandomFile(t, a, "f.bin", 2<<20, 5)
	packs, _ := index.ListPackFiles(dir)
	sort.Slice(packs, func(i, j int) bool { return packs[i].Size > packs[j].Size })
	p := index.PackPath(dir, packs[0].ID)
	b, _ := os.ReadFile(p)
	b[len(b)/2] ^= 0x40
	os.WriteFile(p, b, 0o600)
	a.cache = newBlobCache(64 << 20)

	dst, _ := newRepoWith(t, smallChunks)
	got, err := a.Copy(ctx, dst, []*Snapshot{res.Snapshot}, nil)
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("re-chunking copy of a damaged chunk: %v (%+v), want ErrCorrupt", err, got)
	}
	if snaps, _ := dst.Snapshots(); len(snaps) != 0 {
		t.Fatalf("the damaged snapshot reached the target: %d snapshots", len(snaps))
	}
}

// Packs lost from the target (deleted by hand) are not deduplicated
// against: the next re-chunking copy stores their chunks again, and its
// snapshot restores.
func TestCopyRechunkStoresAgainWhatTheTargetLost(t *testing.T) {
	ctx := context.Background()
	a, _ := newRepo(t)
	src, data, res := snapshotRandomFile(t, a, "f.bin", 3<<20, 9)
	b, dirB := newRepoWith(t, smallChunks)
	if _, err := a.Copy(ctx, b, []*Snapshot{res.Snapshot}, nil); err != nil {
		t.Fatal(err)
	}
	packs, _ := index.ListPackFiles(dirB)
	sort.Slice(packs, func(i, j int) bool { return packs[i].Size > packs[j].Size })
	os.Remove(index.PackPath(dirB, packs[0].ID)) // chunks of f.bin
	again, err := a.TakeSnapshot(ctx, Request{Sources: []SourceSpec{{Label: "d", Path: src}}, Tags: []string{"again"}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := a.Copy(ctx, b, []*Snapshot{again.Snapshot}, nil)
	if err != nil || len(got.Copied) != 1 || got.Blobs == 0 {
		t.Fatalf("copy after the target lost its packs: %v %+v", err, got)
	}
	restored, err := os.ReadFile(filepath.Join(restoreAll(t, b, findByID(t, b, got.Targets[0])), "d", "f.bin"))
	if err != nil || string(restored) != string(data) {
		t.Fatalf("restore from the target: %v, %d bytes", err, len(restored))
	}
}
