package snapshot

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"citadelfs/index"
)

// VerifyPacks reads back exactly the packs a snapshot wrote. A byte the
// disk stored wrong (flipped after the pack writer hashed it) is reported
// and quarantined, and the next snapshot stores the chunk again, healing
// the snapshot that was verified.
func TestVerifyPacksAfterSnapshot(t *testing.T) {
	ctx := context.Background()
	r, fs, dir := newFaultyRepo(t)
	src := t.TempDir()
	data := make([]byte, 3<<20)
	fillRandom(data, 7)
	os.WriteFile(filepath.Join(src, "a"), data, 0o644)
	res, err := r.TakeSnapshot(ctx, Request{Sources: []SourceSpec{{Label: "d", Path: src}}})
	if err != nil {
		t.Fatal(err)
	}
	onDisk, _ := filepath.Glob(filepath.Join(dir, "packs", "*", "*.pack"))
	if len(res.Packs) != len(onDisk) || len(res.Packs) < 3 {
		t.Fatalf("Result.Packs names %d packs, the repository has %d", len(res.Packs), len(onDisk))
	}
	rep, err := r.VerifyPacks(ctx, res.Packs)
	if err != nil || !rep.OK() || rep.Packs != len(res.Packs) || rep.Blobs < 4 || rep.Bytes < 3<<20 {
		t.Fatalf("sound packs: %+v %v", rep, err)
	}

	// New data; the disk stores one byte of the second buffer written wrong.
	fillRandom(data, 8)
	os.WriteFile(filepath.Join(src, "b"), data, 0o644)
	fs.SetFaults(index.Fault{Op: index.OpWrite, Nth: 2, Corrupt: true})
	res2, err := r.TakeSnapshot(ctx, Request{Sources: []SourceSpec{{Label: "d", Path: src}}})
	if err != nil {
		t.Fatal(err)
	}
	fs.SetFaults()
	if len(res2.Packs) == 0 {
		t.Fatal("no packs written")
	}
	for _, p := range res2.Packs {
		for _, q := range res.Packs {
			if p == q {
				t.Fatalf("pack %s named by both snapshots", p.Short())
			}
		}
	}
	rep, err = r.VerifyPacks(ctx, res2.Packs)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || !strings.Contains(strings.Join(rep.Problems, "\n"), "fails its hash check") && !strings.Contains(strings.Join(rep.Problems, "\n"), "does not decode") {
		t.Fatalf("a flipped byte went unnoticed: %+v", rep)
	}
	q, err := r.idx.QuarantinedInUse()
	if err != nil || len(q) == 0 {
		t.Fatalf("damaged copy not quarantined: %v %v", q, err)
	}
	// The next snapshot stores the damaged chunk again; everything is sound.
	res3, err := r.TakeSnapshot(ctx, Request{Sources: []SourceSpec{{Label: "d", Path: src}}})
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := r.VerifyPacks(ctx, res3.Packs); err != nil || !rep.OK() {
		t.Fatalf("healing snapshot: %+v %v", rep, err)
	}
	mustCheck(t, r, "after healing")
	mustRestore(t, r, res2.Snapshot, "b", data)
}

// Request.Workers (compression.parallel_jobs) changes how many files are
// read at once, never what is stored.
func TestSnapshotWorkersSameResult(t *testing.T) {
	ctx := context.Background()
	src := t.TempDir()
	for i := 0; i < 12; i++ {
		data := make([]byte, 200<<10)
		fillRandom(data, uint64(i))
		os.WriteFile(filepath.Join(src, string(rune('a'+i))), data, 0o644)
	}
	var trees []index.ID
	for _, w := range []int{1, 7} {
		r, _ := newRepo(t)
		res, err := r.TakeSnapshot(ctx, Request{Sources: []SourceSpec{{Label: "d", Path: src}}, Workers: w})
		if err != nil {
			t.Fatal(err)
		}
		trees = append(trees, res.Snapshot.Sources[0].Tree)
		if res.Snapshot.Sources[0].Stats.Files != 12 {
			t.Fatalf("workers %d: %+v", w, res.Snapshot.Sources[0].Stats)
		}
	}
	if trees[0] != trees[1] {
		t.Fatal("the tree depends on the worker count")
	}
}
