package snapshot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"citadelfs/index"
	"citadelfs/internal/testutil"
)

// makeSource writes a small tree with every edge case a restore must keep.
func makeSource(t *testing.T, dir string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	big := make([]byte, 3<<20+17)
	for i := range big {
		big[i] = byte(r.Uint32())
	}
	must(os.MkdirAll(filepath.Join(dir, "sub", "deep"), 0o755))
	must(os.MkdirAll(filepath.Join(dir, "empty-dir"), 0o750))
	must(os.WriteFile(filepath.Join(dir, "big.bin"), big, 0o644))
	must(os.WriteFile(filepath.Join(dir, "sub", "text.yaml"), bytes.Repeat([]byte("key: value\n"), 1000), 0o640))
	must(os.WriteFile(filepath.Join(dir, "secret.env"), []byte("TOKEN=x\n"), 0o600))
	must(os.WriteFile(filepath.Join(dir, "empty"), nil, 0o644))
	must(os.WriteFile(filepath.Join(dir, "sub", "deep", "odd \xff\x01 name"), []byte("odd"), 0o644))
	must(os.Symlink("sub/text.yaml", filepath.Join(dir, "link")))
	must(os.Symlink("/nonexistent", filepath.Join(dir, "dangling")))
	must(os.WriteFile(filepath.Join(dir, "hl-a"), []byte("shared"), 0o644))
	must(os.Link(filepath.Join(dir, "hl-a"), filepath.Join(dir, "sub", "hl-b")))
	must(unix.Mkfifo(filepath.Join(dir, "fifo"), 0o644))
	f, err := os.Create(filepath.Join(dir, "sparse.img"))
	must(err)
	_, err = f.WriteAt([]byte("head"), 0)
	must(err)
	_, err = f.WriteAt(bytes.Repeat([]byte("x"), 4096), 64<<20)
	must(err)
	must(f.Truncate(80 << 20))
	must(f.Close())
	if err := unix.Setxattr(filepath.Join(dir, "big.bin"), "user.citadel", []byte("v1"), 0); err != nil {
		t.Logf("xattrs not supported here: %v", err)
	}
	must(os.Chown(filepath.Join(dir, "secret.env"), 1234, 5678))
	old := time.Date(2025, 3, 4, 5, 6, 7, 123456789, time.UTC)
	must(os.Chtimes(filepath.Join(dir, "sub", "text.yaml"), old, old))
}

type meta struct {
	Mode      uint32
	UID, GID  uint32
	Size      int64
	Mtime     int64
	Nlink     uint64
	Target    string
	Xattr     string
	Blocks    int64
	SameInoAs string
}

// snapshotMeta returns path -> metadata for a tree, with hardlink groups
// expressed as the first path of each group.
func treeMeta(t *testing.T, root string) map[string]meta {
	t.Helper()
	out := map[string]meta{}
	inos := map[uint64]string{}
	var paths []string
	filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
		return nil
	})
	sort.Strings(paths)
	for _, p := range paths {
		rel, _ := filepath.Rel(root, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			t.Fatal(err)
		}
		m := meta{Mode: st.Mode, UID: st.Uid, GID: st.Gid, Mtime: st.Mtim.Nano(), Nlink: uint64(st.Nlink)}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			m.Size = st.Size
		}
		if rel == "." {
			m.Mtime = 0 // the target root is created by the restore, not restored itself
		}
		if st.Mode&unix.S_IFMT == unix.S_IFLNK {
			m.Target, _ = os.Readlink(p)
		} else {
			buf := make([]byte, 64)
			if n, err := unix.Getxattr(p, "user.citadel", buf); err == nil {
				m.Xattr = string(buf[:n])
			}
		}
		if st.Mode&unix.S_IFMT == unix.S_IFREG {
			m.Blocks = st.Blocks / 2048 // MiB granularity: holes must stay holes
			if st.Nlink > 1 {
				if first, ok := inos[st.Ino]; ok {
					m.SameInoAs = first
				} else {
					inos[st.Ino] = rel
				}
			}
		}
		out[rel] = m
	}
	return out
}

func compareTrees(t *testing.T, want, got string) {
	t.Helper()
	a, b := treeMeta(t, want), treeMeta(t, got)
	for p, ma := range a {
		mb, ok := b[p]
		if !ok {
			t.Errorf("%s missing after restore", p)
			continue
		}
		if ma != mb {
			t.Errorf("%s: metadata differs:\n want %+v\n got  %+v", p, ma, mb)
		}
		if ma.Mode&unix.S_IFMT == unix.S_IFREG {
			x, _ := os.ReadFile(filepath.Join(want, p))
			y, _ := os.ReadFile(filepath.Join(got, p))
			if !bytes.Equal(x, y) {
				t.Errorf("%s: contents differ", p)
			}
		}
	}
	for p := range b {
		if _, ok := a[p]; !ok {
			t.Errorf("%s appeared after restore", p)
		}
	}
}

func newRepo(t *testing.T) (*Repository, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "repo")
	if err := Init(dir, Options{}); err != nil {
		t.Fatal(err)
	}
	r, err := Open(dir, Options{PackSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, dir
}

func TestSnapshotRestoreRoundTrip(t *testing.T) {
	testutil.NeedRoot(t, "to chown")
	ctx := context.Background()
	src := t.TempDir()
	makeSource(t, src)
	r, _ := newRepo(t)
	res, err := r.TakeSnapshot(ctx, Request{Sources: []SourceSpec{{Label: "data", Path: src}}, Tags: []string{"daily"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Warnings) != 0 {
		t.Fatalf("warnings: %v", res.Warnings)
	}

	// The unchanged second snapshot (taken before anything reads the source
	// and moves its atimes) reads nothing and stores nothing new.
	res2, err := r.TakeSnapshot(ctx, Request{Sources: []SourceSpec{{Label: "data", Path: src}}})
	if err != nil {
		t.Fatal(err)
	}
	st := res2.Snapshot.Sources[0].Stats
	if st.ReadBytes != 0 || st.NewBytes != 0 {
		t.Fatalf("unchanged re-snapshot read %d and stored %d new bytes", st.ReadBytes, st.NewBytes)
	}
	if res2.Snapshot.Sources[0].Tree != res.Snapshot.Sources[0].Tree {
		t.Fatalf("unchanged tree got a new id")
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
}

func TestCorruptPackIsCaughtNeverWrongBytes(t *testing.T) {
	ctx := context.Background()
	r, dir := newRepo(t)
	_, data, res := snapshotRandomFile(t, r, "f.bin", 2<<20, 5)
	// Flip one byte in the middle of the largest pack (the data).
	packs, _ := index.ListPackFiles(dir)
	sort.Slice(packs, func(i, j int) bool { return packs[i].Size > packs[j].Size })
	p := index.PackPath(dir, packs[0].ID)
	b, _ := os.ReadFile(p)
	b[len(b)/2] ^= 0x40
	os.WriteFile(p, b, 0o600)
	r.cache = newBlobCache(64 << 20)

	rep, err := r.Check(ctx, CheckOptions{ReadData: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || len(rep.Affected) == 0 {
		t.Fatalf("check --read-data missed a flipped byte: %+v", rep)
	}
	out := t.TempDir()
	_, err = r.Restore(ctx, res.Snapshot, nil, out, RestoreOptions{})
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("restore of corrupt data: err = %v, want ErrCorrupt", err)
	}
	if _, err := os.Stat(filepath.Join(out, "d", "f.bin")); err == nil {
		t.Fatal("a file with corrupt data was left in the target")
	}
	n, _ := r.Resolve(ctx, res.Snapshot, "d/f.bin")
	fr := r.OpenFile(n)
	buf := make([]byte, len(data))
	if _, err := fr.ReadAt(ctx, buf, 0); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("ReadAt over corrupt chunk: %v", err)
	}
	if views, _, err := fr.Slices(ctx, 0, len(data)); !errors.Is(err, ErrCorrupt) || views != nil {
		t.Fatalf("Slices over corrupt chunk: %d views, %v", len(views), err)
	}
}

func TestRebuildIndexRestoresIdentically(t *testing.T) {
	ctx := context.Background()
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "a"), bytes.Repeat([]byte("abc"), 100000), 0o644)
	r, dir := newRepo(t)
	res, err := r.TakeSnapshot(ctx, Request{Sources: []SourceSpec{{Label: "d", Path: src}}})
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	os.RemoveAll(filepath.Join(dir, "index"))
	rr, err := index.RebuildIndex(dir, index.Options{})
	if err != nil || rr.Snapshots != 1 || len(rr.Damaged) != 0 {
		t.Fatalf("rebuild: %+v %v", rr, err)
	}
	r2, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	s, err := r2.FindSnapshot(res.Snapshot.ID.Short())
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if _, err := r2.Restore(ctx, s, nil, out, RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(filepath.Join(out, "d", "a"))
	if !bytes.Equal(got, bytes.Repeat([]byte("abc"), 100000)) {
		t.Fatal("restored bytes differ after index rebuild")
	}
}

func TestForgetPruneReclaims(t *testing.T) {
	ctx := context.Background()
	r, dir := newRepo(t)
	src, data, s1 := snapshotRandomFile(t, r, "f", 3<<20, 7)
	fillRandom(data, 8)
	os.WriteFile(filepath.Join(src, "f"), data, 0o644)
	s2, err := r.TakeSnapshot(ctx, Request{Sources: []SourceSpec{{Label: "d", Path: src}}})
	if err != nil {
		t.Fatal(err)
	}
	before := dirSize(dir)
	if err := r.Forget(ctx, []index.ID{s1.Snapshot.ID}); err != nil {
		t.Fatal(err)
	}
	pr, err := r.Prune(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if pr.BytesFreed < 2<<20 {
		t.Fatalf("prune freed only %d bytes", pr.BytesFreed)
	}
	if after := dirSize(dir); after >= before-(2<<20) {
		t.Fatalf("repository %d -> %d bytes after prune", before, after)
	}
	rep, err := r.Check(ctx, CheckOptions{ReadData: true})
	if err != nil || !rep.OK() || rep.Snapshots != 1 {
		t.Fatalf("check after prune: %v %+v", err, rep)
	}
	out := t.TempDir()
	if _, err := r.Restore(ctx, s2.Snapshot, nil, out, RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(filepath.Join(out, "d", "f"))
	if !bytes.Equal(got, data) {
		t.Fatal("surviving snapshot restores wrong bytes after prune")
	}
}

func dirSize(dir string) int64 {
	var n int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

func TestUnreadableFileWarnsAndCompletes(t *testing.T) {
	ctx := context.Background()
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "ok"), []byte("fine"), 0o644)
	// A FIFO with no writer would block a naive reader; a directory we
	// cannot list (as root, use a path that vanishes) exercises the warning.
	r, _ := newRepo(t)
	res, err := r.TakeSnapshot(ctx, Request{Sources: []SourceSpec{{Label: "d", Path: src}, {Label: "gone", Path: filepath.Join(src, "missing")}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Warnings) != 1 || len(res.Snapshot.Sources) != 1 {
		t.Fatalf("warnings %v, sources %d", res.Warnings, len(res.Snapshot.Sources))
	}
}

func TestFileReaderHolesAndRanges(t *testing.T) {
	ctx := context.Background()
	src := t.TempDir()
	f, _ := os.Create(filepath.Join(src, "s"))
	f.WriteAt([]byte("hello"), 10<<20)
	f.Truncate(12 << 20)
	f.Close()
	r, _ := newRepo(t)
	res, err := r.TakeSnapshot(ctx, Request{Sources: []SourceSpec{{Label: "d", Path: src}}})
	if err != nil {
		t.Fatal(err)
	}
	n, err := r.Resolve(ctx, res.Snapshot, "d/s")
	if err != nil {
		t.Fatal(err)
	}
	if len(n.Content) != 1 {
		t.Fatalf("sparse file stored %d chunks, want 1 (holes are not data)", len(n.Content))
	}
	fr := r.OpenFile(n)
	buf := make([]byte, 10)
	k, err := fr.ReadAt(ctx, buf, 10<<20-5)
	if err != nil || k != 10 || string(buf) != "\x00\x00\x00\x00\x00hello" {
		t.Fatalf("read across hole/data: %q %v", buf[:k], err)
	}
	k, err = fr.ReadAt(ctx, buf, 12<<20-3)
	if err != io.EOF || k != 3 {
		t.Fatalf("read at end: %d %v", k, err)
	}
}

func fillRandom(b []byte, seed uint64) {
	r := rand.New(rand.NewPCG(seed, seed))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
}

// Prune walks packs on disk, so a pack no index entry refers to (a killed
// writer's) is reclaimed rather than leaked.
func TestPruneReclaimsUnindexedPack(t *testing.T) {
	ctx := context.Background()
	r, dir := newRepo(t)
	pw, err := index.NewPackWriter(dir)
	if err != nil {
		t.Fatal(err)
	}
	junk := make([]byte, 1<<20)
	fillRandom(junk, 11)
	pw.Add(index.DataBlob, 0, index.Hash(junk), junk, len(junk))
	if _, _, err := pw.Finish(); err != nil {
		t.Fatal(err)
	}
	rep, err := r.Check(ctx, CheckOptions{})
	if err != nil || !rep.OK() || len(rep.Notes) != 1 {
		t.Fatalf("check: %v problems %v notes %v", err, rep.Problems, rep.Notes)
	}
	res, err := r.Prune(ctx, false)
	if err != nil || res.PacksDeleted != 1 {
		t.Fatalf("prune: %+v %v", res, err)
	}
	if packs, _ := index.ListPackFiles(dir); len(packs) != 0 {
		t.Fatalf("%d packs left", len(packs))
	}
}

// snapshotRandomFile snapshots a source (label "d") holding one file of
// size random bytes and returns the source dir, the bytes and the result.
func snapshotRandomFile(t *testing.T, r *Repository, name string, size int, seed uint64) (string, []byte, *Result) {
	t.Helper()
	src := t.TempDir()
	data := make([]byte, size)
	fillRandom(data, seed)
	if err := os.WriteFile(filepath.Join(src, name), data, 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := r.TakeSnapshot(context.Background(), Request{Sources: []SourceSpec{{Label: "d", Path: src}}})
	if err != nil {
		t.Fatal(err)
	}
	return src, data, res
}

// The check record keeps the first problem, so a check of the same damage
// must report problems in the same order each time.
func TestCheckReportsDamageInStableOrder(t *testing.T) {
	ctx := context.Background()
	r, dir := newRepo(t)
	for i := range 4 {
		snapshotRandomFile(t, r, fmt.Sprintf("f%d.bin", i), 256<<10, uint64(10+i))
	}
	packs, _ := index.ListPackFiles(dir)
	if len(packs) < 4 {
		t.Fatalf("want at least 4 packs to damage, have %d", len(packs))
	}
	for _, p := range packs {
		if err := os.Remove(index.PackPath(dir, p.ID)); err != nil {
			t.Fatal(err)
		}
	}
	var first []string
	for i := range 8 {
		rep, err := r.Check(ctx, CheckOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Problems) < len(packs) {
			t.Fatalf("check found %d problems for %d missing packs: %q", len(rep.Problems), len(packs), rep.Problems)
		}
		if i == 0 {
			first = rep.Problems
			continue
		}
		if !slices.Equal(rep.Problems, first) {
			t.Fatalf("problems changed order between checks:\n%q\n%q", first, rep.Problems)
		}
	}
}

// A new repository, with nothing to read back, checks clean with any
// subset (it used to panic on "at least one pack").
func TestCheckEmptyRepository(t *testing.T) {
	r, _ := newRepo(t)
	for _, o := range []CheckOptions{{}, {ReadData: true}, {ReadData: true, Subset: 0.1}} {
		rep, err := r.Check(context.Background(), o)
		if err != nil || !rep.OK() || rep.PacksRead != 0 {
			t.Fatalf("check %+v of an empty repository: %+v, %v", o, rep, err)
		}
	}
}
