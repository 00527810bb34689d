package snapshot

import (
	"fmt"

	"citadelfs/index"
	"citadelfs/snapshot/codec"
)

// decodeVerified is the one decode-and-verify of a blob's stored bytes,
// which every path that reads a blob back goes through: reads (loadPlain,
// for files, trees and manifests), check --read-data and VerifyPacks
// (verifyPack), prune and repair packs before they copy a blob as stored
// (verifyStored), and repair index choosing which copy of a blob to serve
// (verifyStoredBlob). The stored bytes come through the index
// (index.Repo.ReadStored or a pack trailer read), never from a pack file
// opened here.
//
// It decodes stored as ref's codec says into dst (nil: a new buffer; the
// result may be dst grown) and checks that the result hashes to ref.ID.
// Bytes that do not are never returned: the error is a *blobDamage, which
// is ErrCorrupt.
func decodeVerified(dec *codec.Decoder, dst []byte, ref index.BlobRef, stored []byte) ([]byte, error) {
	plain, err := dec.Decode(dst, stored, codec.ID(ref.Codec), int(ref.RawLength))
	if err != nil {
		return plain, &blobDamage{ref: ref, decode: err}
	}
	if index.Hash(plain) != ref.ID {
		return plain, &blobDamage{ref: ref}
	}
	return plain, nil
}

// blobDamage is a stored blob that does not decode (decode is why) or
// decodes to bytes of another hash (decode is nil).
type blobDamage struct {
	ref    index.BlobRef
	decode error
}

// what says what is wrong, as check reports it and quarantine records it.
func (e *blobDamage) what() string {
	if e.decode != nil {
		return "does not decode: " + e.decode.Error()
	}
	return "fails its hash check"
}

// reason is the short word for check's list of affected files.
func (e *blobDamage) reason() string {
	if e.decode != nil {
		return "does not decode"
	}
	return "hash mismatch"
}

func (e *blobDamage) Error() string {
	return fmt.Sprintf("chunk %s in pack %s %s: %v", e.ref.ID.Short(), e.ref.Pack.Short(), e.what(), ErrCorrupt)
}

func (e *blobDamage) Is(target error) bool { return target == ErrCorrupt }
func (e *blobDamage) Unwrap() error        { return e.decode }
