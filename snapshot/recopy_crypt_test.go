package snapshot

import (
	"context"
	"path/filepath"
	"testing"

	"citadelfs/internal/testutil"
)

// clear → encrypted → encrypted under another key → clear again: every
// hop re-chunks (other ids, another gear table), every copy verifies
// against its source and restores identical to the files snapshotted, and
// each target checks clean with its chunks read back.
func TestCopyRechunksAcrossKeys(t *testing.T) {
	testutil.NeedRoot(t, "to chown")
	ctx := context.Background()
	src := t.TempDir()
	makeSource(t, src)
	clear, _ := newRepo(t)
	res, err := clear.TakeSnapshot(ctx, Request{Sources: []SourceSpec{{Label: "data", Path: src}}, Tags: []string{"daily"}})
	if err != nil {
		t.Fatal(err)
	}
	dirB, kb := initSealed(t)
	b := openSealed(t, dirB, kb, filepath.Join(t.TempDir(), "cache-b"))
	dirC, kc := initSealed(t)
	c := openSealed(t, dirC, kc, filepath.Join(t.TempDir(), "cache-c"))
	back, _ := newRepo(t)

	hops := []*Repository{clear, b, c, back}
	snap := res.Snapshot
	for i := 0; i+1 < len(hops); i++ {
		from, to := hops[i], hops[i+1]
		if from.CopiesAsStored(to) {
			t.Fatalf("hop %d: repositories with different keys copy as stored", i)
		}
		got, err := from.Copy(ctx, to, []*Snapshot{snap}, nil)
		if err != nil {
			t.Fatalf("hop %d: %v", i, err)
		}
		if !got.Rechunked || len(got.Copied) != 1 || got.Targets[0] == snap.ID || got.Blobs == 0 {
			t.Fatalf("hop %d: %+v", i, got)
		}
		copied := findByID(t, to, got.Targets[0])
		if copied.CopiedFrom != snap.ID || !copied.Time.Equal(snap.Time) || len(copied.Tags) != 1 {
			t.Fatalf("hop %d: manifest %+v", i, copied.Manifest)
		}
		if err := NewCopyVerifier(from, to).Verify(ctx, snap, copied); err != nil {
			t.Fatalf("hop %d: verify: %v", i, err)
		}
		compareTrees(t, src, filepath.Join(restoreAll(t, to, copied), "data"))
		if rep, err := to.Check(ctx, CheckOptions{ReadData: true}); err != nil || !rep.OK() {
			t.Fatalf("hop %d: check: %v %v", i, err, rep.Problems)
		}
		if again, err := from.Copy(ctx, to, []*Snapshot{snap}, nil); err != nil || len(again.Skipped) != 1 || again.Blobs != 0 {
			t.Fatalf("hop %d: second copy: %v %+v", i, err, again)
		}
		snap = copied
	}
	// Back in the clear with the default chunker: the same chunks as the
	// first repository's, since the same plain bytes were cut the same
	// way (the clear ids are plain BLAKE3 on both sides).
	tb, err := back.LoadTree(ctx, snap.Sources[0].Tree)
	if err != nil {
		t.Fatal(err)
	}
	ta, err := clear.LoadTree(ctx, res.Snapshot.Sources[0].Tree)
	if err != nil {
		t.Fatal(err)
	}
	x, _ := ta.Find("big.bin")
	y, _ := tb.Find("big.bin")
	if len(x.Content) != len(y.Content) || x.Content[0] != y.Content[0] {
		t.Fatalf("big.bin chunked %v in the first repository, %v after the round trip", x.Content, y.Content)
	}
}
