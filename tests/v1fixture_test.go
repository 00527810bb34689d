package tests

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// testdata/v1repo is a repository written by the format-1 binary of commit
// b4583b1 (before citadel.json had a checksum, before trees recorded a
// directory's link count or the manifest the host's system) and frozen
// there: every later version must open, check and restore it, as gocryptfs
// keeps one repository per format version. Its two snapshots are
//
//	be2b45e2  tag v1fixture  models, configs
//	d9c3a9d4               configs, after configs/sub/notes.txt grew a line
//
// testdata/v1repo.listing is what `restore latest` must give back, in the
// form of v1Listing, taken from the source tree at the second snapshot.
// Never rewrite the fixture: a new format gets a fixture of its own.
const v1Fixture = "testdata/v1repo"

// copyV1Fixture copies the frozen repository into a private temp dir (an
// open seals citadel.json and may replay the index log; the fixture in the
// tree must stay as the old binary left it) and returns the copy's path.
func copyV1Fixture(t *testing.T) string {
	t.Helper()
	repo := filepath.Join(t.TempDir(), "v1repo")
	if out, err := exec.Command("cp", "-a", v1Fixture, repo).CombinedOutput(); err != nil {
		t.Fatalf("copy fixture: %v\n%s", err, out)
	}
	// git checks the files out 0644 and directories 0755 whatever the old
	// binary wrote; a repository must not be writable by others anyway.
	if err := os.Chmod(repo, 0o700); err != nil {
		t.Fatal(err)
	}
	return repo
}

// v1Listing describes every entry under root, one line each in walk order:
// path, type, permission bits, size, content (sha256 of a file, a symlink's
// target), mtime in nanoseconds for files and symlinks, link count of
// files, and extended attributes.
func v1Listing(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil // the target itself is restore's to make, not the snapshot's
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		kind, content, mtime, nlink := "d", "-", "-", "-"
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			kind, nlink = "f", fmt.Sprint(st.Nlink)
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(data)
			content, mtime = hex.EncodeToString(sum[:]), fmt.Sprint(st.Mtim.Nano())
		case unix.S_IFLNK:
			kind = "l"
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			content, mtime = target, fmt.Sprint(st.Mtim.Nano())
		}
		xa, err := readXattrs(p)
		if err != nil {
			return err
		}
		var names []string
		for k, v := range xa {
			names = append(names, k+"="+v)
		}
		sort.Strings(names)
		attrs := "-"
		if len(names) > 0 {
			attrs = strings.Join(names, ",")
		}
		size := int64(0)
		if kind == "f" {
			size = st.Size
		}
		fmt.Fprintf(&b, "%q %s %04o %d %s %s %s %s\n", rel, kind, st.Mode&0o7777, size, content, mtime, nlink, attrs)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestV1FixtureOpensChecksAndRestores(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the fixture's files are root's, with a user xattr and modes to restore as root")
	}
	want, err := os.ReadFile(v1Fixture + ".listing")
	if err != nil {
		t.Fatal(err)
	}
	repo := copyV1Fixture(t)

	snaps := listSnapshots(t, repo)
	if len(snaps) != 2 {
		t.Fatalf("the v1 fixture lists %d snapshots, want 2: %+v", len(snaps), snaps)
	}
	if r := citadel(t, "check", "--read-data", "--repo", repo); r.code != 0 {
		t.Fatalf("check --read-data of the v1 fixture: %s", r)
	}
	dst := restore(t, repo, "latest")
	if got := v1Listing(t, dst); got != string(want) {
		t.Fatalf("restore latest of the v1 fixture differs from its listing:\ngot:\n%s\nwant:\n%s", got, want)
	}
	// The sparse image keeps its hole: 8 MiB apparent, a few blocks stored.
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(dst, "models/tiny/sparse.img"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Size != 8<<20+22 || st.Blocks*512 > 1<<20 {
		t.Fatalf("sparse.img: size %d, %d bytes allocated; want 8 MiB + 22 with the hole kept", st.Size, st.Blocks*512)
	}
	// The first snapshot still has the older notes.txt.
	old := restore(t, repo, "be2b45e2:configs/sub/notes.txt")
	data, err := os.ReadFile(filepath.Join(old, "notes.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != strings.Repeat("hello v1\n", 100) {
		t.Fatalf("be2b45e2's notes.txt: %d bytes, not the 100 lines it had", len(data))
	}
	// A new snapshot into the old repository dedups against it.
	takeSnapshot(t, repo, "--source", "configs="+filepath.Join(dst, "configs"))
	if r := citadel(t, "check", "--read-data", "--repo", repo); r.code != 0 {
		t.Fatalf("check --read-data after a new snapshot into the v1 repository: %s", r)
	}
}

// The deliberately damaged copy: one byte flipped inside the blobs of the
// largest pack. check --read-data must name it (exit 4), and restore must
// fail rather than hand back the file it belongs to.
func TestV1FixtureDamageIsFound(t *testing.T) {
	repo := copyV1Fixture(t)
	var largest string
	var size int64
	filepath.WalkDir(filepath.Join(repo, "packs"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".pack") {
			if fi, err := d.Info(); err == nil && fi.Size() > size {
				largest, size = p, fi.Size()
			}
		}
		return nil
	})
	if largest == "" {
		t.Fatal("the v1 fixture has no pack")
	}
	data, err := os.ReadFile(largest)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0x10
	if err := os.WriteFile(largest, data, 0o600); err != nil {
		t.Fatal(err)
	}
	r := citadel(t, "check", "--read-data", "--repo", repo)
	if r.code != 4 || !strings.Contains(r.stdout+r.stderr, filepath.Base(largest)[:8]) {
		t.Fatalf("check --read-data of the damaged v1 fixture: want exit 4 naming pack %s: %s", filepath.Base(largest)[:8], r)
	}
	dst := filepath.Join(t.TempDir(), "restore")
	if r := citadel(t, "restore", "--repo", repo, "latest", dst); r.code != 4 {
		t.Fatalf("restore latest of the damaged v1 fixture: want exit 4: %s", r)
	}
}

// TestWriteV1Listing writes testdata/v1repo.listing from the source tree
// the fixture was made from; it runs only when asked, once, by whoever
// makes the fixture (CITADELFS_V1_SOURCE=/path/to/src).
func TestWriteV1Listing(t *testing.T) {
	src := os.Getenv("CITADELFS_V1_SOURCE")
	if src == "" {
		t.Skip("CITADELFS_V1_SOURCE is not set: the listing is frozen with the fixture")
	}
	// restore latest writes <target>/configs and <target>/models, as the
	// source tree has them under its root.
	if err := os.WriteFile(v1Fixture+".listing", []byte(v1Listing(t, src)), 0o644); err != nil {
		t.Fatal(err)
	}
}
