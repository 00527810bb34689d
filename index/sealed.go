package index

import (
	"encoding/binary"
	"fmt"
)

// The sealed objects of an encrypted repository (format version 2): what
// Keys.Seal is given as additional data for each kind of object, so a
// sealed object moved anywhere else (another blob's place, another
// pack's trailer, another index object's or snapshot's name) fails to
// open instead of being read as the wrong thing. Every one starts with
// its own 8-byte tag, so no two kinds can be confused either.
const (
	adBlob     = "CTDLBLOB" // | type u8 | codec u8 | raw length u32 | id [32]
	adTrailer  = "CTDLTRLR" // | the pack's 16-byte header
	adIndexObj = "CTDLIDXO" // | the object's name (index/<random>)
	adSnapshot = "CTDLSNAP" // | the snapshot id [32]
)

// blobAD is the additional data of a sealed blob: its id, type, codec
// and raw length, everything the trailer (and the index) say about it
// besides where it lies. A blob copied into another pack as stored
// (prune, repair packs) still opens there.
func blobAD(buf *[46]byte, t BlobType, codec uint8, id ID, rawLen uint32) []byte {
	copy(buf[:8], adBlob)
	buf[8] = byte(t)
	buf[9] = codec
	binary.LittleEndian.PutUint32(buf[10:], rawLen)
	copy(buf[14:], id[:])
	return buf[:]
}

// SealBlob appends the stored form of a blob to dst: for an encrypted
// repository its encoded bytes sealed under the data key, bound to its
// id, type, codec and raw length; for nil Keys (in the clear) encoded
// itself, not copied (dst is then unused).
func (k *Keys) SealBlob(dst []byte, t BlobType, codec uint8, id ID, rawLen int, encoded []byte) ([]byte, error) {
	if k == nil {
		return encoded, nil
	}
	var ad [46]byte
	return k.Seal(dst, encoded, blobAD(&ad, t, codec, id, uint32(rawLen)))
}

// OpenBlob appends the encoded bytes of a blob stored as stored to dst
// (nil Keys: stored itself, not copied). A sealed blob that was changed,
// or stored for another id, type, codec or length, is ErrNotAuthentic
// (ErrCorrupt). dst and stored must not overlap.
func (k *Keys) OpenBlob(dst []byte, e PackEntry, stored []byte) ([]byte, error) {
	if k == nil {
		return stored, nil
	}
	var ad [46]byte
	out, err := k.Open(dst, stored, blobAD(&ad, e.Type, e.Codec, e.ID, e.RawLength))
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", e.ID.Short(), err)
	}
	return out, nil
}

// OpenBlobInPlace is OpenBlob with the encoded bytes written over stored
// (Keys.OpenInPlace), for a reader that owns stored and has no further
// use for it; nil Keys return stored as it is.
func (k *Keys) OpenBlobInPlace(e PackEntry, stored []byte) ([]byte, error) {
	if k == nil {
		return stored, nil
	}
	var ad [46]byte
	out, err := k.OpenInPlace(stored, blobAD(&ad, e.Type, e.Codec, e.ID, e.RawLength))
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", e.ID.Short(), err)
	}
	return out, nil
}

// sealObject and openObject seal and open the small objects (index
// objects, snapshot objects) under an additional data of tag and name.
func (k *Keys) sealObject(tag string, name []byte, plain []byte) ([]byte, error) {
	ad := append([]byte(tag), name...)
	return k.Seal(make([]byte, 0, len(plain)+SealOverhead), plain, ad)
}

func (k *Keys) openObject(tag string, name []byte, sealed []byte) ([]byte, error) {
	ad := append([]byte(tag), name...)
	return k.Open(make([]byte, 0, max(len(sealed)-SealOverhead, 0)), sealed, ad)
}

// storedBlobMax is the largest stored blob a pack of this repository
// holds: MaxBlobSize, plus the salt and tag when it is sealed.
func storedBlobMax(sealed bool) uint32 {
	if sealed {
		return MaxBlobSize + SealOverhead
	}
	return MaxBlobSize
}
