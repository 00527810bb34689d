package snapshot

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"citadelfs/index"
	"citadelfs/internal/testutil"
	"citadelfs/snapshot/chunker"
)

// initSealed makes an encrypted repository (store layout) in a local
// directory, as init does for an encrypted local repository, and returns
// the directory and its keys. Key slots are not needed here: the keys are
// given to Open directly (Options.Keys).
func initSealed(t *testing.T) (string, *index.Keys) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "repo")
	s := index.NewLocalStore(dir, 1)
	defer s.Close()
	p := chunker.Default
	if _, err := index.InitStoreWith(s, dir, index.InitOptions{Chunker: index.ChunkerParams{Min: p.Min, Avg: p.Avg, Max: p.Max},
		Encryption: index.EncryptionAESGCM}); err != nil {
		t.Fatal(err)
	}
	master, err := index.NewMasterKey()
	if err != nil {
		t.Fatal(err)
	}
	k, err := index.KeysFromMaster(master)
	if err != nil {
		t.Fatal(err)
	}
	return dir, k
}

// openSealed opens the encrypted repository at dir with its own cache
// (one per host).
func openSealed(t *testing.T, dir string, k *index.Keys, cache string) *Repository {
	t.Helper()
	s := index.NewLocalStore(dir, 4)
	r, err := OpenStore(s, dir, Options{Keys: k, CacheDir: cache, PackSize: 1 << 20})
	if err != nil {
		s.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); s.Close() })
	return r
}

// repoBytes returns every file under dir, by path.
func repoBytes(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		if d.Type().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			out[p] = b
		}
		return nil
	})
	return out
}

// An encrypted repository round-trips a tree with every kind of entry,
// checks clean, and holds none of its names, contents or plain chunk
// hashes: the packs, trees, manifests, index objects and snapshot
// objects are all sealed, and ids are keyed.
func TestEncryptedSnapshotHoldsNoPlaintext(t *testing.T) {
	testutil.NeedRoot(t, "to chown")
	ctx := context.Background()
	src := t.TempDir()
	makeSource(t, src)
	dir, k := initSealed(t)
	r := openSealed(t, dir, k, t.TempDir())
	res, err := r.TakeSnapshot(ctx, Request{Sources: []SourceSpec{{Label: "data", Path: src}}})
	if err != nil || len(res.Warnings) != 0 {
		t.Fatalf("snapshot: %v %v", err, res.Warnings)
	}
	out := t.TempDir()
	if _, err := r.Restore(ctx, res.Snapshot, nil, out, RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	compareTrees(t, src, filepath.Join(out, "data"))
	rep, err := r.Check(ctx, CheckOptions{ReadData: true})
	if err != nil || !rep.OK() {
		t.Fatalf("check: %v %v", err, rep.Problems)
	}

	// What an attacker with the bucket (or the disk) would look for.
	big, _ := os.ReadFile(filepath.Join(src, "big.bin"))
	tree, err := r.LoadTree(ctx, res.Snapshot.Sources[0].Tree)
	if err != nil {
		t.Fatal(err)
	}
	var chunk ChunkRef
	for _, n := range tree.Nodes {
		if n.Name == "big.bin" {
			chunk = n.Content[0]
		}
	}
	plainID := index.Hash(big[chunk.Offset : chunk.Offset+chunk.Length])
	needles := map[string][]byte{
		"file name big.bin": []byte("big.bin"), "file name secret.env": []byte("secret.env"), "file name text.yaml": []byte("text.yaml"),
		"the source path": []byte(src), "file content": big[1000:1064], "yaml content": []byte("key: value\nkey: value"),
		"plain chunk hash": plainID[:], "plain chunk hash (hex)": []byte(hex.EncodeToString(plainID[:])),
		"keyed chunk id": chunk.ID[:],
	}
	files := repoBytes(t, dir)
	if len(files) < 4 {
		t.Fatalf("only %d files in the repository", len(files))
	}
	for p, b := range files {
		for what, needle := range needles {
			if bytes.Contains(b, needle) {
				t.Errorf("%s holds the %s", p, what)
			}
		}
	}
	if chunk.ID == plainID {
		t.Fatal("the chunk id is its plain BLAKE3")
	}
}

// The gear table comes from the key: the same file is cut at other
// places than in a repository in the clear (or under another key), so
// chunk sizes cannot fingerprint it.
func TestEncryptedChunkBoundariesFollowTheKey(t *testing.T) {
	ctx := context.Background()
	bounds := func(r *Repository) []int64 {
		src, _, res := snapshotRandomFile(t, r, "f.bin", 12<<20, 9)
		_ = src
		tree, err := r.LoadTree(ctx, res.Snapshot.Sources[0].Tree)
		if err != nil {
			t.Fatal(err)
		}
		var out []int64
		for _, c := range tree.Nodes[0].Content {
			out = append(out, c.Offset)
		}
		return out
	}
	clear, _ := newRepo(t)
	dirA, kA := initSealed(t)
	dirB, kB := initSealed(t)
	a, b, c := bounds(clear), bounds(openSealed(t, dirA, kA, t.TempDir())), bounds(openSealed(t, dirB, kB, t.TempDir()))
	if len(a) < 4 || len(b) < 4 || len(c) < 4 {
		t.Fatalf("too few chunks: %d %d %d", len(a), len(b), len(c))
	}
	if slicesEqual(a, b) || slicesEqual(b, c) {
		t.Fatalf("the same boundaries under another gear table: %v %v %v", a, b, c)
	}
	if kA.GearSeed() == chunker.Default.Seed {
		t.Fatal("the key's gear seed is the default one")
	}
}

func slicesEqual(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// A flipped byte in a sealed blob, a sealed trailer or an index object
// is found (ErrCorrupt, named by check), never read as other bytes.
func TestEncryptedTamperIsCorrupt(t *testing.T) {
	ctx := context.Background()
	dir, k := initSealed(t)
	r := openSealed(t, dir, k, t.TempDir())
	_, data, res := snapshotRandomFile(t, r, "f.bin", 3<<20, 5)
	r.Close()
	packs, err := index.ListStorePacks(index.NewLocalStore(dir, 1))
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(packs, func(i, j int) bool { return packs[i].Size > packs[j].Size })
	path := filepath.Join(dir, index.PackName(packs[0].ID))
	good, _ := os.ReadFile(path)
	for _, where := range []struct {
		name string
		off  int
	}{{"a sealed blob", 16 + 100}, {"the sealed trailer", len(good) - 16 - 60}} {
		bad := append([]byte(nil), good...)
		bad[where.off] ^= 0x01
		if err := os.WriteFile(path, bad, 0o600); err != nil {
			t.Fatal(err)
		}
		r := openSealed(t, dir, k, t.TempDir()) // a fresh host: it reads the trailers too
		out := t.TempDir()
		_, err := r.Restore(ctx, res.Snapshot, nil, out, RestoreOptions{})
		got, _ := os.ReadFile(filepath.Join(out, "d", "f.bin"))
		if err == nil && bytes.Equal(got, data) && where.name != "the sealed trailer" {
			t.Fatalf("%s flipped: restored without an error", where.name)
		}
		if err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%s flipped: %v, want ErrCorrupt", where.name, err)
		}
		if len(got) > 0 && !bytes.Equal(got, data[:min(len(got), len(data))]) {
			t.Fatalf("%s flipped: other bytes restored", where.name)
		}
		rep, err := r.Check(ctx, CheckOptions{ReadData: true})
		if err != nil || rep.OK() {
			t.Fatalf("%s flipped: check passed (%v)", where.name, err)
		}
		// The blob fails authentication; the trailer fails its CRC first
		// (the sealed trailer keeps one, for a plainer message).
		if probs := strings.Join(rep.Problems, "\n"); !strings.Contains(probs, "authentication") && !strings.Contains(probs, "trailer checksum mismatch") {
			t.Fatalf("%s flipped: check says %q", where.name, rep.Problems)
		}
		r.Close()
	}
	if err := os.WriteFile(path, good, 0o600); err != nil {
		t.Fatal(err)
	}
	// An index object: a new host's sync names it and reads the trailers.
	objs, _ := filepath.Glob(filepath.Join(dir, "index", "*"))
	if len(objs) == 0 {
		t.Fatal("no index object")
	}
	b, _ := os.ReadFile(objs[0])
	b[len(b)/2] ^= 0x80
	os.WriteFile(objs[0], b, 0o600)
	r2 := openSealed(t, dir, k, t.TempDir())
	if sync := r2.Index().LastSync; len(sync.Damaged) != 1 || !strings.Contains(sync.Damaged[0], "authentication") || sync.FromIndexObjects != 0 {
		t.Fatalf("a flipped index object: %+v", sync)
	}
	out := t.TempDir()
	if _, err := r2.Restore(ctx, res.Snapshot, nil, out, RestoreOptions{}); err != nil {
		t.Fatalf("restore from the trailers: %v", err)
	}
	if got, _ := os.ReadFile(filepath.Join(out, "d", "f.bin")); !bytes.Equal(got, data) {
		t.Fatal("restored other bytes")
	}
}

// Two hosts with the same repository key deduplicate against each other:
// the second host's snapshot of the same bytes stores no new chunk.
func TestEncryptedTwoHostsDedup(t *testing.T) {
	ctx := context.Background()
	dir, k := initSealed(t)
	a := openSealed(t, dir, k, t.TempDir())
	src, _, first := snapshotRandomFile(t, a, "weights.bin", 6<<20, 11)
	a.Close()
	b := openSealed(t, dir, k, t.TempDir())
	// Another copy of the tree on the second host (other inodes and times).
	src2 := t.TempDir()
	data, _ := os.ReadFile(filepath.Join(src, "weights.bin"))
	os.WriteFile(filepath.Join(src2, "weights.bin"), data, 0o644)
	res, err := b.TakeSnapshot(ctx, Request{Sources: []SourceSpec{{Label: "d", Path: src2}}})
	if err != nil {
		t.Fatal(err)
	}
	st := res.Snapshot.Sources[0].Stats
	if st.ReadBytes != int64(len(data)) || st.NewChunks != 0 || st.NewBytes != 0 {
		t.Fatalf("second host: read %d, %d new chunks, %d new bytes; want every chunk deduplicated", st.ReadBytes, st.NewChunks, st.NewBytes)
	}
	if first.Snapshot.Sources[0].Stats.NewChunks < 4 {
		t.Fatalf("first host stored %d chunks", first.Snapshot.Sources[0].Stats.NewChunks)
	}
	snaps, err := b.Snapshots()
	if err != nil || len(snaps) != 2 {
		t.Fatalf("snapshots: %d, %v", len(snaps), err)
	}
}

// Prune copies live blobs of a partly dead pack as stored, still sealed
// (their additional data names the blob, not the pack): the repacked
// pack opens, checks clean and restores.
func TestEncryptedPruneRepacksSealedBlobs(t *testing.T) {
	ctx := context.Background()
	dir, k := initSealed(t)
	s := index.NewLocalStore(dir, 4)
	defer s.Close()
	r, err := OpenStore(s, dir, Options{Keys: k, CacheDir: t.TempDir(), PackSize: 1 << 20, Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	src := t.TempDir()
	for i := range 40 {
		b := make([]byte, 8<<10)
		fillRandom(b, uint64(100+i))
		if err := os.WriteFile(filepath.Join(src, "f"+string(rune('a'+i%26))+string(rune('a'+i/26))), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	first, err := r.TakeSnapshot(ctx, Request{Sources: []SourceSpec{{Label: "d", Path: src}}})
	if err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(src)
	for _, e := range ents[:20] {
		os.Remove(filepath.Join(src, e.Name()))
	}
	second, err := r.TakeSnapshot(ctx, Request{Sources: []SourceSpec{{Label: "d", Path: src}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Forget(ctx, []index.ID{first.Snapshot.ID}); err != nil {
		t.Fatal(err)
	}
	pr, err := r.PruneWith(ctx, PruneOptions{})
	if err != nil || pr.PacksRepacked == 0 || pr.BlobsDeleted < 20 {
		t.Fatalf("prune: %+v, %v", pr, err)
	}
	rep, err := r.Check(ctx, CheckOptions{ReadData: true})
	if err != nil || !rep.OK() {
		t.Fatalf("check after the repack: %v %v", err, rep.Problems)
	}
	out := t.TempDir()
	if _, err := r.Restore(ctx, second.Snapshot, nil, out, RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, e := range ents[20:] {
		want, _ := os.ReadFile(filepath.Join(src, e.Name()))
		got, err := os.ReadFile(filepath.Join(out, "d", e.Name()))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s restored wrong: %v", e.Name(), err)
		}
	}
}
