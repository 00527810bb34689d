package snapshot

import (
	"errors"
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
// It opens stored first when keys are given (an encrypted repository:
// stored is sealed, and a changed byte fails there), decodes it as ref's
// codec says into dst (nil: a new buffer; the result may be dst grown)
// and checks that the result hashes to ref.ID (keys.BlobID: keyed in an
// encrypted repository). Bytes that do not are never returned: the error
// is a *blobDamage, which is ErrCorrupt. stored is left as it was (prune
// and repair copy it as stored after this).
func decodeVerified(keys *index.Keys, dec *codec.Decoder, dst []byte, ref index.BlobRef, stored []byte) ([]byte, error) {
	return decodeVerifiedOwned(keys, dec, dst, ref, stored, false)
}

// decodeScratch is decodeVerified for a reader that owns stored and
// drops it afterwards (loadPlain, restore): a sealed blob that is not raw
// is opened in place (index.Keys.OpenBlobInPlace), not into a second
// buffer of its size, which the decoder would then read again; stored is
// left overwritten.
func decodeScratch(keys *index.Keys, dec *codec.Decoder, dst []byte, ref index.BlobRef, stored []byte) ([]byte, error) {
	return decodeVerifiedOwned(keys, dec, dst, ref, stored, true)
}

func decodeVerifiedOwned(keys *index.Keys, dec *codec.Decoder, dst []byte, ref index.BlobRef, stored []byte, scratch bool) ([]byte, error) {
	if keys != nil {
		if codec.ID(ref.Codec) == codec.Raw {
			// Opened straight into dst: it is the decoded result.
			plain, err := keys.OpenBlob(dst[:0], ref.PackEntry, stored)
			if err == nil && len(plain) != int(ref.RawLength) {
				err = fmt.Errorf("%d bytes stored for %d: %w", len(plain), ref.RawLength, ErrCorrupt)
			}
			if err != nil {
				return nil, &blobDamage{ref: ref, decode: err}
			}
			return checkID(keys, plain, ref)
		}
		if scratch {
			opened, err := keys.OpenBlobInPlace(ref.PackEntry, stored)
			if err != nil {
				return nil, &blobDamage{ref: ref, decode: err}
			}
			stored = opened
		} else {
			buf := sealBufs.Get().(*[]byte)
			defer sealBufs.Put(buf)
			opened, err := keys.OpenBlob((*buf)[:0], ref.PackEntry, stored)
			if err != nil {
				return nil, &blobDamage{ref: ref, decode: err}
			}
			*buf, stored = opened, opened
		}
	}
	plain, err := dec.Decode(dst, stored, codec.ID(ref.Codec), int(ref.RawLength))
	if err != nil {
		return plain, &blobDamage{ref: ref, decode: err}
	}
	return checkID(keys, plain, ref)
}

// checkID returns plain if it hashes to ref's id, else a *blobDamage.
func checkID(keys *index.Keys, plain []byte, ref index.BlobRef) ([]byte, error) {
	if keys.BlobID(plain) != ref.ID {
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
	if errors.Is(e.decode, index.ErrNotAuthentic) {
		return "fails authentication (its sealed bytes changed, or were moved from elsewhere)"
	}
	if e.decode != nil {
		return "does not decode: " + e.decode.Error()
	}
	return "fails its hash check"
}

// reason is the short word for check's list of affected files.
func (e *blobDamage) reason() string {
	if errors.Is(e.decode, index.ErrNotAuthentic) {
		return "not authentic"
	}
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
