package snapshot

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"citadelfs/index"
)

// fileChunk returns the ref of the first chunk of label/name in s.
func fileChunk(t *testing.T, r *Repository, s *Snapshot, label, name string) index.BlobRef {
	t.Helper()
	src, ok := s.Source(label)
	if !ok {
		t.Fatalf("snapshot %s has no source %s", s.ID.Short(), label)
	}
	tree, err := r.LoadTree(context.Background(), src.Tree)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range tree.Nodes {
		if n.Name == name && len(n.Content) > 0 {
			ref, err := r.idx.Lookup(n.Content[0].ID)
			if err != nil {
				t.Fatal(err)
			}
			return ref
		}
	}
	t.Fatalf("no file %s with content in %s", name, label)
	return index.BlobRef{}
}

func flipStored(t *testing.T, dir string, ref index.BlobRef) {
	t.Helper()
	f, err := os.OpenFile(index.PackPath(dir, ref.Pack), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 4)
	off := int64(ref.Offset) + int64(ref.Length)/2
	f.ReadAt(b, off)
	for i := range b {
		b[i] ^= 0x5a
	}
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// A pack that is mostly dead but holds the only (damaged, quarantined)
// copy of a live chunk: prune used to fail as a whole ("refusing to repack
// a damaged blob"). It keeps that pack, says so, and drops it once a
// snapshot has stored the chunk again and nothing in it is needed.
func TestPruneKeepsPackWithDamagedLiveChunk(t *testing.T) {
	ctx := context.Background()
	r, dir := newRepo(t)
	src := t.TempDir()
	small, big := make([]byte, 200<<10), make([]byte, 700<<10)
	fillRandom(small, 1)
	fillRandom(big, 2)
	os.WriteFile(filepath.Join(src, "small"), small, 0o644)
	os.WriteFile(filepath.Join(src, "big"), big, 0o644)
	both, err := r.TakeSnapshot(ctx, Request{Sources: []SourceSpec{{Label: "d", Path: src}}})
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(src, "big"))
	onlySmall, err := r.TakeSnapshot(ctx, Request{Sources: []SourceSpec{{Label: "d", Path: src}}})
	if err != nil {
		t.Fatal(err)
	}
	ref := fileChunk(t, r, onlySmall.Snapshot, "d", "small")
	if bigRef := fileChunk(t, r, both.Snapshot, "d", "big"); bigRef.Pack != ref.Pack {
		t.Fatalf("small and big in different packs (%s, %s); the test needs them together", ref.Pack.Short(), bigRef.Pack.Short())
	}
	flipStored(t, dir, ref)
	if rep, err := r.Check(ctx, CheckOptions{ReadData: true}); err != nil || rep.OK() {
		t.Fatalf("check of a damaged chunk: %v %+v", err, rep)
	}
	if q, _ := r.idx.QuarantinedInUse(); len(q) != 1 {
		t.Fatalf("after check: %d quarantined chunks in use, want 1", len(q))
	}
	if err := r.Forget(ctx, []index.ID{both.Snapshot.ID}); err != nil {
		t.Fatal(err)
	}
	// big is dead now: the pack is mostly dead, its one live chunk damaged.
	res, err := r.Prune(ctx, false)
	if err != nil {
		t.Fatalf("prune over a damaged live chunk: %v", err)
	}
	if res.PacksKeptDamaged != 1 {
		t.Fatalf("prune: %+v, want the damaged pack kept", res)
	}
	if _, err := os.Stat(index.PackPath(dir, ref.Pack)); err != nil {
		t.Fatalf("prune removed the pack holding a live chunk's only copy: %v", err)
	}

	// The next snapshot (the file unchanged: the file-change cache must
	// not skip it) stores the chunk again and heals the older snapshot.
	heal, err := r.TakeSnapshot(ctx, Request{Sources: []SourceSpec{{Label: "d", Path: src}}})
	if err != nil {
		t.Fatal(err)
	}
	if st := heal.Snapshot.Sources[0].Stats; st.NewChunks != 1 {
		t.Fatalf("healing snapshot stored %d new chunks, want the damaged one again", st.NewChunks)
	}
	if got := fileChunk(t, r, onlySmall.Snapshot, "d", "small"); got.Pack == ref.Pack {
		t.Fatalf("the chunk still points at the damaged pack %s", ref.Pack.Short())
	}
	if rep, err := r.Check(ctx, CheckOptions{ReadData: true}); err != nil || !rep.OK() {
		t.Fatalf("check after healing: %v %+v", err, rep)
	}
	out := t.TempDir()
	if _, err := r.Restore(ctx, onlySmall.Snapshot, nil, out, RestoreOptions{}); err != nil {
		t.Fatalf("restore of the older snapshot after healing: %v", err)
	}
	// Nothing in the damaged pack is needed now: prune drops it, and its
	// quarantine records with it.
	if _, err := r.Prune(ctx, false); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(index.PackPath(dir, ref.Pack)); err == nil {
		t.Fatalf("damaged pack %s still there once nothing in it is needed", ref.Pack.Short())
	}
	n := 0
	r.idx.QuarantineRecords(func(index.Damaged) error { n++; return nil })
	if n != 0 {
		t.Fatalf("%d quarantine records left after the damaged pack went", n)
	}
}

// repair packs killed after its index batch and before the old pack's
// removal leaves that pack on disk, unindexed and still quarantined. The
// next open must not adopt it (the lost chunk would be served from the
// damaged copy again), and the next repair packs removes it.
func TestRepairPacksInterruptedBeforeRemoval(t *testing.T) {
	ctx := context.Background()
	r, dir := newRepo(t)
	_, _, res := snapshotRandomFile(t, r, "f.bin", 3<<20, 5)
	ref := fileChunk(t, r, res.Snapshot, "d", "f.bin")
	flipStored(t, dir, ref)
	if rep, err := r.Check(ctx, CheckOptions{ReadData: true}); err != nil || rep.OK() {
		t.Fatalf("check: %v %+v", err, rep)
	}
	damaged, _ := os.ReadFile(index.PackPath(dir, ref.Pack))
	records, _ := r.idx.PackQuarantine(ref.Pack)
	rp, err := r.RepairPacks(ctx, nil, false)
	if err != nil || rp.Lost != 1 {
		t.Fatalf("repair packs: %+v %v", rp, err)
	}
	// The state a kill between ReplacePack and RemovePack leaves.
	os.WriteFile(index.PackPath(dir, ref.Pack), damaged, 0o600)
	r.idx.Quarantine(records)
	r.Close()
	os.WriteFile(filepath.Join(dir, "lock"), []byte(`{"pid":1}`), 0o600) // the holder died
	r2, err := Open(dir, Options{PackSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	if has, _ := r2.idx.HasBlob(ref.ID); has {
		t.Fatalf("open adopted the damaged pack: lost chunk %s is served from it again", ref.ID.Short())
	}
	rp, err = r2.RepairPacks(ctx, nil, false)
	if err != nil || len(rp.Packs) != 1 || rp.Packs[0].Pack != ref.Pack {
		t.Fatalf("second repair packs: %+v %v", rp, err)
	}
	if _, err := os.Stat(index.PackPath(dir, ref.Pack)); err == nil {
		t.Fatalf("the damaged pack is still there after the second repair")
	}
	if rep, _ := r2.Check(ctx, CheckOptions{ReadData: true}); len(rep.Problems) != 1 {
		t.Fatalf("check after: %q, want just the lost chunk", rep.Problems)
	}
}

// A directory whose listing is damaged is kept empty and marked; a
// snapshot of which nothing can be kept is left empty, and --forget
// removes it without writing a repaired one.
func TestRepairSnapshotsLostListings(t *testing.T) {
	ctx := context.Background()
	r, dir := newRepo(t)
	a, b := t.TempDir(), t.TempDir()
	os.MkdirAll(filepath.Join(a, "sub"), 0o755)
	os.WriteFile(filepath.Join(a, "sub", "f"), []byte("in the damaged directory"), 0o644)
	os.WriteFile(filepath.Join(a, "top"), []byte("beside it"), 0o644)
	os.WriteFile(filepath.Join(b, "only"), []byte("the only file of the other source"), 0o644)
	sa, err := r.TakeSnapshot(ctx, Request{Sources: []SourceSpec{{Label: "a", Path: a}}})
	if err != nil {
		t.Fatal(err)
	}
	sb, err := r.TakeSnapshot(ctx, Request{Sources: []SourceSpec{{Label: "b", Path: b}}})
	if err != nil {
		t.Fatal(err)
	}
	root, err := r.LoadTree(ctx, sa.Snapshot.Sources[0].Tree)
	if err != nil {
		t.Fatal(err)
	}
	var sub index.ID
	for _, n := range root.Nodes {
		if n.Name == "sub" {
			sub = n.Subtree
		}
	}
	for _, id := range []index.ID{sub, sb.Snapshot.Sources[0].Tree} {
		ref, err := r.idx.Lookup(id)
		if err != nil {
			t.Fatal(err)
		}
		flipStored(t, dir, ref)
	}
	r.cache = newBlobCache(64 << 20) // what a fresh process would see
	if rep, err := r.Check(ctx, CheckOptions{ReadData: true}); err != nil || rep.OK() {
		t.Fatalf("check: %v %+v", err, rep)
	}
	res, err := r.RepairSnapshots(ctx, false, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Snapshots) != 2 || len(res.Forgotten) != 2 {
		t.Fatalf("repair: %+v", res)
	}
	var repairedA index.ID
	for _, s := range res.Snapshots {
		switch s.Snapshot {
		case sa.Snapshot.ID:
			if s.Empty || s.Repaired.IsZero() || len(s.Paths) != 1 || s.Paths[0].Path != "a/sub/" || s.Paths[0].Kind != "directory" {
				t.Fatalf("repair of the snapshot with a lost directory: %+v", s)
			}
			repairedA = s.Repaired
		case sb.Snapshot.ID:
			if !s.Empty || !s.Repaired.IsZero() {
				t.Fatalf("repair of the snapshot whose only listing is lost: %+v", s)
			}
		}
	}
	snaps, _ := r.Snapshots()
	if len(snaps) != 1 || snaps[0].ID != repairedA || !snaps[0].HasTag(RepairedTag) {
		t.Fatalf("after repair --forget: %d snapshots, want only the repaired one", len(snaps))
	}
	out := t.TempDir()
	if _, err := r.Restore(ctx, snaps[0], nil, out, RestoreOptions{}); err != nil {
		t.Fatalf("restore of the repaired snapshot: %v", err)
	}
	if got, _ := os.ReadFile(filepath.Join(out, "a", "top")); string(got) != "beside it" {
		t.Fatalf("a/top restored as %q", got)
	}
	ents, err := os.ReadDir(filepath.Join(out, "a", "sub"))
	if err != nil || len(ents) != 0 {
		t.Fatalf("a/sub: %v %v, want kept empty", ents, err)
	}
	v := make([]byte, 512)
	n, err := unix.Getxattr(filepath.Join(out, "a", "sub"), RepairedXattr, v)
	if err != nil || !strings.Contains(string(v[:n]), "listing lost") {
		t.Fatalf("a/sub marker: %q %v", v[:max(n, 0)], err)
	}
	if rep, err := r.Check(ctx, CheckOptions{}); err != nil || !rep.OK() {
		t.Fatalf("structural check after repair --forget: %v %+v", err, rep)
	}
}
