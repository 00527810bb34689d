package snapshot

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"citadelfs/index"
)

// A file whose second chunk is corrupt was counted among the restored
// files, and its first chunk's bytes in the size, although restore
// removed it. Only files restored whole count.
func TestRestoreCountsOnlyCompletedFiles(t *testing.T) {
	r, _ := newRepo(t)
	good := bytes.Repeat([]byte("g"), 1000)
	goodID := index.Hash(good)
	storeBlob(t, r, index.DataBlob, goodID, good)
	bad := index.Hash([]byte("true"))
	storeBlob(t, r, index.DataBlob, bad, []byte("evil"))
	small := []byte("small")
	smallID := index.Hash(small)
	storeBlob(t, r, index.DataBlob, smallID, small)
	tree := storeTree(t, r,
		Node{Name: "broken", Type: TypeFile, Mode: 0o100644, Size: 1004,
			Content: []ChunkRef{{Offset: 0, Length: 1000, ID: goodID}, {Offset: 1000, Length: 4, ID: bad}}},
		Node{Name: "fine", Type: TypeFile, Mode: 0o100644, Size: 5, Content: []ChunkRef{{Offset: 0, Length: 5, ID: smallID}}},
		Node{Name: "link1", Type: TypeFile, Mode: 0o100644, Size: 4, Inode: 9, Dev: 1, Nlink: 2, Content: []ChunkRef{{Offset: 0, Length: 4, ID: bad}}},
		Node{Name: "link2", Type: TypeFile, Mode: 0o100644, Size: 4, Inode: 9, Dev: 1, Nlink: 2, Content: []ChunkRef{{Offset: 0, Length: 4, ID: bad}}},
	)
	res, err := r.Restore(context.Background(), oneSourceSnapshot(tree, 0o40755, 0), nil, t.TempDir(), RestoreOptions{Workers: 1})
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("restore: %v, want ErrCorrupt", err)
	}
	if res.Files != 1 || res.Bytes != int64(len(small)) || len(res.Failed) != 3 {
		t.Errorf("restored %d files, %d bytes, failed %q; want 1 file (fine), %d bytes, 3 failed",
			res.Files, res.Bytes, res.Failed, len(small))
	}
}
