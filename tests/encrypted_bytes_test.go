package tests

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"lukechampine.com/blake3"
)

// plaintextNeedles are what someone holding the bucket or the backup disk
// would look for to learn what an encrypted repository holds: a known
// 64-byte marker in one file's content, the file names of the tree (those
// long enough not to turn up by chance), and the plain BLAKE3 of known
// chunks (every small file is one chunk), in hex and raw.
type plaintextNeedles map[string][]byte

// writeMarkerTree writes the corpus plus a file holding a fresh 64-byte
// marker into dir/src and returns the source and the needles to look for.
func writeMarkerTree(t *testing.T, dir string) (string, plaintextNeedles) {
	t.Helper()
	// The corpus, smaller than smallCorpus: every byte is searched, for
	// every needle.
	src := filepath.Join(dir, "src")
	corpus(t, "-out", src, "-models-mb", "6", "-logs-mb", "1", "-configs", "120")
	var rnd [24]byte
	rand.Read(rnd[:])
	marker := []byte("CITADELFS-MARKER-" + hex.EncodeToString(rnd[:])[:47])
	if len(marker) != 64 {
		t.Fatalf("marker of %d bytes", len(marker))
	}
	content := append(append([]byte("api_token: "), marker...), "\nreplicas: 3\n"...)
	markerName := "marker-" + hex.EncodeToString(rnd[20:]) + ".yaml"
	if err := os.WriteFile(filepath.Join(src, "configs", markerName), content, 0o600); err != nil {
		t.Fatal(err)
	}
	n := plaintextNeedles{"the marker": marker, "the marker file's name": []byte(markerName)}
	addChunk := func(what string, b []byte) {
		sum := blake3.Sum256(b)
		n["plain BLAKE3 of "+what] = append([]byte(nil), sum[:]...)
		n["plain BLAKE3 (hex) of "+what] = []byte(hex.EncodeToString(sum[:]))
	}
	addChunk("the marker file", content)
	files := 0
	filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		if len(d.Name()) >= 10 {
			n["the name "+d.Name()] = []byte(d.Name())
		}
		if d.Type().IsRegular() && strings.Contains(p, "/configs/") && files < 50 {
			if info, err := d.Info(); err == nil && info.Size() > 0 && info.Size() < 256<<10 {
				b, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				addChunk(p, b)
				files++
			}
		}
		return nil
	})
	if files < 10 || len(n) < 30 {
		t.Fatalf("too few needles: %d files, %d needles", files, len(n))
	}
	return src, n
}

// findNeedles reports each needle found in b (the object called name).
func findNeedles(t *testing.T, name string, b []byte, n plaintextNeedles) {
	t.Helper()
	for what, needle := range n {
		if bytes.Contains(b, needle) {
			t.Errorf("%s holds %s", name, what)
		}
	}
}

func writePassword(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "password")
	if err := os.WriteFile(p, []byte("correct horse battery staple\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// An encrypted local repository (the default init) holds no plaintext:
// every byte under it is searched for the marker, the names and the
// plain chunk hashes, and none is found; it still restores identical.
func TestEncryptedLocalRepositoryHoldsNoPlaintext(t *testing.T) {
	dir := t.TempDir()
	src, needles := writeMarkerTree(t, dir)
	pw := writePassword(t, dir)
	repo := filepath.Join(dir, "repo")
	mustCitadel(t, "init", "--repo", repo, "--password-file", pw)
	takeSnapshot(t, repo, append(sourceFlags(src), "--password-file", pw)...)
	dst := filepath.Join(t.TempDir(), "restore")
	mustCitadel(t, "restore", "--repo", repo, "--password-file", pw, "latest", dst)
	for _, l := range labels {
		diffTrees(t, filepath.Join(src, l), filepath.Join(dst, l))
	}
	files, total := 0, int64(0)
	filepath.WalkDir(repo, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		if d.Name() != filepath.Base(repo) && strings.Contains(d.Name(), "marker") {
			t.Errorf("a file named %s", p)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		files++
		total += int64(len(b))
		findNeedles(t, p, b, needles)
		return nil
	})
	if files < 5 || total < 4<<20 {
		t.Fatalf("searched only %d files, %d bytes", files, total)
	}
	// The check that would have found them in a repository in the clear:
	// the same search finds the marker and the names there.
	clear := filepath.Join(dir, "clear")
	mustCitadel(t, "init", "--repo", clear, "--encryption", "none")
	takeSnapshot(t, clear, sourceFlags(src)...)
	found := 0
	filepath.WalkDir(clear, func(p string, d fs.DirEntry, err error) error {
		if d.Type().IsRegular() {
			b, _ := os.ReadFile(p)
			if bytes.Contains(b, needles["the marker"]) || bytes.Contains(b, needles["the marker file's name"]) {
				found++
			}
		}
		return nil
	})
	if found == 0 {
		t.Fatal("the search finds nothing in a repository in the clear either: it proves nothing")
	}
}

// The same in a bucket on the real RGW: every object of the bucket is
// read and searched. A second host with the same key (its own cache)
// deduplicates against the first: its snapshot of the same tree uploads
// no data, only its trees and manifest.
func TestEncryptedS3BucketHoldsNoPlaintext(t *testing.T) {
	r := newS3Repo(t)
	dir := t.TempDir()
	src, needles := writeMarkerTree(t, dir)
	pw := writePassword(t, dir)
	cacheA, cacheB := t.TempDir(), t.TempDir()
	r.must(t, cacheA, "init", "--password-file", pw)
	r.must(t, cacheA, append([]string{"snapshot", "--password-file", pw, "--json"}, sourceFlags(src)...)...)
	searched, total := 0, int64(0)
	if err := r.store.List("", func(name string, size int64) error {
		b, err := r.store.ReadRange(name, 0, int(size), nil)
		if err != nil {
			return err
		}
		if strings.Contains(name, "marker") {
			t.Errorf("an object named %s", name)
		}
		searched++
		total += size
		findNeedles(t, name, b, needles)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if searched < 5 || total < 4<<20 {
		t.Fatalf("searched only %d objects, %d bytes", searched, total)
	}

	// Host B: the same tree copied to another place (other inodes and
	// paths), the same key, its own cache.
	before := r.bucketBytes(t)
	srcB := filepath.Join(t.TempDir(), "hostb")
	if res := runCmd(t, os.Environ(), "cp", "-a", src, srcB); res.code != 0 {
		t.Fatal(res)
	}
	res := r.must(t, cacheB, append([]string{"snapshot", "--password-file", pw, "--json"}, sourceFlags(srcB)...)...)
	var sum snapSummary
	if err := json.Unmarshal([]byte(res.stdout), &sum); err != nil {
		t.Fatalf("snapshot --json: %v\n%s", err, res)
	}
	if sum.ReadBytes == 0 || sum.NewBytes != 0 {
		t.Fatalf("host B read %d bytes and stored %d new ones; want every chunk deduplicated", sum.ReadBytes, sum.NewBytes)
	}
	grew := r.bucketBytes(t) - before
	if grew > 1<<20 || grew > before/20 {
		t.Fatalf("host B's snapshot of the same tree added %d bytes of packs to %d", grew, before)
	}
	dst := filepath.Join(t.TempDir(), "restore")
	r.must(t, cacheB, "restore", "--password-file", pw, "latest", dst)
	for _, l := range labels {
		diffTrees(t, filepath.Join(src, l), filepath.Join(dst, l))
	}
}

// A flipped byte in an encrypted repository's pack, in a blob or in the
// sealed trailer, is damage: check --read-data and restore exit 4 with
// one line, and nothing restored differs from the source.
func TestEncryptedTamperedPackIsExit4(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	corpus(t, "-out", src, "-models-mb", "6", "-logs-mb", "1", "-configs", "20")
	pw := writePassword(t, dir)
	repo := filepath.Join(dir, "repo")
	mustCitadel(t, "init", "--repo", repo, "--password-file", pw)
	takeSnapshot(t, repo, append(sourceFlags(src, "models"), "--password-file", pw)...)
	pack, size := largestPack(t, repo)
	good, err := os.ReadFile(pack)
	if err != nil {
		t.Fatal(err)
	}
	for _, where := range []struct {
		name string
		off  int64
	}{{"a sealed blob", size / 2}, {"the sealed trailer", size - 16 - 30}} {
		flipByte(t, pack, where.off)
		// A fresh cache: the trailers are read, as a new host would.
		cache := filepath.Join(t.TempDir(), "cache")
		res := citadel(t, "check", "--repo", repo, "--password-file", pw, "--cache-dir", cache, "--read-data")
		if res.code != 4 {
			t.Fatalf("%s flipped: check exit %d, want 4\n%s", where.name, res.code, res)
		}
		dst := filepath.Join(t.TempDir(), "restore")
		res = citadel(t, "restore", "--repo", repo, "--password-file", pw, "--cache-dir", cache, "latest", dst)
		// A warning for the file, then the one-line error.
		if where.name == "a sealed blob" && (res.code != 4 || !strings.Contains(res.stderr, "fails authentication")) {
			t.Fatalf("%s flipped: restore exit %d, want 4 naming the failed authentication\n%s", where.name, res.code, res)
		}
		filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return nil
			}
			rel, _ := filepath.Rel(dst, p)
			got, _ := os.ReadFile(p)
			want, err := os.ReadFile(filepath.Join(src, rel))
			if err != nil || !bytes.HasPrefix(want, got) {
				t.Errorf("%s flipped: %s restored with other bytes", where.name, rel)
			}
			return nil
		})
		if err := os.WriteFile(pack, good, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}
