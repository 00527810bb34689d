package index

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzDecodeTrailer feeds arbitrary pack files to the trailer decoder: it
// must return entries that lie inside the file or an error, never panic.
func FuzzDecodeTrailer(f *testing.F) {
	// A real pack, written by the PackWriter, as the seed.
	dir := f.TempDir()
	if err := os.Mkdir(filepath.Join(dir, packsDir), 0o700); err != nil {
		f.Fatal(err)
	}
	pw, err := NewPackWriter(dir)
	if err != nil {
		f.Fatal(err)
	}
	pw.Add(DataBlob, 0, Hash([]byte("blobdata")), []byte("blobdata"), 8)
	id, _, err := pw.Finish()
	if err != nil {
		f.Fatal(err)
	}
	valid, err := os.ReadFile(PackPath(dir, id))
	if err != nil {
		f.Fatal(err)
	}
	if _, err := DecodeTrailer(bytes.NewReader(valid), int64(len(valid))); err != nil {
		f.Fatalf("seed pack does not decode: %v", err)
	}
	f.Add(valid)
	f.Add([]byte(packMagic + "\x01\x00\x00\x00\x00\x00\x00\x00" + footerMagic))
	f.Fuzz(func(t *testing.T, data []byte) {
		es, err := DecodeTrailer(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		for _, e := range es {
			if e.Offset+uint64(e.Length) > uint64(len(data)) {
				t.Fatalf("entry outside the file: %+v", e)
			}
		}
	})
}

// FuzzDecodeBlobRef checks the index value decoder.
func FuzzDecodeBlobRef(f *testing.F) {
	f.Add(encodeBlobRef(ID{1}, PackEntry{Offset: 16, Length: 5, RawLength: 5}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, v []byte) {
		ref, err := DecodeBlobRef(ID{}, v)
		if err == nil && (ref.Length > MaxBlobSize || ref.Type > SnapshotBlob) {
			t.Fatalf("accepted out-of-range entry %+v", ref)
		}
	})
}
