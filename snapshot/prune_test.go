package snapshot

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"citadelfs/index"
)

// Prune on small packs, where the header and trailer are much of the size:
// it must neither rewrite a pack whose blobs are all needed nor delete a
// pack it has just written. Both used to lose a whole snapshot: rewritten
// whole, a pack comes out with the same id, and the old one's removal then
// deleted the new one.
func TestPruneKeepsSmallPacksWhole(t *testing.T) {
	ctx := context.Background()
	r, _ := newRepo(t)
	src := t.TempDir()
	var ids []index.ID
	for i := range 6 {
		if err := os.WriteFile(filepath.Join(src, "a"), []byte(fmt.Sprintf("version %d\n", i)), 0o644); err != nil {
			t.Fatal(err)
		}
		res, err := r.TakeSnapshot(ctx, Request{Sources: []SourceSpec{{Label: "t", Path: src}}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.Snapshot.ID)
	}
	mustBeWhole := func(step string) {
		t.Helper()
		rep, err := r.Check(ctx, CheckOptions{ReadData: true})
		if err != nil || !rep.OK() {
			t.Fatalf("%s: check: %v %q", step, err, rep.Problems)
		}
		snaps, err := r.Snapshots()
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range snaps {
			out := t.TempDir()
			if _, err := r.Restore(ctx, s, nil, out, RestoreOptions{}); err != nil {
				t.Fatalf("%s: restore %s: %v", step, s.ID.Short(), err)
			}
		}
	}
	// Nothing to free: nothing may change.
	res, err := r.Prune(ctx, false)
	if err != nil || res.PacksDeleted+res.PacksRepacked != 0 {
		t.Fatalf("prune with every blob live: %+v %v", res, err)
	}
	mustBeWhole("first prune")
	// Forget some, prune, and prune again over what the first one wrote.
	if err := r.Forget(ctx, []index.ID{ids[0], ids[2]}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := r.Prune(ctx, false); err != nil {
			t.Fatal(err)
		}
		mustBeWhole(fmt.Sprintf("prune %d after forget", i+1))
	}
}

// errAfter is a context that reports itself cancelled from its n-th Err
// call on: prune checks it once per pack.
type errAfter struct {
	context.Context
	n int
}

func (c *errAfter) Err() error {
	if c.n--; c.n < 0 {
		return context.Canceled
	}
	return nil
}

// A prune cancelled while it is rewriting packs leaves no half-written
// pack behind (it used to keep the file, its buffers and a goroutine
// until the process exited), and everything still restores.
func TestPruneCancelledLeavesNoPartialPack(t *testing.T) {
	ctx := context.Background()
	r, dir := newRepo(t)
	// Three sources of a big and a small file. A second snapshot with
	// the big files changed, then forgetting the first, leaves each first
	// pack mostly dead: prune rewrites the small files into a new pack.
	var srcs []string
	for i := range 3 {
		src := t.TempDir()
		writeRandom(t, filepath.Join(src, "big"), 600<<10, uint64(10*i+1))
		writeRandom(t, filepath.Join(src, "small"), 100<<10, uint64(10*i+2))
		srcs = append(srcs, src)
	}
	snap := func() index.ID {
		var specs []SourceSpec
		for i, s := range srcs {
			specs = append(specs, SourceSpec{Label: fmt.Sprintf("s%d", i), Path: s})
		}
		res, err := r.TakeSnapshot(ctx, Request{Sources: specs})
		if err != nil {
			t.Fatal(err)
		}
		return res.Snapshot.ID
	}
	first := snap()
	for i, src := range srcs {
		writeRandom(t, filepath.Join(src, "big"), 600<<10, uint64(10*i+3))
	}
	snap()
	if err := r.Forget(ctx, []index.ID{first}); err != nil {
		t.Fatal(err)
	}
	if dry, err := r.Prune(ctx, true); err != nil || dry.PacksRepacked == 0 {
		t.Fatalf("set-up: prune would repack nothing: %+v %v", dry, err)
	}
	packs, _ := index.ListPackFiles(dir)
	// Cancelled at the last pack: the repacks before it are under way.
	if _, err := r.Prune(&errAfter{Context: ctx, n: len(packs) - 1}, false); err == nil {
		t.Fatal("prune with a cancelled context returned no error")
	}
	partial, _ := filepath.Glob(filepath.Join(dir, "packs", "*.partial"))
	if len(partial) != 0 {
		t.Fatalf("half-written packs left: %v", partial)
	}
	rep, err := r.Check(ctx, CheckOptions{ReadData: true})
	if err != nil || !rep.OK() {
		t.Fatalf("check after a cancelled prune: %v %q", err, rep.Problems)
	}
}

func writeRandom(t *testing.T, path string, size int, seed uint64) {
	t.Helper()
	b := make([]byte, size)
	fillRandom(b, seed)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// A data pack deleted by hand: the next snapshot of the intact sources
// stores its chunks again (it used to reuse them, "read 0B", and commit a
// snapshot that could not be restored), and says so.
func TestSnapshotAfterLostPackStoresAgain(t *testing.T) {
	ctx := context.Background()
	r, dir := newRepo(t)
	src, data, _ := snapshotRandomFile(t, r, "w.bin", 700<<10, 42)
	packs, _ := index.ListPackFiles(dir)
	sort.Slice(packs, func(i, j int) bool { return packs[i].Size > packs[j].Size })
	if err := os.Remove(index.PackPath(dir, packs[0].ID)); err != nil { // the data
		t.Fatal(err)
	}
	r.cache = newBlobCache(64 << 20)
	var warnings []string
	res, err := r.TakeSnapshot(ctx, Request{Sources: []SourceSpec{{Label: "d", Path: src}}, Warn: func(m string) { warnings = append(warnings, m) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "missing") {
		t.Errorf("warnings %q: want one about the missing pack", warnings)
	}
	out := t.TempDir()
	if _, err := r.Restore(ctx, res.Snapshot, nil, out, RestoreOptions{}); err != nil {
		t.Fatalf("restore of the snapshot taken after the loss: %v", err)
	}
	got, err := os.ReadFile(filepath.Join(out, "d", "w.bin"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("restored %d bytes, %v", len(got), err)
	}
}

// ReadAll reads every file again, unchanged ones too: the way out for
// files changed without a new size, mtime or ctime (stores through a
// shared mmap to a page already dirty), which the file-change cache
// would otherwise skip.
func TestSnapshotReadAllIgnoresTheFileCache(t *testing.T) {
	ctx := context.Background()
	r, _ := newRepo(t)
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "state.bin"), []byte("version-1"), 0o644); err != nil {
		t.Fatal(err)
	}
	read := func(readAll bool) int64 {
		t.Helper()
		res, err := r.TakeSnapshot(ctx, Request{Sources: []SourceSpec{{Label: "d", Path: src}}, ReadAll: readAll})
		if err != nil {
			t.Fatal(err)
		}
		return res.Snapshot.Sources[0].Stats.ReadBytes
	}
	read(false)
	if n := read(false); n != 0 {
		t.Fatalf("unchanged file read again without ReadAll: %d bytes", n)
	}
	if n := read(true); n != int64(len("version-1")) {
		t.Fatalf("ReadAll read %d bytes, want the whole file", n)
	}
}

// Most packs gone at once (packs/ on a disk that is not mounted) is not
// taken as loss: the snapshot refuses and the index is left as it was.
func TestSnapshotRefusesWhenMostPacksAreMissing(t *testing.T) {
	ctx := context.Background()
	r, dir := newRepo(t)
	src, _, _ := snapshotRandomFile(t, r, "w.bin", 300<<10, 43)
	packs, _ := index.ListPackFiles(dir)
	for _, p := range packs {
		os.Rename(index.PackPath(dir, p.ID), index.PackPath(dir, p.ID)+".away")
	}
	if _, err := r.TakeSnapshot(ctx, Request{Sources: []SourceSpec{{Label: "d", Path: src}}}); err == nil || !strings.Contains(err.Error(), "not mounted") {
		t.Fatalf("snapshot with every pack missing: %v", err)
	}
	for _, p := range packs {
		os.Rename(index.PackPath(dir, p.ID)+".away", index.PackPath(dir, p.ID))
	}
	rep, err := r.Check(ctx, CheckOptions{ReadData: true})
	if err != nil || !rep.OK() {
		t.Fatalf("check after the disk came back: %v %q", err, rep.Problems)
	}
}
