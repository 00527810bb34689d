package index

import (
	"bytes"
	"testing"
)

// FuzzDecodeTrailer feeds arbitrary pack files to the trailer decoder: it
// must return entries that lie inside the file or an error, never panic.
func FuzzDecodeTrailer(f *testing.F) {
	// A valid pack as the seed.
	dir := f.TempDir()
	pw := &PackWriter{dir: dir}
	_ = pw
	var buf bytes.Buffer
	buf.WriteString(packMagic)
	buf.Write([]byte{1, 0, 0, 0, 0, 0, 0, 0})
	buf.WriteString("blobdata")
	tr := encodeTrailer([]PackEntry{{Type: DataBlob, ID: Hash([]byte("blobdata")), Offset: headerSize, Length: 8, RawLength: 8}})
	buf.Write(tr)
	var foot [footerSize]byte
	foot[0] = byte(len(tr))
	c := crcTable
	_ = c
	f.Add(buf.Bytes())
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
