package index

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
	"testing"
	"time"
)

// newSealedStore is an encrypted repository (format version 2) in a
// LocalStore standing in for the bucket, and its keys.
func newSealedStore(t *testing.T) (Store, *Keys) {
	t.Helper()
	s := NewLocalStore(t.TempDir(), 8)
	t.Cleanup(func() { s.Close() })
	if _, err := InitStoreWith(s, "fake://sealed", InitOptions{Chunker: ChunkerParams{Min: 1, Avg: 2, Max: 4}, Encryption: EncryptionAESGCM}); err != nil {
		t.Fatal(err)
	}
	master, err := NewMasterKey()
	if err != nil {
		t.Fatal(err)
	}
	k, err := KeysFromMaster(master)
	if err != nil {
		t.Fatal(err)
	}
	return s, k
}

func openSealed(t *testing.T, s Store, k *Keys) *Repo {
	t.Helper()
	r, err := OpenStore(s, "fake://sealed", Options{Keys: k, CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// sealedPack writes one pack of blobs (stored raw: codec 0) sealed under
// r's keys and commits it.
func sealedPack(t *testing.T, r *Repo, t0 BlobType, blobs ...[]byte) ID {
	t.Helper()
	pw, err := r.NewPackWriter()
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range blobs {
		if err := pw.AddEncoded(t0, 0, r.Keys.BlobID(b), b, len(b)); err != nil {
			t.Fatal(err)
		}
	}
	id, es, err := pw.Finish()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.CommitPack(id, es, pw.Size()); err != nil {
		t.Fatal(err)
	}
	return id
}

// readBlob reads and opens one blob as the snapshot package does.
func readBlob(r *Repo, id ID) ([]byte, error) {
	ref, err := r.Lookup(id)
	if err != nil {
		return nil, err
	}
	stored, err := r.ReadStored(ref, nil)
	if err != nil {
		return nil, err
	}
	return r.Keys.OpenBlob(nil, ref.PackEntry, stored)
}

func storedPack(t *testing.T, s Store, id ID) []byte {
	t.Helper()
	size, err := s.Stat(PackName(id))
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.ReadRange(PackName(id), 0, int(size), nil)
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), b...)
}

func idBytes(id ID) []byte { return id[:] }

func putObject(t *testing.T, s Store, name string, b []byte) {
	t.Helper()
	if err := s.Delete(name); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(name, b); err != nil {
		t.Fatal(err)
	}
}

// An encrypted repository's pack is version 2: its blobs and its trailer
// are sealed, so none of the plain bytes, ids (keyed or plain), types or
// lengths is in it, and each blob still reads back with one ranged read.
func TestSealedPackHoldsNoPlaintext(t *testing.T) {
	s, k := newSealedStore(t)
	r := openSealed(t, s, k)
	a := bytes.Repeat([]byte("model weights A "), 100)
	b := []byte("a config file with a secret in it")
	pack := sealedPack(t, r, DataBlob, a, b)
	raw := storedPack(t, s, pack)
	if raw[8] != packVersionSealed {
		t.Fatalf("pack version %d, want %d", raw[8], packVersionSealed)
	}
	for name, needle := range map[string][]byte{
		"blob a": a[:32], "blob b": b, "keyed id": idBytes(k.BlobID(b)), "plain id": idBytes(Hash(b)),
		"keyed id hex": []byte(k.BlobID(b).String()), "plain id hex": []byte(Hash(a).String()),
	} {
		if bytes.Contains(raw, needle) {
			t.Errorf("the pack holds the %s", name)
		}
	}
	for _, want := range [][]byte{a, b} {
		got, err := readBlob(r, k.BlobID(want))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("read back: %q, %v", got, err)
		}
	}
	es, size, err := r.ReadPackTrailer(pack)
	if err != nil || len(es) != 2 || size != int64(len(raw)) {
		t.Fatalf("trailer: %v, %d, %v", es, size, err)
	}
	if es[0].Length != uint32(len(a)+SealOverhead) || es[0].RawLength != uint32(len(a)) || es[1].Offset != headerSize+uint64(len(a)+SealOverhead) {
		t.Fatalf("entries: %+v", es)
	}
	// The footer tells the count, nothing else.
	if tlen := int(uint32(raw[len(raw)-16]) | uint32(raw[len(raw)-15])<<8); tlen != 2*entrySize+SealOverhead {
		t.Fatalf("sealed trailer of %d bytes", tlen)
	}
}

// Every byte of a sealed pack is covered: a flip anywhere (header,
// either blob, the trailer, the footer) is ErrCorrupt from the trailer
// read or from opening the blob, never other bytes.
func TestSealedPackEveryByteFlipDetected(t *testing.T) {
	s, k := newSealedStore(t)
	r := openSealed(t, s, k)
	a, b := []byte("first blob of the pack"), []byte("second blob, a little longer")
	pack := sealedPack(t, r, DataBlob, a, b)
	good := storedPack(t, s, pack)
	for i := range good {
		bad := append([]byte(nil), good...)
		bad[i] ^= 0x10
		putObject(t, s, PackName(pack), bad)
		err := func() error {
			es, _, err := r.ReadPackTrailer(pack)
			if err != nil {
				return err
			}
			for j, want := range [][]byte{a, b} {
				got, err := readBlob(r, k.BlobID(want))
				if err != nil {
					return err
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("byte %d flipped: blob %d read back as other bytes", i, j)
				}
				_ = es
			}
			return nil
		}()
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("byte %d of %d flipped: %v, want ErrCorrupt", i, len(good), err)
		}
	}
}

// A sealed trailer changed by someone who also fixes its CRC (the CRC is
// no secret) still fails: the CRC only makes the plainer message.
func TestSealedTrailerWithFixedCRCFails(t *testing.T) {
	s, k := newSealedStore(t)
	r := openSealed(t, s, k)
	pack := sealedPack(t, r, DataBlob, []byte("some blob"))
	raw := storedPack(t, s, pack)
	tlen := int(binary.LittleEndian.Uint32(raw[len(raw)-footerSize:]))
	trailer := raw[len(raw)-footerSize-tlen : len(raw)-footerSize]
	trailer[SealOverhead/2] ^= 4
	binary.LittleEndian.PutUint32(raw[len(raw)-footerSize+4:], crc32.Checksum(trailer, crcTable))
	putObject(t, s, PackName(pack), raw)
	if _, err := DecodeTrailerWith(bytes.NewReader(raw), int64(len(raw)), k); !errors.Is(err, ErrNotAuthentic) {
		t.Fatalf("a changed trailer with its CRC fixed: %v", err)
	}
}

// A sealed blob put in another blob's place (same length, so every
// offset still fits) fails to open: it is bound to its own id.
func TestSealedBlobSwappedFails(t *testing.T) {
	s, k := newSealedStore(t)
	r := openSealed(t, s, k)
	a, b := []byte("blob number one"), []byte("blob number two")
	pack := sealedPack(t, r, DataBlob, a, b)
	raw := storedPack(t, s, pack)
	n := len(a) + SealOverhead
	swapped := append([]byte(nil), raw[:headerSize]...)
	swapped = append(swapped, raw[headerSize+n:headerSize+2*n]...)
	swapped = append(swapped, raw[headerSize:headerSize+n]...)
	swapped = append(swapped, raw[headerSize+2*n:]...)
	putObject(t, s, PackName(pack), swapped)
	if _, _, err := r.ReadPackTrailer(pack); err != nil {
		t.Fatalf("the trailer is untouched: %v", err)
	}
	for _, want := range [][]byte{a, b} {
		if got, err := readBlob(r, k.BlobID(want)); !errors.Is(err, ErrNotAuthentic) {
			t.Fatalf("a swapped blob read as %q, %v", got, err)
		}
	}
	// A sealed trailer moved onto another pack does not open there.
	other := storedPack(t, s, sealedPack(t, r, DataBlob, []byte("blob number six"), []byte("blob number ten")))
	tail := footerSize + 2*entrySize + SealOverhead
	moved := append(append([]byte(nil), raw[:len(raw)-tail]...), other[len(other)-tail:]...)
	putObject(t, s, PackName(pack), moved)
	if _, _, err := r.ReadPackTrailer(pack); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "hash to the pack's name") {
		t.Fatalf("another pack's trailer: %v", err)
	}
}

// A pack in the clear in an encrypted repository was not written by it
// (someone with write access to the bucket planted it): refused, not
// read. A sealed pack in a repository in the clear is refused too.
func TestPackVersionMustMatchRepository(t *testing.T) {
	s, k := newSealedStore(t)
	r := openSealed(t, s, k)
	pw, err := NewStorePackWriter(s)
	if err != nil {
		t.Fatal(err)
	}
	plain := []byte("planted")
	pw.Add(DataBlob, 0, k.BlobID(plain), plain, len(plain))
	id, _, err := pw.Finish()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.ReadPackTrailer(id); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "version 1, want 2") {
		t.Fatalf("a clear pack in an encrypted repository: %v", err)
	}
	sealed := sealedPack(t, r, DataBlob, plain)
	if _, _, err := ReadStoreTrailer(s, sealed); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "version 2, want 1") {
		t.Fatalf("a sealed pack read without keys: %v", err)
	}
	// Adopting orphans leaves the planted pack alone.
	if err := r.KV.Delete(append([]byte{prefixPack}, sealed[:]...), true); err != nil {
		t.Fatal(err)
	}
	n, err := r.AdoptOrphanPacks()
	if err != nil || n != 1 {
		t.Fatalf("adopted %d, %v; want the one sealed pack", n, err)
	}
	if ok, _ := r.IsIndexedPack(id); ok {
		t.Fatal("the planted clear pack was adopted")
	}
}

// Index objects and snapshot objects are sealed: a second host with the
// same keys syncs from them; a flipped byte in either is damage, named,
// and never applied (the packs are then read from their trailers).
func TestSealedIndexAndSnapshotObjects(t *testing.T) {
	s, k := newSealedStore(t)
	r := openSealed(t, s, k)
	var ids []ID
	for i := range 5 {
		b := []byte(fmt.Sprintf("chunk %d of the model", i))
		sealedPack(t, r, DataBlob, b)
		ids = append(ids, k.BlobID(b))
	}
	m := []byte(`{"host":"gpu-node-7","sources":[{"path":"/srv/models/secret-model"}]}`)
	mid := k.BlobID(m)
	sealedPack(t, r, SnapshotBlob, m)
	if err := r.PutSnapshot(mid, m); err != nil {
		t.Fatal(err)
	}
	r.Close()

	var objs []string
	s.List("", func(name string, size int64) error {
		if strings.HasPrefix(name, indexObjsPrefix) || strings.HasPrefix(name, snapshotsPrefix) {
			objs = append(objs, name)
		}
		b, _ := s.ReadRange(name, 0, int(size), nil)
		for _, id := range append(ids, mid) {
			if bytes.Contains(b, id[:8]) || bytes.Contains(b, []byte(hex.EncodeToString(id[:8]))) && !strings.HasSuffix(name, id.String()) {
				t.Errorf("%s holds blob id %s", name, id.Short())
			}
		}
		if bytes.Contains(b, []byte("gpu-node-7")) || bytes.Contains(b, []byte("secret-model")) {
			t.Errorf("%s holds the manifest in the clear", name)
		}
		return nil
	})
	if len(objs) != 2 {
		t.Fatalf("objects %v, want one index object and one snapshot", objs)
	}

	var fs *FaultyStore
	r2, err := OpenStore(s, "fake://sealed", Options{Keys: k, CacheDir: t.TempDir(),
		WrapStore: func(st Store) Store { fs = NewFaultyStore(st); return fs }})
	if err != nil {
		t.Fatal(err)
	}
	if got := r2.LastSync; got.FromIndexObjects != 6 || got.SnapshotsAdded != 1 || len(got.Damaged) != 0 {
		t.Fatalf("second host's sync: %+v", got)
	}
	if got, err := r2.SnapshotManifest(mid); err != nil || !bytes.Equal(got, m) {
		t.Fatalf("snapshot: %q, %v", got, err)
	}
	r2.Close()

	for _, name := range objs {
		size, _ := s.Stat(name)
		good, _ := s.ReadRange(name, 0, int(size), nil)
		good = append([]byte(nil), good...)
		for _, i := range []int{0, 23, 24, len(good) / 2, len(good) - 1} {
			bad := append([]byte(nil), good...)
			bad[i] ^= 1
			putObject(t, s, name, bad)
			r3 := openSealed(t, s, k)
			got := r3.LastSync
			if len(got.Damaged) != 1 || !strings.Contains(got.Damaged[0], "failed authentication") {
				t.Fatalf("%s byte %d flipped: %+v", name, i, got)
			}
			if strings.HasPrefix(name, indexObjsPrefix) {
				// The packs come from their (sealed) trailers instead.
				if got.FromIndexObjects != 0 || got.PacksAdded != 6 || got.SnapshotsAdded != 1 {
					t.Fatalf("index object flipped: %+v", got)
				}
			} else if got.SnapshotsAdded != 0 {
				t.Fatalf("a flipped snapshot object was added: %+v", got)
			}
			r3.Close()
		}
		putObject(t, s, name, good)
	}
	// A snapshot object under another snapshot's name does not open.
	other := snapshotName(ids[0])
	size, _ := s.Stat(snapshotName(mid))
	b, _ := s.ReadRange(snapshotName(mid), 0, int(size), nil)
	if err := s.Put(other, append([]byte(nil), b...)); err != nil {
		t.Fatal(err)
	}
	r4 := openSealed(t, s, k)
	if got := r4.LastSync; got.SnapshotsAdded != 1 || len(got.Damaged) != 1 {
		t.Fatalf("a renamed snapshot object: %+v", got)
	}
}

// A repository in the clear writes exactly what it did: version 1 packs,
// plain ids, index objects in the clear.
func TestClearRepositoryUnchanged(t *testing.T) {
	s := NewLocalStore(t.TempDir(), 8)
	defer s.Close()
	if _, err := InitStore(s, "fake://clear", ChunkerParams{Min: 1, Avg: 2, Max: 4}, time.Unix(0, 0)); err != nil {
		t.Fatal(err)
	}
	r, err := OpenStore(s, "fake://clear", Options{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b := []byte("plain blob")
	pack := sealedPack(t, r, DataBlob, b)
	raw := storedPack(t, s, pack)
	want := append(append([]byte(packMagic), 1, 0, 0, 0, 0, 0, 0, 0), b...)
	if !bytes.HasPrefix(raw, want) || len(raw) != headerSize+len(b)+entrySize+footerSize {
		t.Fatalf("clear pack: %x", raw)
	}
	if r.Keys.BlobID(b) != Hash(b) {
		t.Fatal("nil keys: the id is not plain BLAKE3")
	}
}
