package fsadapter

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	iofs "io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	cfs "citadelfs/fs"
	"citadelfs/index"
	"citadelfs/snapshot"
)

// Tests against a real repository in a temp dir: the adapter is the
// engine seen through fs's interfaces, so nothing here is faked.

func newRepo(t *testing.T) *snapshot.Repository {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "repo")
	if err := snapshot.Init(dir, snapshot.Options{}); err != nil {
		t.Fatal(err)
	}
	r, err := snapshot.Open(dir, snapshot.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// source: d/ (with sub/ and sub2/), d/a.bin, d/hard1 and d/hard2 (one
// file, two links).
func source(t *testing.T) string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	for _, d := range []string{"d/sub", "d/sub2"} {
		if err := os.MkdirAll(filepath.Join(src, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(src, "d", "a.bin"), bytes.Repeat([]byte("weights "), 4096), 0o644)
	os.WriteFile(filepath.Join(src, "d", "hard1"), []byte("linked\n"), 0o644)
	if err := os.Link(filepath.Join(src, "d", "hard1"), filepath.Join(src, "d", "hard2")); err != nil {
		t.Fatal(err)
	}
	return src
}

func take(t *testing.T, r *snapshot.Repository, src string, at time.Time) *snapshot.Snapshot {
	t.Helper()
	res, err := r.TakeSnapshot(context.Background(), snapshot.Request{Sources: []snapshot.SourceSpec{{Label: "m", Path: src}}, Time: at})
	if err != nil {
		t.Fatal(err)
	}
	return res.Snapshot
}

func children(t *testing.T, tr cfs.Tree, dir cfs.Node) map[string]cfs.Node {
	t.Helper()
	ns, err := tr.ReadDir(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]cfs.Node{}
	for _, n := range ns {
		out[n.Name] = n
	}
	return out
}

func TestTreeServesSnapshot(t *testing.T) {
	r := newRepo(t)
	src := source(t)
	take(t, r, src, time.Time{})
	tr := NewTree(r)
	ctx := context.Background()
	snaps, err := tr.Snapshots(ctx)
	if err != nil || len(snaps) != 1 || len(snaps[0].Sources) != 1 {
		t.Fatalf("snapshots %v %v", snaps, err)
	}
	// The host the snapshot recorded (the hostname by default) is what
	// the mount's hosts/<host>/ and per-host latest/ go by.
	if host, _ := os.Hostname(); snaps[0].Host != host || host == "" {
		t.Errorf("host %q, want the hostname %q", snaps[0].Host, host)
	}
	root := snaps[0].Sources[0].Root
	d := children(t, tr, root)["d"]
	if d.Mode&unix.S_IFMT != unix.S_IFDIR {
		t.Fatalf("d: mode %o", d.Mode)
	}
	// The link count is the source's, directories included.
	var st unix.Stat_t
	unix.Lstat(filepath.Join(src, "d"), &st)
	if d.Nlink != uint32(st.Nlink) || d.Nlink != 4 {
		t.Errorf("d: nlink %d, source %d", d.Nlink, st.Nlink)
	}
	kids := children(t, tr, d)
	if kids["hard1"].Ino != kids["hard2"].Ino || kids["hard1"].Nlink != 2 {
		t.Errorf("hardlinks: ino %d/%d nlink %d", kids["hard1"].Ino, kids["hard2"].Ino, kids["hard1"].Nlink)
	}
	if kids["a.bin"].Ino == kids["hard1"].Ino || kids["sub"].Ino == kids["sub2"].Ino {
		t.Error("distinct objects share an inode number")
	}
	// Stable: a second listing gives the same numbers.
	if again := children(t, tr, d); again["a.bin"].Ino != kids["a.bin"].Ino {
		t.Error("inode number changed between listings")
	}
	f, err := tr.Open(ctx, kids["a.bin"])
	if err != nil {
		t.Fatal(err)
	}
	views, done, err := f.Slices(ctx, 0, int(kids["a.bin"].Size))
	if err != nil {
		t.Fatal(err)
	}
	got := bytes.Join(views, nil)
	done()
	want, _ := os.ReadFile(filepath.Join(src, "d", "a.bin"))
	if !bytes.Equal(got, want) {
		t.Errorf("read %d bytes, want the file's %d", len(got), len(want))
	}
	if _, err := tr.Open(ctx, d); err == nil {
		t.Error("Open of a directory succeeded")
	}
}

// The order is the engine's: a snapshot committed last within a second is
// the last given, though its Time is earlier.
func TestTreeGivesCompareOrder(t *testing.T) {
	r := newRepo(t)
	src := source(t)
	sec := time.Date(2026, 11, 26, 2, 0, 0, 0, time.UTC)
	first := take(t, r, src, sec.Add(900*time.Millisecond))
	time.Sleep(2 * time.Millisecond)
	second := take(t, r, src, sec.Add(100*time.Millisecond))
	snaps, err := NewTree(r).Snapshots(context.Background())
	if err != nil || len(snaps) != 2 || snaps[0].ID != first.ID.String() || snaps[1].ID != second.ID.String() {
		t.Fatalf("order %v, %v; want %s then %s", snaps, err, first.ID.Short(), second.ID.Short())
	}
}

// A snapshot forgotten and pruned after fs listed it reads as gone (a
// directory: ErrNotExist) or stale (an open file: ESTALE), never as
// corrupt data.
func TestTreeForgottenSnapshot(t *testing.T) {
	r := newRepo(t)
	ctx := context.Background()
	src := source(t)
	s := take(t, r, src, time.Time{})
	tr := NewTree(r)
	snaps, _ := tr.Snapshots(ctx)
	root := snaps[0].Sources[0].Root
	d := children(t, tr, root)["d"]
	kids := children(t, tr, d)
	f, err := tr.Open(ctx, kids["a.bin"])
	if err != nil {
		t.Fatal(err)
	}
	// Another snapshot keeps nothing of the first: a different source.
	other := filepath.Join(t.TempDir(), "other")
	os.MkdirAll(other, 0o755)
	os.WriteFile(filepath.Join(other, "x"), []byte("x"), 0o644)
	if _, err := r.TakeSnapshot(ctx, snapshot.Request{Sources: []snapshot.SourceSpec{{Label: "o", Path: other}}}); err != nil {
		t.Fatal(err)
	}
	if err := r.Forget(ctx, []index.ID{s.ID}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Prune(ctx, false); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.ReadDir(ctx, kids["sub"]); !errors.Is(err, iofs.ErrNotExist) {
		t.Errorf("ReadDir in a forgotten snapshot: %v, want ErrNotExist", err)
	}
	if _, _, err := f.Slices(ctx, 0, 4096); !errors.Is(err, syscall.ESTALE) {
		t.Errorf("read of a file open in a forgotten snapshot: %v, want ESTALE", err)
	}
}

// Node.Ino is unique within a source of a snapshot only; fs mixes in the
// snapshot and label (one rule, one owner). So the same path in two
// snapshots has the same Node.Ino here, and fs tells them apart.
func TestInoIsPerSource(t *testing.T) {
	r := newRepo(t)
	src := source(t)
	take(t, r, src, time.Time{})
	os.WriteFile(filepath.Join(src, "d", "a.bin"), []byte("changed"), 0o644)
	take(t, r, src, time.Time{})
	tr := NewTree(r)
	snaps, err := tr.Snapshots(context.Background())
	if err != nil || len(snaps) != 2 {
		t.Fatal(err)
	}
	a := children(t, tr, children(t, tr, snaps[0].Sources[0].Root)["d"])["a.bin"]
	b := children(t, tr, children(t, tr, snaps[1].Sources[0].Root)["d"])["a.bin"]
	if a.Ino != b.Ino || a.Size == b.Size {
		t.Errorf("a.bin in two snapshots: ino %d/%d size %d/%d", a.Ino, b.Ino, a.Size, b.Size)
	}
}

// A store that cannot be reached (S3 gone: the dial's ECONNREFUSED in the
// error's chain) fails the read with an error fs answers EIO, not with the
// network's errno, which fs would hand to read(2) as it is; once the store
// answers again the same read returns the right bytes.
func TestStoreGoneIsNoErrno(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	if err := snapshot.Init(dir, snapshot.Options{}); err != nil {
		t.Fatal(err)
	}
	w, err := snapshot.Open(dir, snapshot.Options{})
	if err != nil {
		t.Fatal(err)
	}
	src := source(t)
	take(t, w, src, time.Time{})
	w.Close()
	var faulty *index.FaultyStore
	r, err := snapshot.Open(dir, snapshot.Options{WrapStore: func(s index.Store) index.Store {
		faulty = index.NewFaultyStore(s)
		return faulty
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	tr := NewTree(r)
	ctx := context.Background()
	snaps, err := tr.Snapshots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	d := children(t, tr, snaps[0].Sources[0].Root)["d"]
	a := children(t, tr, d)["a.bin"]
	f, err := tr.Open(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	gone := fmt.Errorf("s3store: get packs/x: %w: dial tcp: %w", index.ErrStoreUnavailable, syscall.ECONNREFUSED)
	faulty.SetFaults(index.Fault{Op: index.OpRead, Sticky: true, Prefix: "packs/", Err: gone})
	_, _, err = f.Slices(ctx, 0, 4096)
	var en syscall.Errno
	if err == nil || errors.As(err, &en) || !errors.Is(err, index.ErrStoreUnavailable) {
		t.Fatalf("read with the store gone: %v (errno %v); want ErrStoreUnavailable and no errno", err, en)
	}
	faulty.SetFaults()
	views, done, err := f.Slices(ctx, 0, 4096)
	if err != nil {
		t.Fatalf("read once the store is back: %v", err)
	}
	defer done()
	want, _ := os.ReadFile(filepath.Join(src, "d", "a.bin"))
	if got := bytes.Join(views, nil); !bytes.Equal(got, want[:4096]) {
		t.Fatal("wrong bytes once the store is back")
	}
}
