package snapshot

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
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
		res, err := r.TakeSnapshot(ctx, Request{Sources: []SourceSpec{{"t", src}}})
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
