package index

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// BlobRef is where a blob is stored.
type BlobRef struct {
	ID ID
	PackEntry
	Pack ID
}

const blobRefSize = 32 + 8 + 4 + 4 + 1 + 1

func encodeBlobRef(pack ID, e PackEntry) []byte {
	v := make([]byte, blobRefSize)
	copy(v, pack[:])
	binary.LittleEndian.PutUint64(v[32:], e.Offset)
	binary.LittleEndian.PutUint32(v[40:], e.Length)
	binary.LittleEndian.PutUint32(v[44:], e.RawLength)
	v[48] = e.Codec
	v[49] = byte(e.Type)
	return v
}

// DecodeBlobRef parses an index value; it is fuzzed since it is read from disk.
func DecodeBlobRef(id ID, v []byte) (BlobRef, error) {
	if len(v) != blobRefSize {
		return BlobRef{}, fmt.Errorf("index: blob %s: index entry of %d bytes: %w", id.Short(), len(v), ErrCorrupt)
	}
	var r BlobRef
	r.ID = id
	copy(r.Pack[:], v)
	r.Offset = binary.LittleEndian.Uint64(v[32:])
	r.Length = binary.LittleEndian.Uint32(v[40:])
	r.RawLength = binary.LittleEndian.Uint32(v[44:])
	r.Codec = v[48]
	r.Type = BlobType(v[49])
	r.PackEntry.ID = id
	if r.Type > SnapshotBlob || r.Length > MaxBlobSize || r.RawLength > MaxBlobSize {
		return BlobRef{}, fmt.Errorf("index: blob %s: bad index entry: %w", id.Short(), ErrCorrupt)
	}
	return r, nil
}

// ErrBlobMissing: the index has no entry for a blob.
var ErrBlobMissing = errors.New("blob not in index")

// Lookup finds a blob.
func (r *Repo) Lookup(id ID) (BlobRef, error) {
	v, err := r.KV.Get(blobKey(id))
	if errors.Is(err, ErrNotFound) {
		return BlobRef{}, fmt.Errorf("index: blob %s: %w", id.Short(), ErrBlobMissing)
	}
	if err != nil {
		return BlobRef{}, err
	}
	return DecodeBlobRef(id, v)
}

// HasBlob reports whether the index knows blob id.
func (r *Repo) HasBlob(id ID) (bool, error) { return r.KV.Has(blobKey(id)) }
