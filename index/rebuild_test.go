package index

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// A blob stored twice (a snapshot stored a damaged chunk again) must be
// indexed from its good copy by a rebuild: from the quarantine when the
// old index can be read, and by verifying the copies when it cannot.
// Before, the pack walked last won, damaged or not.
func TestRebuildIndexPicksTheGoodCopy(t *testing.T) {
	for _, oldIndex := range []bool{true, false} {
		r := newTestRepo(t)
		blob := bytes.Repeat([]byte("chunk "), 1000)
		other := []byte("another blob, so the two packs differ")
		p1, _ := writePack(t, r, blob, other)
		p2, _ := writePack(t, r, blob)
		// Damage the copy the walk meets first (packs/<xx>/ in name order).
		first := p1
		if p2.String() < p1.String() {
			first = p2
		}
		ref := BlobRef{ID: Hash(blob), Pack: first}
		es, _, err := r.ReadPackTrailer(first)
		if err != nil {
			t.Fatal(err)
		}
		ref.PackEntry = es[0]
		f, err := os.OpenFile(PackPath(r.Dir, first), os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteAt([]byte("XXXX"), int64(ref.Offset)+10)
		f.Close()
		if err := r.Quarantine([]Damaged{{Pack: first, Blob: ref.ID, Reason: "fails its hash check"}}); err != nil {
			t.Fatal(err)
		}
		dir := r.Dir
		r.Close()
		if !oldIndex {
			os.RemoveAll(filepath.Join(dir, indexDir))
		}
		verify := func(ref BlobRef, stored []byte) error {
			if Hash(stored) != ref.ID {
				return errors.New("hash mismatch")
			}
			return nil
		}
		res, err := RebuildIndexWith(dir, Options{}, RebuildOptions{Verify: verify})
		if err != nil {
			t.Fatal(err)
		}
		if res.Duplicates != 1 || (res.OldIndex == "") != oldIndex || (res.Quarantined == 1) != oldIndex {
			t.Fatalf("old index %v: %+v", oldIndex, res)
		}
		r2, err := Open(dir, Options{})
		if err != nil {
			t.Fatal(err)
		}
		got, err := r2.Lookup(ref.ID)
		r2.Close()
		if err != nil || got.Pack == first {
			t.Fatalf("old index %v: the rebuilt index serves %s from %s, the damaged copy (%v)", oldIndex, ref.ID.Short(), got.Pack.Short(), err)
		}
	}
}
