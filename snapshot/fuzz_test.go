package snapshot

import (
	"bytes"
	"testing"

	"citadelfs/index"
)

// FuzzDecodeTree: tree blobs come from disk; decoding arbitrary bytes must
// fail cleanly, and whatever decodes must re-encode to the same bytes
// (the encoding is canonical, which dedup of trees relies on).
func FuzzDecodeTree(f *testing.F) {
	t := &Tree{Nodes: []Node{
		{Name: "a", Type: TypeFile, Mode: 0o100644, Size: 10, Content: []ChunkRef{{0, 10, index.Hash([]byte("x"))}},
			Xattrs: []Xattr{{"user.x", []byte("v")}}},
		{Name: "d", Type: TypeDir, Mode: 0o40755, Subtree: index.Hash([]byte("t"))},
		{Name: "l", Type: TypeSymlink, Mode: 0o120777, Target: "a"},
	}}
	f.Add(t.Encode())
	f.Add([]byte("CTRE\x01\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		tr, err := DecodeTree(b)
		if err != nil {
			return
		}
		once := tr.Encode()
		tr2, err := DecodeTree(once)
		if err != nil {
			t.Fatalf("re-encoded tree does not decode: %v", err)
		}
		if !bytes.Equal(tr2.Encode(), once) {
			t.Fatalf("encode/decode round trip changed the tree")
		}
	})
}

// FuzzDecodeManifest: manifests are JSON read from disk.
func FuzzDecodeManifest(f *testing.F) {
	f.Add([]byte(`{"version":1,"sources":[{"label":"m","tree":"` + index.Hash(nil).String() + `"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeManifest(b)
		if err == nil && len(m.Sources) == 0 {
			t.Fatal("manifest without sources accepted")
		}
	})
}
