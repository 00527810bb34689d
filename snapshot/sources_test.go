package snapshot

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"citadelfs/internal/testutil"
)

func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for rel, content := range files {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// listTree lists every path under root (relative, slash-separated, dirs
// with a trailing slash), sorted.
func listTree(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		if fi.IsDir() {
			rel += "/"
		}
		out = append(out, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func snapAndRestore(t *testing.T, r *Repository, spec SourceSpec) (*Result, string) {
	t.Helper()
	res, err := r.TakeSnapshot(context.Background(), Request{Sources: []SourceSpec{spec}})
	if err != nil {
		t.Fatal(err)
	}
	target := t.TempDir()
	if _, err := r.Restore(context.Background(), res.Snapshot, nil, target, RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	return res, filepath.Join(target, spec.Label)
}

func TestSnapshotPathsAndGlobsKeepAbsolutePaths(t *testing.T) {
	r, _ := newRepo(t)
	host := t.TempDir() // stands for "/"
	writeFiles(t, host, map[string]string{
		"etc/fstab":              "UUID=1 / ext4\n",
		"etc/netplan/01.yaml":    "network: 1\n",
		"etc/netplan/02.yaml":    "network: 2\n",
		"etc/netplan/notes.txt":  "not matched\n",
		"etc/passwd":             "not listed\n",
		"home/u/.bashrc":         "alias x=y\n",
		"home/u/other":           "not listed\n",
		"etc/systemd/citadel-a":  "a",
		"etc/systemd/unrelated":  "b",
		"etc/systemd/citadel-b2": "b2",
	})
	old := time.Date(2024, 1, 2, 3, 4, 5, 6, time.UTC)
	if err := os.Chmod(filepath.Join(host, "etc"), 0o751); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(filepath.Join(host, "etc"), old, old); err != nil {
		t.Fatal(err)
	}
	spec := SourceSpec{Label: "system", Paths: []string{
		filepath.Join(host, "etc/fstab"),
		filepath.Join(host, "etc/netplan/*.yaml"),
		filepath.Join(host, "etc/systemd/citadel-*"),
		filepath.Join(host, "home/u/.bashrc"),
		filepath.Join(host, "etc/nothing-*.conf"),
	}}
	res, restored := snapAndRestore(t, r, spec)
	if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "nothing-*.conf matches nothing") {
		t.Fatalf("warnings %q, want one for the empty glob", res.Warnings)
	}
	src := res.Snapshot.Sources[0]
	if src.Path != "/" || len(src.Paths) != 5 {
		t.Fatalf("source path %q paths %q", src.Path, src.Paths)
	}
	under := filepath.Join(restored, host)
	got := listTree(t, under)
	want := []string{"etc/", "etc/fstab", "etc/netplan/", "etc/netplan/01.yaml", "etc/netplan/02.yaml",
		"etc/systemd/", "etc/systemd/citadel-a", "etc/systemd/citadel-b2", "home/", "home/u/", "home/u/.bashrc"}
	if !slices.Equal(got, want) {
		t.Fatalf("restored %q\nwant %q", got, want)
	}
	if b, _ := os.ReadFile(filepath.Join(under, "etc/fstab")); string(b) != "UUID=1 / ext4\n" {
		t.Fatalf("fstab restored as %q", b)
	}
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(under, "etc"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode&0o7777 != 0o751 || st.Mtim.Nano() != old.UnixNano() {
		t.Fatalf("intermediate etc/ restored mode %o mtime %d, want its real 751 and %d", st.Mode&0o7777, st.Mtim.Nano(), old.UnixNano())
	}
	// The file-change cache works for paths too: a second run reads nothing.
	res2, err := r.TakeSnapshot(context.Background(), Request{Sources: []SourceSpec{spec}})
	if err != nil {
		t.Fatal(err)
	}
	if rb := res2.Snapshot.Sources[0].Stats.ReadBytes; rb != 0 {
		t.Fatalf("second snapshot read %d bytes of unchanged files", rb)
	}
}

func TestSnapshotSingleFilePathIsKeptUnderItsPath(t *testing.T) {
	r, _ := newRepo(t)
	host := t.TempDir()
	writeFiles(t, host, map[string]string{"etc/fstab": "x"})
	res, restored := snapAndRestore(t, r, SourceSpec{Label: "fstab", Path: filepath.Join(host, "etc/fstab")})
	if len(res.Warnings) != 0 {
		t.Fatalf("warnings %q", res.Warnings)
	}
	if b, err := os.ReadFile(filepath.Join(restored, host, "etc/fstab")); err != nil || string(b) != "x" {
		t.Fatalf("restored %q, %v", b, err)
	}
}

func TestSnapshotPathsInsideAnotherAreSavedOnce(t *testing.T) {
	r, _ := newRepo(t)
	host := t.TempDir()
	writeFiles(t, host, map[string]string{"etc/a": "a", "etc/sub/b": "b"})
	res, restored := snapAndRestore(t, r, SourceSpec{Label: "s", Paths: []string{
		filepath.Join(host, "etc/sub/b"), filepath.Join(host, "etc"), filepath.Join(host, "etc/a")}})
	if got := listTree(t, filepath.Join(restored, host)); !slices.Equal(got, []string{"etc/", "etc/a", "etc/sub/", "etc/sub/b"}) {
		t.Fatalf("restored %q", got)
	}
	if f := res.Snapshot.Sources[0].Stats.Files; f != 2 {
		t.Fatalf("%d files counted, want 2", f)
	}
}

func TestSnapshotPathsAllMissingSkipsTheSource(t *testing.T) {
	r, _ := newRepo(t)
	host := t.TempDir()
	writeFiles(t, host, map[string]string{"keep/x": "x"})
	res, err := r.TakeSnapshot(context.Background(), Request{Sources: []SourceSpec{
		{Label: "keep", Path: filepath.Join(host, "keep")},
		{Label: "none", Paths: []string{filepath.Join(host, "no-*"), filepath.Join(host, "absent")}}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Snapshot.Sources) != 1 || len(res.Warnings) != 2 {
		t.Fatalf("sources %d warnings %q", len(res.Snapshot.Sources), res.Warnings)
	}
}

func TestSourceSpecValidate(t *testing.T) {
	for _, s := range []SourceSpec{
		{Label: "a"},
		{Label: "a", Paths: []string{"/etc/[x"}},
		{Label: "a", Path: "/x", Excludes: []string{"[bad"}},
		{Label: "a", Path: "/x", Excludes: []string{"/"}},
		{Label: "a", Path: "/x", Excludes: []string{"a/../b"}},
	} {
		if err := s.Validate(); err == nil {
			t.Errorf("%+v: no error", s)
		}
	}
	if _, err := (&Repository{}).TakeSnapshot(context.Background(), Request{Sources: []SourceSpec{{Label: "a", Path: "/x", Excludes: []string{"[bad"}}}}); err == nil {
		t.Fatal("TakeSnapshot took a bad exclude")
	}
}

func TestExcludeMatching(t *testing.T) {
	rules, err := compileExcludes([]string{"*.tmp", "/sub/build", "cache/", "**/deep/*.bin", "a/**/z", ".git"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		rel   string
		dir   bool
		wantX bool
	}{
		{"x.tmp", false, true},
		{"d/e/x.tmp", false, true},
		{"x.tmpl", false, false},
		{"sub/build", true, true},
		{"other/sub/build", true, false}, // anchored
		{"sub/build2", true, false},
		{"cache", true, true},
		{"m/cache", true, true},
		{"m/cache", false, false}, // dirs only
		{"deep/a.bin", false, true},
		{"q/r/deep/a.bin", false, true},
		{"q/deep/x/a.bin", false, false},
		{"a/z", true, true},
		{"a/b/c/z", false, true},
		{"b/a/z", false, false},
		{"p/.git", true, true},
		{"p/.github", true, false},
	} {
		if got := excluded(rules, c.rel, c.dir); got != c.wantX {
			t.Errorf("excluded(%q, dir=%v) = %v, want %v", c.rel, c.dir, got, c.wantX)
		}
	}
}

func TestSnapshotExcludes(t *testing.T) {
	r, _ := newRepo(t)
	src := t.TempDir()
	writeFiles(t, src, map[string]string{
		"keep.txt":          "k",
		"a.tmp":             "t",
		"sub/b.tmp":         "t",
		"sub/build/out.o":   "o",
		"x/sub/build/out.o": "o", // not anchored at the root: kept
		"models/w.bin":      "w",
		"models/ckpt/w.bin": "w",
	})
	res, restored := snapAndRestore(t, r, SourceSpec{Label: "d", Path: src,
		Excludes: []string{"*.tmp", "sub/build", "/models/**/*.bin"}})
	got := listTree(t, restored)
	want := []string{"keep.txt", "models/", "models/ckpt/", "sub/", "x/", "x/sub/", "x/sub/build/", "x/sub/build/out.o"}
	if !slices.Equal(got, want) {
		t.Fatalf("restored %q\nwant %q", got, want)
	}
	if n := res.Snapshot.Sources[0].Stats.Excluded; n != 5 {
		t.Fatalf("excluded count %d, want 5", n)
	}
	// For a source of paths the root is "/": patterns with a slash are
	// absolute paths.
	res, restored = snapAndRestore(t, r, SourceSpec{Label: "p", Paths: []string{filepath.Join(src, "sub"), filepath.Join(src, "models")},
		Excludes: []string{filepath.Join(src, "models/ckpt")}})
	got = listTree(t, filepath.Join(restored, src))
	want = []string{"models/", "models/w.bin", "sub/", "sub/b.tmp", "sub/build/", "sub/build/out.o"}
	if !slices.Equal(got, want) {
		t.Fatalf("paths source restored %q\nwant %q", got, want)
	}
}

func TestSnapshotExcludeCaches(t *testing.T) {
	r, _ := newRepo(t)
	src := t.TempDir()
	writeFiles(t, src, map[string]string{
		"data.txt":            "d",
		"cache/CACHEDIR.TAG":  cacheTagSignature + "\n# made by a test\n",
		"cache/blob":          "big",
		"cache/sub/more":      "more",
		"fake/CACHEDIR.TAG":   "Signature: not the right one",
		"fake/blob":           "kept",
		"short/CACHEDIR.TAG":  "Signature",
		"short/blob":          "kept",
		"linked/blob":         "kept",
		"linked/CACHEDIR.TAG": "",
	})
	// A symlink named CACHEDIR.TAG pointing at a valid tag is no tag.
	os.Remove(filepath.Join(src, "linked/CACHEDIR.TAG"))
	if err := os.Symlink("../cache/CACHEDIR.TAG", filepath.Join(src, "linked/CACHEDIR.TAG")); err != nil {
		t.Fatal(err)
	}
	_, restored := snapAndRestore(t, r, SourceSpec{Label: "d", Path: src, ExcludeCaches: true})
	got := listTree(t, restored)
	want := []string{"cache/", "cache/CACHEDIR.TAG", "data.txt", "fake/", "fake/CACHEDIR.TAG", "fake/blob",
		"linked/", "linked/CACHEDIR.TAG", "linked/blob", "short/", "short/CACHEDIR.TAG", "short/blob"}
	if !slices.Equal(got, want) {
		t.Fatalf("restored %q\nwant %q", got, want)
	}
	// Without the flag the cache is saved.
	_, restored = snapAndRestore(t, r, SourceSpec{Label: "e", Path: src})
	if _, err := os.Stat(filepath.Join(restored, "cache/sub/more")); err != nil {
		t.Fatal(err)
	}
}

func TestSnapshotOneFileSystem(t *testing.T) {
	testutil.NeedRoot(t, "to mount a tmpfs")
	r, _ := newRepo(t)
	src := t.TempDir()
	writeFiles(t, src, map[string]string{"top.txt": "t", "mnt/.keep": "", "bind/.keep": "", "other/x": "x"})
	mnt := filepath.Join(src, "mnt")
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m,mode=0710"); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
	writeFiles(t, mnt, map[string]string{"on-tmpfs": "tmp"})
	// A bind mount of a directory on another file system (a second tmpfs).
	other := t.TempDir()
	if err := unix.Mount("tmpfs", other, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(other, unix.MNT_DETACH) })
	writeFiles(t, other, map[string]string{"bound": "b"})
	bind := filepath.Join(src, "bind")
	if err := unix.Mount(other, bind, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(bind, unix.MNT_DETACH) })

	_, restored := snapAndRestore(t, r, SourceSpec{Label: "d", Path: src, OneFileSystem: true})
	got := listTree(t, restored)
	want := []string{"bind/", "mnt/", "other/", "other/x", "top.txt"}
	if !slices.Equal(got, want) {
		t.Fatalf("restored %q\nwant %q", got, want)
	}
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(restored, "mnt"), &st); err != nil || st.Mode&0o7777 != 0o710 {
		t.Fatalf("mount point restored mode %o (%v), want the tmpfs root's 710", st.Mode&0o7777, err)
	}
	// Without the flag both are crossed.
	_, restored = snapAndRestore(t, r, SourceSpec{Label: "e", Path: src})
	for _, p := range []string{"mnt/on-tmpfs", "bind/bound"} {
		if _, err := os.Stat(filepath.Join(restored, p)); err != nil {
			t.Fatal(err)
		}
	}
	// A root given on another file system counts as its own: it is walked.
	_, restored = snapAndRestore(t, r, SourceSpec{Label: "f", Paths: []string{mnt, filepath.Join(src, "top.txt")}, OneFileSystem: true})
	if _, err := os.Stat(filepath.Join(restored, mnt, "on-tmpfs")); err != nil {
		t.Fatal(err)
	}
}
