package index

import (
	"bytes"
	"errors"
	"testing"

	"lukechampine.com/blake3"
)

func testKeys(t testing.TB) *Keys {
	t.Helper()
	m, err := NewMasterKey()
	if err != nil {
		t.Fatal(err)
	}
	k, err := KeysFromMaster(m)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSealOpenRoundTrip(t *testing.T) {
	k := testKeys(t)
	plain := bytes.Repeat([]byte("weights "), 1000)
	ad := []byte("blob id")
	sealed, err := k.Seal([]byte("prefix"), plain, ad)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(sealed, []byte("prefix")) || len(sealed) != len("prefix")+len(plain)+SealOverhead {
		t.Fatalf("sealed is %d bytes, want prefix + %d", len(sealed), len(plain)+SealOverhead)
	}
	body := sealed[len("prefix"):]
	if bytes.Contains(body, []byte("weights")) {
		t.Fatal("the sealed bytes hold the plain text")
	}
	got, err := k.Open(nil, body, ad)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("open: %v, equal %v", err, bytes.Equal(got, plain))
	}
	// In place: the same plain bytes, inside the sealed buffer.
	inPlace := append([]byte(nil), body...)
	got, err = k.OpenInPlace(inPlace, ad)
	if err != nil || !bytes.Equal(got, plain) || &got[0] != &inPlace[sealSaltSize] {
		t.Fatalf("open in place: %v, equal %v", err, bytes.Equal(got, plain))
	}
	// Two seals of the same bytes differ (a random salt each).
	again, _ := k.Seal(nil, plain, ad)
	if bytes.Equal(again, body) {
		t.Fatal("two seals of the same bytes are equal")
	}
}

// Every byte of a sealed object is authenticated: a flip anywhere, a
// cut, another ad or another key is ErrNotAuthentic (and so ErrCorrupt).
func TestOpenRefusesTampering(t *testing.T) {
	k := testKeys(t)
	plain := []byte("a tree: names, modes, sizes")
	sealed, _ := k.Seal(nil, plain, []byte("ad"))
	for i := range sealed {
		bad := append([]byte(nil), sealed...)
		bad[i] ^= 0x01
		if _, err := k.Open(nil, bad, []byte("ad")); !errors.Is(err, ErrNotAuthentic) || !errors.Is(err, ErrCorrupt) {
			t.Fatalf("flip at byte %d: %v", i, err)
		}
		if _, err := k.OpenInPlace(bad, []byte("ad")); !errors.Is(err, ErrNotAuthentic) || !errors.Is(err, ErrCorrupt) {
			t.Fatalf("flip at byte %d, opened in place: %v", i, err)
		}
	}
	for _, n := range []int{0, 1, SealOverhead - 1, SealOverhead, len(sealed) - 1} {
		if _, err := k.Open(nil, sealed[:n], []byte("ad")); !errors.Is(err, ErrNotAuthentic) {
			t.Fatalf("cut to %d bytes: %v", n, err)
		}
		cut := append([]byte(nil), sealed[:n]...)
		if _, err := k.OpenInPlace(cut, []byte("ad")); !errors.Is(err, ErrNotAuthentic) {
			t.Fatalf("cut to %d bytes, opened in place: %v", n, err)
		}
	}
	if _, err := k.Open(nil, sealed, []byte("other")); !errors.Is(err, ErrNotAuthentic) {
		t.Fatalf("another ad: %v", err)
	}
	if _, err := testKeys(t).Open(nil, sealed, []byte("ad")); !errors.Is(err, ErrNotAuthentic) {
		t.Fatalf("another key: %v", err)
	}
}

// Ids are keyed: not the plain BLAKE3 someone holding the file computes,
// the same for the same key (dedup across hosts that share the key),
// different under another key; nil Keys keep format 1's plain BLAKE3.
func TestBlobIDIsKeyed(t *testing.T) {
	b := []byte("a chunk of a known model")
	var nilKeys *Keys
	if nilKeys.BlobID(b) != ID(blake3.Sum256(b)) || nilKeys.Encrypted() {
		t.Fatal("nil Keys: want plain BLAKE3")
	}
	m, _ := NewMasterKey()
	k1, _ := KeysFromMaster(m)
	k2, _ := KeysFromMaster(m)
	if k1.BlobID(b) != k2.BlobID(b) || k1.GearSeed() != k2.GearSeed() {
		t.Fatal("the same master key derives different ids or seeds")
	}
	if k1.BlobID(b) == Hash(b) {
		t.Fatal("a keyed id equals the plain BLAKE3")
	}
	other := testKeys(t)
	if other.BlobID(b) == k1.BlobID(b) || other.GearSeed() == k1.GearSeed() {
		t.Fatal("another master key derives the same id or seed")
	}
	if _, err := KeysFromMaster(m[:31]); err == nil {
		t.Fatal("a 31-byte master key was accepted")
	}
}

// Derived keys never equal the master key or each other, and Master
// returns a copy.
func TestDerivedKeysAreDistinct(t *testing.T) {
	k := testKeys(t)
	if bytes.Equal(k.dataKey[:], k.idKey[:]) || bytes.Equal(k.dataKey[:], k.master[:]) || bytes.Equal(k.idKey[:], k.master[:]) {
		t.Fatal("two keys are equal")
	}
	m := k.Master()
	m[0] ^= 1
	if m[0] == k.master[0] {
		t.Fatal("Master returned the key itself")
	}
}
