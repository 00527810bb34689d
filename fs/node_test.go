package fs

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// These tests call the nodes' methods directly, without a kernel: the root
// is attached to a go-fuse bridge (NewNodeFS) so NewInode works, and every
// answer is checked as the kernel would receive it. Without the kernel the
// bridge does not merge lookups of one identity into one *Inode, so
// identities are compared by StableAttr (the merging itself is checked on
// a real mount in mount_test.go).

type testFS struct {
	m      *mountFS
	root   *topDir
	tree   *fakeTree
	status *fakeStatus
	logs   *bytes.Buffer
	errs   []string
	mu     sync.Mutex
}

func newTestFS(t *testing.T, tree *fakeTree, tweak func(*Options)) *testFS {
	t.Helper()
	tf := &testFS{tree: tree, status: &fakeStatus{files: []string{"repo", "alerts"}}, logs: &bytes.Buffer{}}
	o := Options{
		Tree:     tree,
		Status:   tf.status,
		Location: time.UTC,
		Logger:   slog.New(slog.NewTextHandler(syncWriter{tf}, nil)),
		OnError: func(path string, err error) {
			tf.mu.Lock()
			tf.errs = append(tf.errs, path)
			tf.mu.Unlock()
		},
	}
	if tweak != nil {
		tweak(&o)
	}
	m, err := newMountFS(o)
	if err != nil {
		t.Fatal(err)
	}
	tf.m = m
	tf.root = m.root()
	gofs.NewNodeFS(tf.root, m.nodeOptions())
	return tf
}

type syncWriter struct{ tf *testFS }

func (w syncWriter) Write(p []byte) (int, error) {
	w.tf.mu.Lock()
	defer w.tf.mu.Unlock()
	return w.tf.logs.Write(p)
}

// walk looks up a /-separated path from the root, as the kernel would.
func (tf *testFS) walk(t *testing.T, path string) (*gofs.Inode, fuse.EntryOut) {
	t.Helper()
	var cur gofs.InodeEmbedder = tf.root
	var out fuse.EntryOut
	for _, name := range strings.Split(path, "/") {
		lu, ok := cur.(gofs.NodeLookuper)
		if !ok {
			t.Fatalf("%s: %T is not a directory", path, cur)
		}
		out = fuse.EntryOut{}
		ch, errno := lu.Lookup(context.Background(), name, &out)
		if errno != 0 {
			t.Fatalf("lookup %s (at %q): %v", path, name, errno)
		}
		// The bridge links the child after a kernel lookup; do the
		// same so paths in log lines resolve.
		cur.EmbeddedInode().AddChild(name, ch, true)
		cur = ch.Operations()
	}
	return cur.EmbeddedInode(), out
}

func (tf *testFS) lookupErr(path string) syscall.Errno {
	i := strings.LastIndexByte(path, '/')
	var parent gofs.InodeEmbedder = tf.root
	if i >= 0 {
		var cur gofs.InodeEmbedder = tf.root
		for _, name := range strings.Split(path[:i], "/") {
			var out fuse.EntryOut
			ch, errno := cur.(gofs.NodeLookuper).Lookup(context.Background(), name, &out)
			if errno != 0 {
				return errno
			}
			cur = ch.Operations()
		}
		parent = cur
	}
	var out fuse.EntryOut
	_, errno := parent.(gofs.NodeLookuper).Lookup(context.Background(), path[i+1:], &out)
	return errno
}

func names(t *testing.T, n *gofs.Inode) []string {
	t.Helper()
	rd, ok := n.Operations().(gofs.NodeReaddirer)
	if !ok {
		t.Fatalf("%T cannot list", n.Operations())
	}
	ds, errno := rd.Readdir(context.Background())
	if errno != 0 {
		t.Fatal(errno)
	}
	var out []string
	for ds.HasNext() {
		e, errno := ds.Next()
		if errno != 0 {
			t.Fatal(errno)
		}
		out = append(out, e.Name)
	}
	return out
}

// fixture is one source tree with everything a restore must keep.
type fixture struct {
	tree                   *fakeTree
	big, link1, link2      *fnode
	secret, sparse, broken *fnode
	sym                    *fnode
	bigData                []byte
}

func newFixture() *fixture {
	f := &fixture{tree: &fakeTree{}}
	f.bigData = make([]byte, 5<<20+12345)
	for i := range f.bigData {
		f.bigData[i] = byte(i*7 + i>>13)
	}
	f.big = file("weights.safetensors", f.bigData)
	f.link1 = file("a.bin", []byte("hardlinked"))
	f.link1.Nlink = 2
	f.link2 = file("b.bin", []byte("hardlinked"))
	f.link2.Nlink, f.link2.Ino = 2, f.link1.Ino
	f.secret = file("secret.env", []byte("TOKEN=x\n"))
	f.secret.Mode = syscall.S_IFREG | 0o600
	f.secret.UID, f.secret.GID = 0, 0
	f.secret.Xattrs = []Xattr{{"user.a", []byte("1")}, {"user.checksum", []byte("sha256:abcd")}}
	sparse := make([]byte, 3<<20)
	copy(sparse[1<<20:], "data in the middle")
	f.sparse = file("sparse.img", sparse)
	f.sparse.extents = []Extent{{1 << 20, 4096}}
	f.sparse.Blocks = 8
	f.broken = file("broken.bin", make([]byte, 100))
	f.broken.setReadErr(errCorrupt)
	f.sym = symlink("current", "weights.safetensors")
	models := dir("models", f.big, f.sym, dir("sub", f.link1, f.link2), f.broken)
	configs := dir("configs", f.secret, f.sparse)
	f.tree.add(snap("s1", at("2026-11-26T02:00:00Z"), []string{"daily"}, map[string]*fnode{"models": models, "configs": configs}))
	return f
}

func TestNodeAttributesFaithful(t *testing.T) {
	f := newFixture()
	tf := newTestFS(t, f.tree, nil)
	_, out := tf.walk(t, "latest/configs/secret.env")
	a := out.Attr
	n := f.secret.Node
	if a.Mode != syscall.S_IFREG|0o600 || a.Uid != 0 || a.Gid != 0 || a.Size != 8 || a.Nlink != 1 {
		t.Errorf("attr = %+v", a)
	}
	if a.Mtime != uint64(n.Mtime.Unix()) || a.Mtimensec != uint32(n.Mtime.Nanosecond()) ||
		a.Atime != uint64(n.Atime.Unix()) || a.Ctime != uint64(n.Ctime.Unix()) || a.Ctimensec != 123456789 {
		t.Errorf("times = %+v", a)
	}
	if out.EntryTimeout() != time.Hour || out.AttrTimeout() != time.Hour {
		t.Errorf("snapshot timeouts = %v/%v", out.EntryTimeout(), out.AttrTimeout())
	}
	_, out = tf.walk(t, "latest/configs/sparse.img")
	if out.Attr.Blocks != 8 || out.Attr.Size != 3<<20 {
		t.Errorf("sparse: blocks %d size %d", out.Attr.Blocks, out.Attr.Size)
	}
	// A source root's name in latest/ changes: it is cached only briefly
	// (Server.Refresh invalidates it when it does).
	_, out = tf.walk(t, "latest/configs")
	if out.EntryTimeout() != time.Second || out.Attr.Mode != syscall.S_IFDIR|0o755 {
		t.Errorf("latest/configs: entry timeout %v mode %o", out.EntryTimeout(), out.Attr.Mode)
	}
	_, out = tf.walk(t, "latest")
	if out.EntryTimeout() != time.Second || out.Attr.Mode != syscall.S_IFDIR|0o555 || out.Attr.Nlink != 4 {
		t.Errorf("latest: %v %+v", out.EntryTimeout(), out.Attr)
	}
}

func TestInodeIdentity(t *testing.T) {
	f := newFixture()
	tf := newTestFS(t, f.tree, nil)
	a, outA := tf.walk(t, "latest/models/sub/a.bin")
	b, outB := tf.walk(t, "latest/models/sub/b.bin")
	if a.StableAttr() != b.StableAttr() || outA.Attr.Ino != outB.Attr.Ino || outA.Attr.Nlink != 2 {
		t.Errorf("hardlinks: %v/%v ino %d/%d nlink %d", a.StableAttr(), b.StableAttr(), outA.Attr.Ino, outB.Attr.Ino, outA.Attr.Nlink)
	}
	// The same file of the same snapshot under two paths is one inode
	// (shared page cache); the directories are not (the kernel allows a
	// directory at one place only).
	c, _ := tf.walk(t, "snapshots/2026-11-26T02:00:00/models/sub/a.bin")
	if c.StableAttr() != a.StableAttr() {
		t.Error("same snapshot file under snapshots/ and latest/ is not one inode")
	}
	d1, _ := tf.walk(t, "latest/models/sub")
	d2, _ := tf.walk(t, "2026-11-26/models/sub")
	if d1.StableAttr().Ino == d2.StableAttr().Ino {
		t.Error("one directory inode at two paths")
	}
	// Stable across lookups.
	if again, _ := tf.walk(t, "latest/models/sub"); again.StableAttr() != d1.StableAttr() {
		t.Error("directory inode changed between lookups")
	}
	// Readdir reports the same numbers as lookup.
	rd, _ := d1.Operations().(gofs.NodeReaddirer).Readdir(context.Background())
	for rd.HasNext() {
		e, _ := rd.Next()
		if e.Name == "a.bin" && e.Ino != outA.Attr.Ino {
			t.Errorf("readdir ino %d, lookup ino %d", e.Ino, outA.Attr.Ino)
		}
	}

	// A second snapshot whose file reuses the same Node.Ino (the Tree
	// only promises uniqueness within a source root) must not alias.
	other := file("a.bin", []byte("different"))
	other.Ino = f.link1.Ino
	f.tree.add(snap("s2", at("2026-11-27T02:00:00Z"), nil, map[string]*fnode{"models": dir("models", dir("sub", other))}))
	n2, _ := tf.walk(t, "latest/models/sub/a.bin")
	if n2.StableAttr() == a.StableAttr() {
		t.Fatal("files of two snapshots with the same Node.Ino share an inode")
	}
	if got := readAll(t, n2); got != "different" {
		t.Errorf("new snapshot reads %q", got)
	}
}

func readAll(t *testing.T, n *gofs.Inode) string {
	t.Helper()
	fh, flags, errno := n.Operations().(gofs.NodeOpener).Open(context.Background(), syscall.O_RDONLY)
	if errno != 0 {
		t.Fatal(errno)
	}
	if flags&fuse.FOPEN_KEEP_CACHE == 0 || flags&fuse.FOPEN_DIRECT_IO != 0 {
		t.Errorf("open flags %#x: want keep-cache, no direct I/O", flags)
	}
	h := fh.(*fileHandle)
	defer h.Release(context.Background())
	var sb strings.Builder
	buf := make([]byte, 128<<10)
	for off := int64(0); ; {
		rr, errno := h.Read(context.Background(), buf, off)
		if errno != 0 {
			t.Fatal(errno)
		}
		b, _ := rr.Bytes(nil)
		rr.Done() // as go-fuse does once the reply is written
		if len(b) == 0 {
			return sb.String()
		}
		sb.Write(b)
		off += int64(len(b))
	}
}

func TestReadFileAndRelease(t *testing.T) {
	f := newFixture()
	tf := newTestFS(t, f.tree, nil)
	n, _ := tf.walk(t, "latest/models/weights.safetensors")
	if got := readAll(t, n); got != string(f.bigData) {
		t.Fatal("content differs")
	}
	if o, c := f.tree.opens.Load(), f.tree.closes.Load(); o != 1 || c != 1 {
		t.Errorf("opens %d closes %d", o, c)
	}
	if l, r := f.tree.lent.Load(), f.tree.returned.Load(); l == 0 || l != r {
		t.Errorf("%d sets of views lent, %d handed back after release (leak)", l, r)
	}
}

func TestReadEdges(t *testing.T) {
	f := newFixture()
	tf := newTestFS(t, f.tree, nil)
	n, _ := tf.walk(t, "latest/models/sub/a.bin")
	fh, _, _ := n.Operations().(gofs.NodeOpener).Open(context.Background(), syscall.O_RDONLY)
	h := fh.(*fileHandle)
	defer h.Release(context.Background())
	for _, c := range []struct {
		off  int64
		n    int
		want string
	}{{0, 4, "hard"}, {4, 100, "linked"}, {10, 5, ""}, {1000, 5, ""}} {
		rr, errno := h.Read(context.Background(), make([]byte, c.n), c.off)
		if errno != 0 {
			t.Fatal(errno)
		}
		if b, _ := rr.Bytes(nil); string(b) != c.want {
			t.Errorf("read %d+%d = %q, want %q", c.off, c.n, b, c.want)
		}
		rr.Done()
	}
	if _, errno := h.Read(context.Background(), make([]byte, 4), -1); errno != syscall.EINVAL {
		t.Errorf("negative offset: %v", errno)
	}
}

func TestCorruptReadIsEIOAndLogged(t *testing.T) {
	f := newFixture()
	tf := newTestFS(t, f.tree, nil)
	n, _ := tf.walk(t, "latest/models/broken.bin")
	fh, _, errno := n.Operations().(gofs.NodeOpener).Open(context.Background(), syscall.O_RDONLY)
	if errno != 0 {
		t.Fatal(errno)
	}
	h := fh.(*fileHandle)
	defer h.Release(context.Background())
	rr, errno := h.Read(context.Background(), make([]byte, 100), 0)
	if errno != syscall.EIO || rr != nil {
		t.Fatalf("corrupt read: %v %v", rr, errno)
	}
	tf.mu.Lock()
	defer tf.mu.Unlock()
	if !strings.Contains(tf.logs.String(), "latest/models/broken.bin") || !strings.Contains(tf.logs.String(), "hash check") {
		t.Errorf("log does not name the file and cause: %s", tf.logs)
	}
	if len(tf.errs) != 1 || tf.errs[0] != "/latest/models/broken.bin" {
		t.Errorf("OnError = %q", tf.errs)
	}
}

func TestCancelledReadIsEINTR(t *testing.T) {
	f := newFixture()
	f.tree.readDelay.Store(int64(time.Minute))
	tf := newTestFS(t, f.tree, nil)
	n, _ := tf.walk(t, "latest/models/sub/a.bin")
	fh, _, _ := n.Operations().(gofs.NodeOpener).Open(context.Background(), syscall.O_RDONLY)
	h := fh.(*fileHandle)
	defer h.Release(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	go func() { time.Sleep(10 * time.Millisecond); cancel() }()
	if _, errno := h.Read(ctx, make([]byte, 4), 0); errno != syscall.EINTR {
		t.Errorf("interrupted read = %v, want EINTR", errno)
	}
	if tf.logs.Len() != 0 {
		t.Errorf("an interrupt is not an error worth a log line: %s", tf.logs)
	}
}

func TestSymlinkAndXattrs(t *testing.T) {
	f := newFixture()
	tf := newTestFS(t, f.tree, nil)
	n, out := tf.walk(t, "latest/models/current")
	target, errno := n.Operations().(gofs.NodeReadlinker).Readlink(context.Background())
	if errno != 0 || string(target) != "weights.safetensors" || out.Attr.Size != uint64(len(target)) {
		t.Errorf("readlink = %q %v size %d", target, errno, out.Attr.Size)
	}

	s, _ := tf.walk(t, "latest/configs/secret.env")
	x := s.Operations().(gofs.NodeGetxattrer)
	ctx := context.Background()
	if sz, errno := x.Getxattr(ctx, "user.checksum", nil); errno != syscall.ERANGE || sz != 11 {
		t.Errorf("size query = %d %v, want 11 ERANGE (go-fuse turns it into the size)", sz, errno)
	}
	if sz, errno := x.Getxattr(ctx, "user.checksum", make([]byte, 5)); errno != syscall.ERANGE || sz != 11 {
		t.Errorf("small buffer = %d %v", sz, errno)
	}
	buf := make([]byte, 11)
	if sz, errno := x.Getxattr(ctx, "user.checksum", buf); errno != 0 || string(buf[:sz]) != "sha256:abcd" {
		t.Errorf("get = %q %v", buf[:sz], errno)
	}
	if _, errno := x.Getxattr(ctx, "user.none", buf); errno != syscall.ENODATA {
		t.Errorf("missing attr = %v", errno)
	}
	l := s.Operations().(gofs.NodeListxattrer)
	want := "user.a\x00user.checksum\x00"
	if sz, errno := l.Listxattr(ctx, nil); errno != syscall.ERANGE || sz != uint32(len(want)) {
		t.Errorf("list size = %d %v", sz, errno)
	}
	lb := make([]byte, 64)
	if sz, errno := l.Listxattr(ctx, lb); errno != 0 || string(lb[:sz]) != want {
		t.Errorf("list = %q %v", lb[:sz], errno)
	}
	// No xattrs: an empty list, not an error.
	if sz, errno := n.Operations().(gofs.NodeListxattrer).Listxattr(ctx, lb); errno != 0 || sz != 0 {
		t.Errorf("empty list = %d %v", sz, errno)
	}
}

func TestEverythingWriteIsEROFS(t *testing.T) {
	f := newFixture()
	tf := newTestFS(t, f.tree, nil)
	ctx := context.Background()
	for _, p := range []string{"", "latest", "latest/models", "latest/models/sub", "latest/models/sub/a.bin", "status", "status/repo"} {
		var ops gofs.InodeEmbedder = tf.root
		if p != "" {
			n, _ := tf.walk(t, p)
			ops = n.Operations()
		}
		var out fuse.EntryOut
		checks := map[string]syscall.Errno{}
		if o, ok := ops.(gofs.NodeSetattrer); ok {
			checks["setattr"] = o.Setattr(ctx, nil, &fuse.SetAttrIn{}, &fuse.AttrOut{})
		}
		if o, ok := ops.(gofs.NodeSetxattrer); ok {
			checks["setxattr"] = o.Setxattr(ctx, "user.x", []byte("1"), 0)
		}
		if o, ok := ops.(gofs.NodeRemovexattrer); ok {
			checks["removexattr"] = o.Removexattr(ctx, "user.a")
		}
		if o, ok := ops.(gofs.NodeMkdirer); ok {
			_, checks["mkdir"] = o.Mkdir(ctx, "x", 0o755, &out)
		}
		if o, ok := ops.(gofs.NodeCreater); ok {
			_, _, _, checks["create"] = o.Create(ctx, "x", 0, 0o644, &out)
		}
		if o, ok := ops.(gofs.NodeUnlinker); ok {
			checks["unlink"] = o.Unlink(ctx, "a.bin")
		}
		if o, ok := ops.(gofs.NodeRmdirer); ok {
			checks["rmdir"] = o.Rmdir(ctx, "sub")
		}
		if o, ok := ops.(gofs.NodeRenamer); ok {
			checks["rename"] = o.Rename(ctx, "a", ops, "b", 0)
		}
		if o, ok := ops.(gofs.NodeSymlinker); ok {
			_, checks["symlink"] = o.Symlink(ctx, "t", "l", &out)
		}
		if o, ok := ops.(gofs.NodeOpener); ok {
			_, _, checks["open O_WRONLY"] = o.Open(ctx, syscall.O_WRONLY)
			_, _, checks["open O_TRUNC"] = o.Open(ctx, syscall.O_RDONLY|syscall.O_TRUNC)
		}
		if len(checks) < 9 {
			t.Errorf("%q: only %d write operations answered", p, len(checks))
		}
		for op, errno := range checks {
			if errno != syscall.EROFS {
				t.Errorf("%q: %s = %v, want EROFS", p, op, errno)
			}
		}
	}
	if f.tree.opens.Load() != 0 {
		t.Error("a write open reached the Tree")
	}
}

func TestDirectoryListingAndMisses(t *testing.T) {
	f := newFixture()
	tf := newTestFS(t, f.tree, nil)
	n, _ := tf.walk(t, "latest/models")
	if got := strings.Join(names(t, n), ","); got != "broken.bin,current,sub,weights.safetensors" {
		t.Errorf("listing %s", got)
	}
	var out fuse.EntryOut
	if _, errno := n.Operations().(gofs.NodeLookuper).Lookup(context.Background(), "nope", &out); errno != syscall.ENOENT || out.EntryTimeout() != time.Hour {
		t.Errorf("miss: %v, negative timeout %v", errno, out.EntryTimeout())
	}
	names(t, n)
	tf.walk(t, "latest/models/sub")
	// One ReadDir per directory node: n served a lookup and two listings
	// with one; the walk made a second models node (no kernel to merge
	// it with n) and looked up sub without listing it.
	if got := f.tree.readDirs.Load(); got != 2 {
		t.Errorf("ReadDir called %d times, want 2", got)
	}
	if errno := tf.lookupErr("latest/nosuch"); errno != syscall.ENOENT {
		t.Errorf("virtual miss = %v", errno)
	}
	if errno := tf.lookupErr("1999-01-01"); errno != syscall.ENOENT {
		t.Errorf("day miss = %v", errno)
	}
}

func TestNewSnapshotAppearsWithoutRemount(t *testing.T) {
	f := newFixture()
	tf := newTestFS(t, f.tree, nil)
	old, _ := tf.walk(t, "latest/configs")
	f.tree.add(snap("s2", at("2026-11-27T08:00:00Z"), []string{"weekly"}, map[string]*fnode{"configs": dir("configs", file("new.yaml", []byte("x")))}))
	cur, _ := tf.walk(t, "latest/configs")
	if cur.StableAttr() == old.StableAttr() {
		t.Fatal("latest/configs still shows the old snapshot")
	}
	if got := names(t, cur); len(got) != 1 || got[0] != "new.yaml" {
		t.Errorf("latest/configs = %q", got)
	}
	root := names(t, tf.root.EmbeddedInode())
	if !strings.Contains(strings.Join(root, ","), "2026-11-27") {
		t.Errorf("root = %q", root)
	}
	tf.walk(t, "tags/weekly/2026-11-27T08:00:00/configs/new.yaml")
	// latest/models still comes from the first snapshot.
	tf.walk(t, "latest/models/weights.safetensors")
}

func TestStatusFiles(t *testing.T) {
	f := newFixture()
	tf := newTestFS(t, f.tree, nil)
	st, _ := tf.walk(t, "status")
	if got := names(t, st); strings.Join(got, ",") != "alerts,repo" {
		t.Errorf("status/ = %q", got)
	}
	n, out := tf.walk(t, "status/repo")
	if out.Attr.Size != 0 || out.Attr.Mode != syscall.S_IFREG|0o444 {
		t.Errorf("status attr %+v", out.Attr)
	}
	read := func() string {
		fh, flags, errno := n.Operations().(gofs.NodeOpener).Open(context.Background(), syscall.O_RDONLY)
		if errno != 0 || flags&fuse.FOPEN_DIRECT_IO == 0 {
			t.Fatalf("open: %v flags %#x", errno, flags)
		}
		var sb strings.Builder
		for off := int64(0); ; {
			rr, _ := fh.(gofs.FileReader).Read(context.Background(), make([]byte, 3), off)
			b, _ := rr.Bytes(nil)
			if len(b) == 0 {
				return sb.String()
			}
			sb.Write(b)
			off += int64(len(b))
		}
	}
	a, b := read(), read()
	if a != "repo render 1\n" || b != "repo render 2\n" {
		t.Errorf("renders %q %q: want one render per open, read whole in small pieces", a, b)
	}
	if errno := tf.lookupErr("status/nope"); errno != syscall.ENOENT {
		t.Errorf("missing status file = %v", errno)
	}
}

func TestMergeStatus(t *testing.T) {
	a := &fakeStatus{files: []string{"repo", "backup"}}
	b := &fakeStatus{files: []string{"alerts", "repo"}}
	m := MergeStatus(nil, a, b)
	if got := strings.Join(m.StatusFiles(), ","); got != "repo,backup,alerts" {
		t.Errorf("files = %s", got)
	}
	m.Render(context.Background(), "repo")
	m.Render(context.Background(), "alerts")
	if a.renders.Load() != 1 || b.renders.Load() != 1 {
		t.Error("wrong source rendered")
	}
	if _, err := m.Render(context.Background(), "nope"); err == nil {
		t.Error("unknown file rendered")
	}
}

func TestSnapshotListErrorIsEIO(t *testing.T) {
	f := newFixture()
	tf := newTestFS(t, f.tree, nil)
	f.tree.snapErr = io.ErrUnexpectedEOF
	f.tree.gen.Add(1)
	if errno := tf.lookupErr("latest"); errno != syscall.EIO {
		t.Errorf("lookup with a failing Tree = %v", errno)
	}
}

func TestSeekExtents(t *testing.T) {
	ext := []Extent{{0, 10}, {100, 50}, {150, 10}, {300, 0}, {400, 100}}
	const size = 1000
	for _, c := range []struct {
		off    uint64
		whence uint32
		want   uint64
		errno  syscall.Errno
	}{
		{0, seekData, 0, 0},
		{5, seekData, 5, 0},
		{10, seekData, 100, 0},
		{160, seekData, 400, 0}, // empty extent skipped
		{499, seekData, 499, 0},
		{500, seekData, 0, syscall.ENXIO},
		{1000, seekData, 0, syscall.ENXIO},
		{0, seekHole, 10, 0},
		{10, seekHole, 10, 0},
		{120, seekHole, 160, 0}, // adjacent extents are one run of data
		{450, seekHole, 500, 0},
		{999, seekHole, 999, 0},
		{1000, seekHole, 0, syscall.ENXIO},
		{0, 7, 0, syscall.EINVAL},
	} {
		got, errno := seekExtents(ext, size, c.off, c.whence)
		if got != c.want || errno != c.errno {
			t.Errorf("seek(%d, %d) = %d %v, want %d %v", c.off, c.whence, got, errno, c.want, c.errno)
		}
	}
	// Data running to the end: the only hole is the end.
	if got, _ := seekExtents([]Extent{{0, 1000}}, 1000, 3, seekHole); got != 1000 {
		t.Errorf("hole in a full file = %d", got)
	}
	if _, errno := seekExtents(nil, 1000, 0, seekData); errno != syscall.ENXIO {
		t.Errorf("all-hole file SEEK_DATA = %v", errno)
	}
}

func TestOptionsDefaults(t *testing.T) {
	if _, err := newMountFS(Options{}); err == nil {
		t.Error("no Tree accepted")
	}
	o := Options{Tree: &fakeTree{}}.withDefaults()
	if o.MaxRead != 1<<20 || o.FsName != "citadelfs" || o.SnapshotTimeout != time.Hour {
		t.Errorf("defaults %+v", o)
	}
}

// A mount whose first Tree.Snapshots failed (a transient error) had no
// view to compare the kernel's cached names with, and the first refresh
// after a successful lookup dereferenced that nil view on the watch
// goroutine, killing the daemon. It must instead treat every name as
// changed.
func TestRefreshAfterFailedFirstListing(t *testing.T) {
	f := newFixture()
	tf := newTestFS(t, f.tree, nil)
	f.tree.snapErr = io.ErrUnexpectedEOF
	tf.m.primeInval() // as Mount does
	if tf.m.invalled != nil {
		t.Fatal("a view from a failing Tree")
	}
	tf.m.mounted.Store(tf.root)
	f.tree.snapErr = nil
	tf.walk(t, "latest/configs/secret.env")
	tf.walk(t, "snapshots/2026-11-26T02:00:00/models")
	tf.m.invalidateVirtual() // the watch's next tick
	if tf.m.invalled == nil {
		t.Error("refresh did not record the view it checked against")
	}
	f.tree.add(snap("s2", at("2026-11-27T08:00:00Z"), nil, map[string]*fnode{"configs": dir("configs")}))
	tf.m.invalidateVirtual()
}
