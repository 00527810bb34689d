package snapshot

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"citadelfs/index"
	"citadelfs/snapshot/codec"
)

// storeBlob writes b under id, raw, as a repository blob. The id need not
// be b's hash: that is how a test plants corrupt data.
func storeBlob(t *testing.T, r *Repository, typ index.BlobType, id index.ID, b []byte) {
	t.Helper()
	s, err := newBlobSaver(r)
	if err != nil {
		t.Fatal(err)
	}
	if isNew, err := s.Reserve(id); err != nil || !isNew {
		t.Fatalf("reserve blob %s: new %v, %v", id.Short(), isNew, err)
	}
	if err := s.Add(typ, uint8(codec.Raw), id, b, len(b)); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
}

// storeTreeBytes stores an encoded (possibly hand-made) tree blob.
func storeTreeBytes(t *testing.T, r *Repository, b []byte) index.ID {
	t.Helper()
	id := index.Hash(b)
	storeBlob(t, r, index.TreeBlob, id, b)
	return id
}

func storeTree(t *testing.T, r *Repository, nodes ...Node) index.ID {
	t.Helper()
	return storeTreeBytes(t, r, (&Tree{Nodes: nodes}).Encode())
}

// oneSourceSnapshot is a snapshot, never committed, of one source "s"
// whose root directory has mode and mtime and holds tree.
func oneSourceSnapshot(tree index.ID, mode uint32, mtime int64) *Snapshot {
	return &Snapshot{Manifest: Manifest{Version: 1, Sources: []Source{{
		Label: "s", Tree: tree, Root: RootMeta{Mode: mode, UID: uint32(os.Getuid()), GID: uint32(os.Getgid()), Mtime: mtime},
	}}}}
}

// rerunAsNobody reports whether the calling test already ran, as uid 65534
// in a child process. The bugs it guards show only without root's
// permission override: as root, the test binary reruns just that test as
// nobody; otherwise the caller runs the test itself.
func rerunAsNobody(t *testing.T) bool {
	t.Helper()
	if os.Geteuid() != 0 {
		return false
	}
	dir, err := os.MkdirTemp("", "citadelfs-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	// The child can neither enter root's 0700 build directory nor write
	// below root's TempDir, so it gets a copy of the binary and its own
	// world-writable temporary directory, sticky like /tmp (a repository
	// below a plain world-writable one is refused).
	exe := filepath.Join(dir, "snapshot.test")
	copyFile(t, os.Args[0], exe)
	if err := os.Chmod(dir, os.ModeSticky|0o777); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^"+t.Name()+"$", "-test.v")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "TMPDIR="+dir, "HOME="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("as uid 65534: %v\n%s", err, out)
	}
	if !bytes.Contains(out, []byte("--- PASS: "+t.Name())) {
		t.Fatalf("as uid 65534: %s did not run\n%s", t.Name(), out)
	}
	return true
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// spliceTree builds a tree blob holding nodes in the given order (Encode
// would sort them).
func spliceTree(nodes ...Node) []byte {
	b := []byte(treeMagic + "\x01")
	b = append(b, byte(len(nodes)))
	for _, n := range nodes {
		one := (&Tree{Nodes: []Node{n}}).Encode()
		b = append(b, one[len(treeMagic)+2:]...) // past magic, version, count 1
	}
	return b
}

// A tree holding a symlink "a" and then a directory "a" used to decode,
// and restore wrote the directory's children through the symlink.
func TestDecodeTreeRejectsUnsafeNames(t *testing.T) {
	file := func(name string) Node { return Node{Name: name, Type: TypeFile, Mode: 0o100644} }
	sub := index.Hash([]byte("t"))
	for name, b := range map[string][]byte{
		"repeated": spliceTree(
			Node{Name: "a", Type: TypeSymlink, Mode: 0o120777, Target: "/anywhere"},
			Node{Name: "a", Type: TypeDir, Mode: 0o40755, Subtree: sub}),
		"unsorted": spliceTree(file("b"), file("a")),
		"empty":    spliceTree(file("")),
		"dot":      spliceTree(file(".")),
		"dotdot":   spliceTree(file("..")),
		"slash":    spliceTree(file("x/y")),
		"nul":      spliceTree(file("x\x00y")),
	} {
		if _, err := DecodeTree(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: DecodeTree: %v, want ErrCorrupt", name, err)
		}
	}
	// Byte order, as Encode sorts: upper case, then lower, then non-ASCII.
	ok := spliceTree(file("B"), file("a"), file("ab"), file("\xff"))
	if tr, err := DecodeTree(ok); err != nil || len(tr.Nodes) != 4 {
		t.Fatalf("sorted tree: %v", err)
	}
}

// End to end: the duplicate-name tree is refused before anything is
// written outside the target.
func TestRestoreDuplicateNameDoesNotEscape(t *testing.T) {
	r, _ := newRepo(t)
	outside := t.TempDir()
	child := storeTree(t, r, Node{Name: "f", Type: TypeFile, Mode: 0o100644})
	root := storeTreeBytes(t, r, spliceTree(
		Node{Name: "a", Type: TypeSymlink, Mode: 0o120777, Target: outside},
		Node{Name: "a", Type: TypeDir, Mode: 0o40777, Subtree: child}))
	_, err := r.Restore(context.Background(), oneSourceSnapshot(root, 0o40755, 0), nil, t.TempDir(), RestoreOptions{})
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("restore: %v, want ErrCorrupt", err)
	}
	if _, err := os.Lstat(filepath.Join(outside, "f")); err == nil {
		t.Fatal("restore wrote through a symlink, outside the target")
	}
}

// A symlink already in the target where a directory is to be restored
// used to be followed (Mkdir's EEXIST was ignored).
func TestRestoreRefusesSymlinkWhereDirGoes(t *testing.T) {
	r, _ := newRepo(t)
	outside := t.TempDir()
	if err := os.Chmod(outside, 0o700); err != nil {
		t.Fatal(err)
	}
	child := storeTree(t, r, Node{Name: "f", Type: TypeFile, Mode: 0o100644})
	root := storeTree(t, r, Node{Name: "a", Type: TypeDir, Mode: 0o40777, Subtree: child})
	out := t.TempDir()
	if err := os.MkdirAll(filepath.Join(out, "s"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(out, "s", "a")); err != nil {
		t.Fatal(err)
	}
	_, err := r.Restore(context.Background(), oneSourceSnapshot(root, 0o40755, 0), nil, out, RestoreOptions{})
	if err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("restore over a symlink: %v, want a refusal", err)
	}
	if _, err := os.Lstat(filepath.Join(outside, "f")); err == nil {
		t.Fatal("restore wrote through a symlink, outside the target")
	}
	if fi, _ := os.Stat(outside); fi.Mode().Perm() != 0o700 {
		t.Fatalf("restore changed the mode of a directory outside the target to %v", fi.Mode())
	}
}

// A label like "../escaped" used to decode, and restore wrote that source
// to filepath.Join(target, label), outside the target.
func TestDecodeManifestRejectsUnsafeLabels(t *testing.T) {
	tree := `"` + index.Hash(nil).String() + `"`
	src := func(label string) string { return `{"label":"` + label + `","tree":` + tree + `}` }
	manifest := func(sources ...string) []byte {
		return []byte(`{"version":1,"sources":[` + strings.Join(sources, ",") + `]}`)
	}
	for _, label := range []string{"../escaped", "..", ".", "", "a/b", `a\u0000b`, "/abs"} {
		if _, err := DecodeManifest(manifest(src(label))); !errors.Is(err, ErrCorrupt) {
			t.Errorf("label %q: %v, want ErrCorrupt", label, err)
		}
	}
	if _, err := DecodeManifest(manifest(src("m"), src("m"))); !errors.Is(err, ErrCorrupt) {
		t.Errorf("repeated label: %v, want ErrCorrupt", err)
	}
	if _, err := DecodeManifest(manifest(src("m"), src("n"))); err != nil {
		t.Errorf("good labels: %v", err)
	}
}

// A corrupt file with two links: the first was removed, then finish()
// failed on os.Link (ENOENT) before any directory metadata, and the error
// was "hardlink: no such file" instead of ErrCorrupt.
func TestRestoreCorruptHardlinkKeepsDirMeta(t *testing.T) {
	r, _ := newRepo(t)
	bad := index.Hash([]byte("good"))
	storeBlob(t, r, index.DataBlob, bad, []byte("evil"))
	linked := func(name string) Node {
		return Node{Name: name, Type: TypeFile, Mode: 0o100644, Size: 4, Inode: 7, Dev: 1, Nlink: 2,
			Content: []ChunkRef{{Offset: 0, Length: 4, ID: bad}}}
	}
	mtime := time.Date(2020, 1, 2, 3, 4, 5, 6, time.UTC).UnixNano()
	sub := storeTree(t, r, linked("x"), linked("y"), Node{Name: "z", Type: TypeFile, Mode: 0o100600})
	root := storeTree(t, r, Node{Name: "d", Type: TypeDir, Mode: 0o40751, Mtime: mtime, Subtree: sub})
	out := t.TempDir()
	res, err := r.Restore(context.Background(), oneSourceSnapshot(root, 0o40750, mtime), nil, out, RestoreOptions{})
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("restore: %v, want ErrCorrupt", err)
	}
	if len(res.Failed) != 2 {
		t.Fatalf("failed = %q, want both links", res.Failed)
	}
	for _, name := range []string{"x", "y"} {
		if _, err := os.Lstat(filepath.Join(out, "s", "d", name)); err == nil {
			t.Errorf("%s: corrupt file left in the target", name)
		}
	}
	if _, err := os.Lstat(filepath.Join(out, "s", "d", "z")); err != nil {
		t.Errorf("healthy file: %v", err)
	}
	for dir, mode := range map[string]os.FileMode{"s": 0o750, "s/d": 0o751} {
		fi, err := os.Lstat(filepath.Join(out, dir))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode || fi.ModTime().UnixNano() != mtime {
			t.Errorf("%s: mode %v mtime %v, want %v %v", dir, fi.Mode().Perm(), fi.ModTime(), mode, time.Unix(0, mtime))
		}
	}
}

// As non-root, Lsetxattr ran after Chmod: a read-only file or directory
// then refused its user.* xattrs (EACCES) and lost them.
func TestRestoreXattrsOnReadOnlyEntries(t *testing.T) {
	if rerunAsNobody(t) {
		return
	}
	r, _ := newRepo(t)
	uid, gid := uint32(os.Getuid()), uint32(os.Getgid())
	x := []Xattr{{Name: "user.k", Value: []byte("v")}}
	root := storeTree(t, r,
		Node{Name: "rd", Type: TypeDir, Mode: 0o40555, UID: uid, GID: gid, Xattrs: x},
		Node{Name: "ro", Type: TypeFile, Mode: 0o100444, UID: uid, GID: gid, Xattrs: x})
	out := t.TempDir()
	var warns []string
	_, err := r.Restore(context.Background(), oneSourceSnapshot(root, 0o40755, 0), nil, out,
		RestoreOptions{Warn: func(s string) { warns = append(warns, s) }})
	if err != nil {
		t.Fatal(err)
	}
	probe := filepath.Join(out, "probe")
	if err := os.WriteFile(probe, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := unix.Lsetxattr(probe, "user.k", []byte("v"), 0); err != nil {
		t.Skipf("file system without user xattrs: %v", err)
	}
	for _, name := range []string{"rd", "ro"} {
		buf := make([]byte, 16)
		n, err := unix.Lgetxattr(filepath.Join(out, "s", name), "user.k", buf)
		if err != nil || string(buf[:n]) != "v" {
			t.Errorf("%s: user.k = %q, %v (warnings %q)", name, buf[:max(n, 0)], err, warns)
		}
	}
}

// Directory metadata was applied parents first, despite the comment: as
// non-root, a parent restored without owner x (0600) then denied access
// to its child, and the restore failed.
func TestRestoreDirMetaDeepestFirst(t *testing.T) {
	if rerunAsNobody(t) {
		return
	}
	r, _ := newRepo(t)
	uid, gid := uint32(os.Getuid()), uint32(os.Getgid())
	child := storeTree(t, r, Node{Name: "c", Type: TypeDir, Mode: 0o40755, UID: uid, GID: gid})
	root := storeTree(t, r, Node{Name: "p", Type: TypeDir, Mode: 0o40600, UID: uid, GID: gid, Subtree: child})
	out := t.TempDir()
	p := filepath.Join(out, "s", "p")
	t.Cleanup(func() { os.Chmod(p, 0o700) }) // before TempDir's removal
	if _, err := r.Restore(context.Background(), oneSourceSnapshot(root, 0o40755, 0), nil, out, RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(p); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("p: %v %v, want mode 0600", fi, err)
	}
	os.Chmod(p, 0o700)
	if fi, err := os.Lstat(filepath.Join(p, "c")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("p/c: %v %v, want mode 0755", fi, err)
	}
}

// A second restore over the first, as non-root, of a read-only directory
// holding a read-only file: the directory is opened up while its entries
// are replaced and gets its mode back at the end ("file exists" before).
func TestRestoreAgainOverReadOnlyDirectory(t *testing.T) {
	if rerunAsNobody(t) {
		return
	}
	r, _ := newRepo(t)
	uid, gid := uint32(os.Getuid()), uint32(os.Getgid())
	file := storeTree(t, r, Node{Name: "f", Type: TypeFile, Mode: 0o100444, UID: uid, GID: gid})
	root := storeTree(t, r, Node{Name: "ro", Type: TypeDir, Mode: 0o40555, UID: uid, GID: gid, Subtree: file})
	snap := oneSourceSnapshot(root, 0o40755, 0)
	out := t.TempDir()
	for i := range 2 {
		if _, err := r.Restore(context.Background(), snap, nil, out, RestoreOptions{}); err != nil {
			t.Fatalf("restore %d: %v", i+1, err)
		}
	}
	fi, err := os.Stat(filepath.Join(out, "s", "ro"))
	if err != nil || fi.Mode().Perm() != 0o555 {
		t.Fatalf("ro after the second restore: %v %v, want 0555", fi.Mode(), err)
	}
	if fi, err := os.Stat(filepath.Join(out, "s", "ro", "f")); err != nil || fi.Mode().Perm() != 0o444 {
		t.Fatalf("ro/f after the second restore: %v", err)
	}
	os.Chmod(filepath.Join(out, "s", "ro"), 0o755) // so the test's clean-up can remove it
}
