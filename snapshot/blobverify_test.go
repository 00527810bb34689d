package snapshot

import (
	"bytes"
	"context"
	"errors"
	"os"
	"sort"
	"strings"
	"testing"

	"citadelfs/index"
	"citadelfs/snapshot/codec"
)

func TestDecodeVerified(t *testing.T) {
	plain := bytes.Repeat([]byte("citadel "), 512)
	enc := codec.NewEncoder(codec.Options{})
	stored, id, err := enc.Encode(nil, plain)
	if err != nil {
		t.Fatal(err)
	}
	ref := index.BlobRef{ID: index.Hash(plain), PackEntry: index.PackEntry{Codec: uint8(id), RawLength: uint32(len(plain))}}
	dec := codec.NewDecoder()
	if got, err := decodeVerified(nil, dec, nil, ref, stored); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("sound blob: %v", err)
	}
	other := ref
	other.ID = index.Hash([]byte("another blob"))
	_, err = decodeVerified(nil, dec, nil, other, stored)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "fails its hash check") {
		t.Errorf("wrong hash: %v", err)
	}
	_, err = decodeVerified(nil, dec, nil, ref, []byte("garbage that is no zstd frame"))
	if !errors.Is(err, ErrCorrupt) || !errors.Is(err, codec.ErrCorrupt) || !strings.Contains(err.Error(), "does not decode") {
		t.Errorf("undecodable: %v", err)
	}
}

// One damaged chunk reads as the same finding on every path that reads
// blobs back (reads, check --read-data, verify after backup, prune's and
// repair's copy check, repair index's choice of copy): they share
// decodeVerified, so none can accept bytes another refuses.
func TestEveryPathRefusesTheSameDamage(t *testing.T) {
	ctx := context.Background()
	r, dir := newRepo(t)
	snapshotRandomFile(t, r, "f.bin", 2<<20, 7) // random bytes: stored raw
	packs, _ := index.ListPackFiles(dir)
	sort.Slice(packs, func(i, j int) bool { return packs[i].Size > packs[j].Size })
	data := packs[0].ID
	// The first blob of the data pack; flip a byte inside it.
	entries, _, err := r.idx.ReadPackTrailer(data)
	if err != nil || len(entries) == 0 {
		t.Fatal(err)
	}
	e := entries[0]
	if codec.ID(e.Codec) != codec.Raw {
		t.Fatalf("random data stored as %v", codec.ID(e.Codec))
	}
	p := index.PackPath(dir, data)
	b, _ := os.ReadFile(p)
	b[e.Offset+uint64(e.Length/2)] ^= 0x40
	os.WriteFile(p, b, 0o600)
	r.cache = newBlobCache(64 << 20)
	ref := index.BlobRef{ID: e.ID, PackEntry: e, Pack: data}
	want := "fails its hash check"

	if _, err := r.LoadBlob(ctx, e.ID, false); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), want) {
		t.Errorf("read: %v", err)
	}
	stored, err := r.idx.ReadStored(ref, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.verifyStored(ref, stored); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), want) {
		t.Errorf("prune/repair packs: %v", err)
	}
	if err := verifyStoredBlob(ref, stored); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), want) {
		t.Errorf("repair index: %v", err)
	}
	vr, err := r.VerifyPacks(ctx, []index.ID{data})
	if err != nil || !strings.Contains(strings.Join(vr.Problems, "\n"), e.ID.Short()+" "+want) {
		t.Errorf("verify after backup: %v %q", err, vr.Problems)
	}
	cr, err := r.Check(ctx, CheckOptions{ReadData: true})
	if err != nil || !strings.Contains(strings.Join(cr.Problems, "\n"), e.ID.Short()+" "+want) {
		t.Errorf("check --read-data: %v %q", err, cr.Problems)
	}
}
