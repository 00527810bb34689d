package snapshot

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"citadelfs/index"
)

// longName is a 236-byte file name, as in the directory that made one tree
// blob exceed the 64 MiB blob limit (300,000 of them failed the snapshot).
func longName(i int) string {
	s := fmt.Sprintf("%08d-", i)
	return s + strings.Repeat("n", 236-len(s))
}

// buildTree feeds names through a treeBuilder whose blobs go to a map.
func buildTree(t *testing.T, names []string) (index.ID, map[index.ID][]byte, *treeBuilder) {
	t.Helper()
	blobs := map[index.ID][]byte{}
	tb := newTreeBuilder(context.Background(), func(b []byte) (index.ID, error) {
		if len(b) > index.MaxBlobSize {
			t.Fatalf("tree blob of %d bytes exceeds the blob limit", len(b))
		}
		id := index.Hash(b)
		blobs[id] = bytes.Clone(b)
		return id, nil
	})
	for _, name := range names {
		if err := tb.add(&Node{Name: name, Type: TypeFile, Mode: 0o100644, Size: int64(len(name))}, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	id, err := tb.finish()
	if err != nil {
		t.Fatal(err)
	}
	return id, blobs, tb
}

func TestHugeDirectorySplitsIntoParts(t *testing.T) {
	const n = 300_000
	names := make([]string, n)
	for i := range names {
		names[i] = longName(i)
	}
	root, blobs, _ := buildTree(t, names)
	ix, err := DecodeTree(blobs[root])
	if err != nil {
		t.Fatal(err)
	}
	if len(ix.Parts) < 2 || len(ix.Nodes) != 0 {
		t.Fatalf("a %d-entry directory was stored as %d parts and %d nodes", n, len(ix.Parts), len(ix.Nodes))
	}
	var got []string
	for _, p := range ix.Parts {
		pt, err := DecodeTree(blobs[p.ID])
		if err != nil {
			t.Fatal(err)
		}
		if uint64(len(pt.Nodes)) != p.Count || pt.Nodes[0].Name != p.First {
			t.Fatalf("part %s: %d nodes from %q, index says %d from %q", p.ID.Short(), len(pt.Nodes), pt.Nodes[0].Name, p.Count, p.First)
		}
		for _, nd := range pt.Nodes {
			got = append(got, nd.Name)
		}
	}
	if len(got) != n {
		t.Fatalf("parts hold %d entries, want %d", len(got), n)
	}
	for i := range got {
		if got[i] != names[i] {
			t.Fatalf("entry %d is %q, want %q", i, got[i], names[i])
		}
	}
}

func TestSmallDirectoryStaysOneListing(t *testing.T) {
	// The format of every directory that fit before is unchanged, so
	// existing snapshots keep deduplicating against new ones.
	names := []string{"a", "b", "c"}
	root, blobs, _ := buildTree(t, names)
	want := (&Tree{Nodes: []Node{
		{Name: "a", Type: TypeFile, Mode: 0o100644, Size: 1},
		{Name: "b", Type: TypeFile, Mode: 0o100644, Size: 1},
		{Name: "c", Type: TypeFile, Mode: 0o100644, Size: 1},
	}}).Encode()
	if !bytes.Equal(blobs[root], want) || len(blobs) != 1 {
		t.Fatalf("small directory stored as %d blobs, not one listing", len(blobs))
	}
}

func TestHugeDirectoryAddedFileChangesFewParts(t *testing.T) {
	names := make([]string, 100_000)
	for i := range names {
		names[i] = longName(2 * i)
	}
	_, before, _ := buildTree(t, names)
	grown := append([]string{}, names[:50_000]...)
	grown = append(grown, longName(2*50_000-1))
	grown = append(grown, names[50_000:]...)
	_, after, _ := buildTree(t, grown)
	fresh := 0
	for id := range after {
		if _, ok := before[id]; !ok {
			fresh++
		}
	}
	// The grown part, and the index (and a part boundary the new name may
	// have moved).
	if fresh > 3 || len(after) < 10 {
		t.Fatalf("one added entry stored %d new tree blobs of %d", fresh, len(after))
	}
}

func TestTreeBuilderMemoryBounded(t *testing.T) {
	// A million entries go through the builder while it never holds more
	// than one part and the pending bound: the archiver's memory for a
	// directory does not grow with its size.
	maxHeld := 0
	tb := newTreeBuilder(context.Background(), func(b []byte) (index.ID, error) { return index.Hash(b), nil })
	for i := range 1_000_000 {
		if err := tb.add(&Node{Name: longName(i), Type: TypeFile, Mode: 0o100644}, nil, nil); err != nil {
			t.Fatal(err)
		}
		if held := len(tb.cur) + len(tb.pending); tb.split && held > maxHeld {
			maxHeld = held
		}
	}
	if _, err := tb.finish(); err != nil {
		t.Fatal(err)
	}
	if limit := treePartMaxBytes/236 + treePendingMax; maxHeld > limit {
		t.Fatalf("builder held %d entries at once, bound %d", maxHeld, limit)
	}
	if len(tb.parts) < 100 {
		t.Fatalf("a million entries made only %d parts", len(tb.parts))
	}
}

func TestTreeIndexDecodeRejectsCorruption(t *testing.T) {
	id := index.Hash([]byte("x"))
	good := encodeTreeIndex([]TreePart{{First: "a", Count: 3, ID: id}, {First: "m", Count: 2, ID: id}})
	if tr, err := DecodeTree(good); err != nil || len(tr.Parts) != 2 {
		t.Fatalf("good index: %v", err)
	}
	for name, b := range map[string][]byte{
		"unsorted":  encodeTreeIndex([]TreePart{{First: "m", Count: 3, ID: id}, {First: "a", Count: 2, ID: id}}),
		"repeated":  encodeTreeIndex([]TreePart{{First: "a", Count: 3, ID: id}, {First: "a", Count: 2, ID: id}}),
		"empty":     encodeTreeIndex(nil),
		"zero":      encodeTreeIndex([]TreePart{{First: "a", Count: 0, ID: id}}),
		"bad name":  encodeTreeIndex([]TreePart{{First: "../x", Count: 1, ID: id}}),
		"truncated": good[:len(good)-1],
		"trailing":  append(bytes.Clone(good), 0),
	} {
		if _, err := DecodeTree(b); err == nil {
			t.Errorf("%s part index decoded", name)
		}
	}
}

func TestHugeDirectorySnapshotRestorePrune(t *testing.T) {
	// Through the real archiver, pack store and index: a directory past
	// the split size snapshots, restores, checks, survives prune, and a
	// part that does not match its index is corrupt, not wrong entries.
	ctx := context.Background()
	r, _ := newRepo(t)
	src := t.TempDir()
	const n = 15_000 // about 4.3 MiB of listing with 236-byte names: past the split size
	for i := range n {
		if err := os.WriteFile(filepath.Join(src, longName(i)), []byte(fmt.Sprint(i)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s1, err := r.TakeSnapshot(ctx, Request{Sources: []SourceSpec{{Label: "logs", Path: src}}})
	if err != nil {
		t.Fatal(err)
	}
	root, err := r.LoadTree(ctx, s1.Snapshot.Sources[0].Tree)
	if err != nil {
		t.Fatal(err)
	}
	if len(root.Parts) < 2 || len(root.Nodes) != n {
		t.Fatalf("loaded %d nodes in %d parts, want %d in several", len(root.Nodes), len(root.Parts), n)
	}
	// A second snapshot, then forget the first and prune: the parts are
	// live through the index blob and must survive.
	if err := os.WriteFile(filepath.Join(src, "zz-new"), []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	s2, err := r.TakeSnapshot(ctx, Request{Sources: []SourceSpec{{Label: "logs", Path: src}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Forget(ctx, []index.ID{s1.Snapshot.ID}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Prune(ctx, false); err != nil {
		t.Fatal(err)
	}
	r.cache = newBlobCache(64 << 20) // read the parts back from the packs
	rep, err := r.Check(ctx, CheckOptions{ReadData: true})
	if err != nil || !rep.OK() {
		t.Fatalf("check after prune: %v %q", err, rep.Problems)
	}
	if rep.Trees < 3 {
		t.Fatalf("check counted %d trees; the parts are not counted", rep.Trees)
	}
	out := t.TempDir()
	res, err := r.Restore(ctx, s2.Snapshot, nil, out, RestoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Files != n+1 {
		t.Fatalf("restored %d files, want %d", res.Files, n+1)
	}
	for _, i := range []int{0, 7, n / 2, n - 1} {
		got, err := os.ReadFile(filepath.Join(out, "logs", longName(i)))
		if err != nil || string(got) != fmt.Sprint(i) {
			t.Fatalf("restored %s: %q %v", longName(i), got, err)
		}
	}
}

func TestTreePartMismatchIsCorrupt(t *testing.T) {
	ctx := context.Background()
	r, _ := newRepo(t)
	// Two real listings stored as blobs, and an index that lies about the
	// second part's first name.
	a := (&Tree{Nodes: []Node{{Name: "a", Type: TypeFile, Mode: 0o100644}}}).Encode()
	b := (&Tree{Nodes: []Node{{Name: "b", Type: TypeFile, Mode: 0o100644}}}).Encode()
	idA, idB := storeTreeBytes(t, r, a), storeTreeBytes(t, r, b)
	for name, parts := range map[string][]TreePart{
		"wrong first": {{First: "a", Count: 1, ID: idA}, {First: "c", Count: 1, ID: idB}},
		"wrong count": {{First: "a", Count: 2, ID: idA}, {First: "b", Count: 1, ID: idB}},
		"overlap":     {{First: "a", Count: 1, ID: idB}, {First: "b", Count: 1, ID: idB}},
	} {
		ix := storeTreeBytes(t, r, encodeTreeIndex(parts))
		if tr, err := r.LoadTree(ctx, ix); err == nil {
			t.Errorf("%s: loaded %d nodes from a part index that does not match its parts", name, len(tr.Nodes))
		}
	}
	good := storeTreeBytes(t, r, encodeTreeIndex([]TreePart{{First: "a", Count: 1, ID: idA}, {First: "b", Count: 1, ID: idB}}))
	if tr, err := r.LoadTree(ctx, good); err != nil || len(tr.Nodes) != 2 {
		t.Fatalf("good part index: %v", err)
	}
}
