package snapshot

import (
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"citadelfs/index"
	"citadelfs/internal/testutil"
)

// The entries restore does not open (symlinks, devices, fifos) get their
// owner, mode, times and xattrs through their directory's descriptor, and
// ACLs survive as the xattrs they are.
func TestRestoreSpecialFilesMetadata(t *testing.T) {
	testutil.NeedRoot(t, "for device nodes, chown and trusted xattrs")
	ctx := context.Background()
	src := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	p := func(name string) string { return filepath.Join(src, name) }
	must(os.Mkdir(p("acl-dir"), 0o750))
	must(os.WriteFile(p("acl-dir/f"), []byte("acl"), 0o640))
	must(unix.Mknod(p("null"), unix.S_IFCHR|0o620, int(unix.Mkdev(1, 3))))
	must(unix.Mkfifo(p("fifo"), 0o604))
	must(os.Symlink("acl-dir/f", p("link")))
	for _, name := range []string{"null", "fifo", "link"} {
		must(os.Lchown(p(name), 1234, 5678))
	}
	// chmod after mknod: the umask must not decide the restored mode.
	must(unix.Chmod(p("fifo"), 0o604))
	must(unix.Chmod(p("null"), 0o620))
	want := map[string]string{} // xattrs the restore must carry, where the file system has them
	if err := unix.Lsetxattr(p("link"), "trusted.citadel", []byte("on-a-symlink"), 0); err != nil {
		t.Logf("trusted xattrs not supported here: %v", err)
	} else {
		want["link"] = "trusted.citadel"
	}
	// The kernel's binary ACL (what setfacl writes): user::rw-,
	// user:65534:r--, group::r--, mask::r--, other::---; the default ACL
	// on the directory adds group:65534:r-x.
	acl := func(entries ...[3]uint32) []byte {
		b := binary.LittleEndian.AppendUint32(nil, 2)
		for _, e := range entries {
			b = binary.LittleEndian.AppendUint16(b, uint16(e[0]))
			b = binary.LittleEndian.AppendUint16(b, uint16(e[1]))
			b = binary.LittleEndian.AppendUint32(b, e[2])
		}
		return b
	}
	const none = 0xffffffff
	access := acl([3]uint32{0x01, 6, none}, [3]uint32{0x02, 4, 65534}, [3]uint32{0x04, 4, none}, [3]uint32{0x10, 4, none}, [3]uint32{0x20, 0, none})
	def := acl([3]uint32{0x01, 7, none}, [3]uint32{0x04, 5, none}, [3]uint32{0x08, 5, 65534}, [3]uint32{0x10, 5, none}, [3]uint32{0x20, 0, none})
	if err := unix.Setxattr(p("acl-dir/f"), "system.posix_acl_access", access, 0); err != nil {
		t.Logf("ACLs not supported here: %v", err)
	} else {
		must(unix.Setxattr(p("acl-dir"), "system.posix_acl_default", def, 0))
		want["acl-dir/f"], want["acl-dir"] = "system.posix_acl_access", "system.posix_acl_default"
	}
	old := time.Date(2021, 5, 6, 7, 8, 9, 123456789, time.UTC)
	for _, name := range []string{"acl-dir/f", "acl-dir", "null", "fifo", "link"} {
		ts := []unix.Timespec{unix.NsecToTimespec(old.UnixNano()), unix.NsecToTimespec(old.UnixNano() + 1)}
		must(unix.UtimesNanoAt(unix.AT_FDCWD, p(name), ts, unix.AT_SYMLINK_NOFOLLOW))
	}
	r, _ := newRepo(t)
	res, err := r.TakeSnapshot(ctx, Request{Sources: []SourceSpec{{Label: "s", Path: src}}})
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	var warns []string
	if _, err := r.Restore(ctx, res.Snapshot, nil, out, RestoreOptions{Warn: func(s string) { warns = append(warns, s) }}); err != nil {
		t.Fatal(err)
	}
	if len(warns) != 0 {
		t.Errorf("warnings: %q", warns)
	}
	for _, name := range []string{"acl-dir/f", "acl-dir", "null", "fifo", "link"} {
		var a, b unix.Stat_t
		must(unix.Lstat(p(name), &a))
		must(unix.Lstat(filepath.Join(out, "s", name), &b))
		if a.Mode != b.Mode || a.Uid != b.Uid || a.Gid != b.Gid || a.Rdev != b.Rdev || a.Mtim != b.Mtim {
			t.Errorf("%s: restored mode %o uid %d gid %d rdev %x mtime %v, want %o %d %d %x %v", name,
				b.Mode, b.Uid, b.Gid, b.Rdev, b.Mtim, a.Mode, a.Uid, a.Gid, a.Rdev, a.Mtim)
		}
		xa, xb := readXattrs(p(name)), readXattrs(filepath.Join(out, "s", name))
		if !reflect.DeepEqual(xa, xb) {
			t.Errorf("%s: restored xattrs %q, want %q", name, xb, xa)
		}
		if x, ok := want[name]; ok && !slices.ContainsFunc(xb, func(e Xattr) bool { return e.Name == x }) {
			t.Errorf("%s: restored without %s (has %q)", name, x, xb)
		}
	}
}

// A second restore, as non-root, over a directory the first left without
// read permission (0300): restore opens directories to walk from them,
// and must still get into this one, through its descriptor, not its name.
func TestRestoreAgainOverUnreadableDirectory(t *testing.T) {
	if rerunAsNobody(t) {
		return
	}
	r, _ := newRepo(t)
	uid, gid := uint32(os.Getuid()), uint32(os.Getgid())
	data := []byte("inside")
	id := index.Hash(data)
	storeBlob(t, r, index.DataBlob, id, data)
	file := storeTree(t, r, Node{Name: "f", Type: TypeFile, Mode: 0o100600, UID: uid, GID: gid, Size: int64(len(data)),
		Content: []ChunkRef{{Offset: 0, Length: int64(len(data)), ID: id}}})
	root := storeTree(t, r, Node{Name: "wx", Type: TypeDir, Mode: 0o40300, UID: uid, GID: gid, Subtree: file})
	snap := oneSourceSnapshot(root, 0o40755, 0)
	out := t.TempDir()
	dir := filepath.Join(out, "s", "wx")
	t.Cleanup(func() { os.Chmod(dir, 0o700) }) // so TempDir's removal can list it
	for i := range 2 {
		if _, err := r.Restore(context.Background(), snap, nil, out, RestoreOptions{}); err != nil {
			t.Fatalf("restore %d: %v", i+1, err)
		}
		if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o300 {
			t.Fatalf("wx after restore %d: %v %v, want 0300", i+1, fi, err)
		}
		if got, err := os.ReadFile(filepath.Join(dir, "f")); err != nil || string(got) != "inside" {
			t.Fatalf("wx/f after restore %d: %q %v", i+1, got, err)
		}
	}
}
