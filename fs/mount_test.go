package fs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"citadelfs/internal/testutil"
)

// mountFixture mounts the fixture tree for real. It needs root (mount(2)
// directly, no fusermount) and /dev/fuse; elsewhere it skips.
func mountFixture(t *testing.T, f *fixture) string {
	t.Helper()
	dir, _ := mountFixtureServer(t, f)
	return dir
}

func mountFixtureServer(t *testing.T, f *fixture) (string, *Server) {
	t.Helper()
	testutil.NeedFUSE(t)
	dir := t.TempDir()
	srv, err := Mount(dir, Options{
		Tree:     f.tree,
		Status:   &fakeStatus{files: []string{"repo"}},
		Location: time.UTC,
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		var err error
		for range 20 {
			if err = srv.Unmount(); err == nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err != nil {
			t.Errorf("unmount: %v", err)
			unix.Unmount(dir, unix.MNT_DETACH)
		}
		// Every File the kernel opened is closed once it has released
		// the handles (asynchronously, so allow it a moment).
		deadline := time.Now().Add(2 * time.Second)
		for f.tree.opens.Load() != f.tree.closes.Load() && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if o, c := f.tree.opens.Load(), f.tree.closes.Load(); o != c {
			t.Errorf("%d files opened, %d closed: handles leaked", o, c)
		}
	})
	return dir, srv
}

func lstat(t *testing.T, p string) syscall.Stat_t {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func TestMountFaithful(t *testing.T) {
	f := newFixture()
	mnt := mountFixture(t, f)

	ents, err := os.ReadDir(mnt)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if want := []string{"2026-11-26", "hosts", "latest", "snapshots", "status", "tags"}; !slices.Equal(got, want) {
		t.Errorf("root = %q, want %q", got, want)
	}

	st := lstat(t, filepath.Join(mnt, "latest/configs/secret.env"))
	n := f.secret.Node
	if st.Mode != n.Mode || st.Uid != n.UID || st.Gid != n.GID || st.Size != n.Size || st.Nlink != 1 {
		t.Errorf("stat = %+v", st)
	}
	if st.Mtim.Nano() != n.Mtime.UnixNano() || st.Atim.Nano() != n.Atime.UnixNano() || st.Ctim.Nano() != n.Ctime.UnixNano() {
		t.Errorf("times %v %v %v", st.Mtim, st.Atim, st.Ctim)
	}
	sp := lstat(t, filepath.Join(mnt, "latest/configs/sparse.img"))
	if sp.Blocks != 8 || sp.Size != 3<<20 {
		t.Errorf("sparse: blocks %d size %d", sp.Blocks, sp.Size)
	}

	a := lstat(t, filepath.Join(mnt, "latest/models/sub/a.bin"))
	b := lstat(t, filepath.Join(mnt, "latest/models/sub/b.bin"))
	if a.Ino != b.Ino || a.Nlink != 2 {
		t.Errorf("hardlinks: ino %d/%d nlink %d", a.Ino, b.Ino, a.Nlink)
	}
	if again := lstat(t, filepath.Join(mnt, "latest/models/sub/a.bin")); again.Ino != a.Ino {
		t.Error("inode number changed between lookups")
	}
	if s := lstat(t, filepath.Join(mnt, "snapshots/2026-11-26T02:00:00/models/sub/a.bin")); s.Ino != a.Ino {
		t.Error("same snapshot file has two inode numbers")
	}

	if target, err := os.Readlink(filepath.Join(mnt, "latest/models/current")); err != nil || target != "weights.safetensors" {
		t.Errorf("readlink = %q %v", target, err)
	}

	secret := filepath.Join(mnt, "latest/configs/secret.env")
	sz, err := unix.Getxattr(secret, "user.checksum", nil)
	if err != nil || sz != 11 {
		t.Errorf("getxattr size = %d %v", sz, err)
	}
	val := make([]byte, 64)
	if sz, err = unix.Getxattr(secret, "user.checksum", val); err != nil || string(val[:sz]) != "sha256:abcd" {
		t.Errorf("getxattr = %q %v", val[:sz], err)
	}
	if _, err = unix.Getxattr(secret, "user.checksum", make([]byte, 3)); err != unix.ERANGE {
		t.Errorf("getxattr small buffer = %v", err)
	}
	if _, err = unix.Getxattr(secret, "user.none", val); err != unix.ENODATA {
		t.Errorf("missing xattr = %v", err)
	}
	list := make([]byte, 64)
	if sz, err = unix.Listxattr(secret, list); err != nil || string(list[:sz]) != "user.a\x00user.checksum\x00" {
		t.Errorf("listxattr = %q %v", list[:sz], err)
	}

	data, err := os.ReadFile(filepath.Join(mnt, "latest/models/weights.safetensors"))
	if err != nil || !bytes.Equal(data, f.bigData) {
		t.Errorf("content differs (%v)", err)
	}
}

func TestMountSparseSeek(t *testing.T) {
	f := newFixture()
	mnt := mountFixture(t, f)
	fd, err := unix.Open(filepath.Join(mnt, "latest/configs/sparse.img"), unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	for _, c := range []struct {
		off    int64
		whence int
		want   int64
		err    error
	}{
		{0, unix.SEEK_DATA, 1 << 20, nil},
		{0, unix.SEEK_HOLE, 0, nil},
		{1 << 20, unix.SEEK_HOLE, 1<<20 + 4096, nil},
		{1<<20 + 4096, unix.SEEK_DATA, 0, unix.ENXIO},
		{3 << 20, unix.SEEK_HOLE, 0, unix.ENXIO},
	} {
		got, err := unix.Seek(fd, c.off, c.whence)
		if err != c.err || (err == nil && got != c.want) {
			t.Errorf("lseek(%d, %d) = %d %v, want %d %v", c.off, c.whence, got, err, c.want, c.err)
		}
	}
}

func TestMountReadOnly(t *testing.T) {
	f := newFixture()
	mnt := mountFixture(t, f)
	p := filepath.Join(mnt, "latest/models/sub/a.bin")
	for name, err := range map[string]error{
		"open for writing": func() error { _, err := os.OpenFile(p, os.O_WRONLY, 0); return err }(),
		"truncate":         os.Truncate(p, 0),
		"create":           os.WriteFile(filepath.Join(mnt, "latest/models/new"), nil, 0o644),
		"mkdir":            os.Mkdir(filepath.Join(mnt, "latest/models/d"), 0o755),
		"mkdir at root":    os.Mkdir(filepath.Join(mnt, "x"), 0o755),
		"remove":           os.Remove(p),
		"rename":           os.Rename(p, p+".x"),
		"chmod":            os.Chmod(p, 0o777),
		"chown":            os.Lchown(p, 1, 1),
		"symlink":          os.Symlink("x", filepath.Join(mnt, "latest/models/l")),
		"setxattr":         unix.Setxattr(p, "user.x", []byte("1"), 0),
		"removexattr":      unix.Removexattr(filepath.Join(mnt, "latest/configs/secret.env"), "user.a"),
		"utimes":           os.Chtimes(p, time.Now(), time.Now()),
		"status write":     os.WriteFile(filepath.Join(mnt, "status/repo"), []byte("x"), 0o644),
	} {
		if !errors.Is(err, syscall.EROFS) {
			t.Errorf("%s: %v, want EROFS", name, err)
		}
	}
	mounts, _ := os.ReadFile("/proc/self/mounts")
	for _, line := range strings.Split(string(mounts), "\n") {
		if fields := strings.Fields(line); len(fields) > 3 && fields[1] == mnt {
			for _, opt := range []string{"ro", "nosuid", "nodev", "default_permissions"} {
				if !slices.Contains(strings.Split(fields[3], ","), opt) {
					t.Errorf("mount options %s lack %s", fields[3], opt)
				}
			}
			if fields[0] != "citadelfs" || fields[2] != "fuse.citadelfs" {
				t.Errorf("mount source/type = %s %s", fields[0], fields[2])
			}
			if !slices.Contains(strings.Split(fields[3], ","), "max_read=1048576") {
				t.Errorf("mount options %s: want max_read=1048576", fields[3])
			}
		}
	}
}

func TestMountReadaheadWindow(t *testing.T) {
	f := newFixture()
	mnt := mountFixture(t, f)
	var st unix.Stat_t
	if err := unix.Stat(mnt, &st); err != nil {
		t.Fatal(err)
	}
	p := fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", unix.Major(st.Dev), unix.Minor(st.Dev))
	data, err := os.ReadFile(p)
	if err != nil {
		t.Skipf("no bdi for the mount: %v", err)
	}
	if strings.TrimSpace(string(data)) != "1024" {
		t.Errorf("%s = %s, want 1024 (1 MiB reads)", p, data)
	}
}

// Concurrent readers of one big file, sequential and random, all through
// the kernel. Run with -race. mmap is tested from another process in
// tests/: a page fault on a FUSE mapping blocks its thread where the Go
// runtime cannot preempt it, so the next stop-the-world GC in a process
// that also serves the mount deadlocks (go-fuse's deadlock note 3).
func TestMountConcurrentReaders(t *testing.T) {
	f := newFixture()
	mnt := mountFixture(t, f)
	p := filepath.Join(mnt, "latest/models/weights.safetensors")
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fh, err := os.Open(p)
			if err != nil {
				t.Error(err)
				return
			}
			defer fh.Close()
			if g == 0 {
				data, err := io.ReadAll(fh)
				if err != nil || !bytes.Equal(data, f.bigData) {
					t.Errorf("sequential read differs (%v)", err)
				}
				return
			}
			rng := rand.New(rand.NewPCG(uint64(g), 2))
			buf := make([]byte, 300<<10)
			for range 100 {
				off := rng.Int64N(int64(len(f.bigData)))
				n, err := fh.ReadAt(buf[:1+rng.IntN(len(buf))], off)
				if err != nil && err != io.EOF {
					t.Error(err)
					return
				}
				if !bytes.Equal(buf[:n], f.bigData[off:off+int64(n)]) {
					t.Errorf("reader %d: wrong bytes at %d", g, off)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestMountNewSnapshotAndStatus(t *testing.T) {
	f := newFixture()
	mnt, srv := mountFixtureServer(t, f)
	if _, err := os.Stat(filepath.Join(mnt, "latest/configs/secret.env")); err != nil {
		t.Fatal(err)
	}
	f.tree.add(snap("s2", at("2026-11-27T08:00:00Z"), nil, map[string]*fnode{"configs": dir("configs", file("new.yaml", []byte("fresh")))}))
	// At once after Refresh (the daemon calls it once a snapshot is
	// committed): no remount, no waiting for a cache to expire.
	srv.Refresh()
	if data, err := os.ReadFile(filepath.Join(mnt, "latest/configs/new.yaml")); err != nil || string(data) != "fresh" {
		t.Errorf("new snapshot in latest/: %q %v", data, err)
	}
	if _, err := os.Stat(filepath.Join(mnt, "latest/configs/secret.env")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("latest/ still shows the old snapshot: %v", err)
	}
	if _, err := os.Stat(filepath.Join(mnt, "2026-11-27/configs/new.yaml")); err != nil {
		t.Error(err)
	}
	// Without Refresh, the server's own watch shows it within a second.
	f.tree.add(snap("s3", at("2026-11-27T09:00:00Z"), nil, map[string]*fnode{"configs": dir("configs", file("newer.yaml", []byte("fresher")))}))
	deadline := time.Now().Add(time.Second)
	for {
		data, err := os.ReadFile(filepath.Join(mnt, "latest/configs/newer.yaml"))
		if err == nil && string(data) == "fresher" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("s3 not in latest/ within a second: %q %v", data, err)
		}
		time.Sleep(20 * time.Millisecond)
	}

	one, err := os.ReadFile(filepath.Join(mnt, "status/repo"))
	two, err2 := os.ReadFile(filepath.Join(mnt, "status/repo"))
	if err != nil || err2 != nil || !strings.HasPrefix(string(one), "repo render") || string(one) == string(two) {
		t.Errorf("status/repo: %q %q (%v %v): want a fresh render per open", one, two, err, err2)
	}
}

// Files lend their bytes and fs hands the views to the kernel: whole-file
// and random reads return the file's bytes, a failing File is EIO, and
// every lent set of views is handed back.
func TestMountLentViews(t *testing.T) {
	f := newFixture()
	mnt := mountFixture(t, f)
	got, err := os.ReadFile(filepath.Join(mnt, "latest/models/weights.safetensors"))
	if err != nil || !bytes.Equal(got, f.bigData) {
		t.Fatalf("read %d bytes, %v; want the file's %d", len(got), err, len(f.bigData))
	}
	fh, err := os.Open(filepath.Join(mnt, "snapshots/2026-11-26T02:00:00/models/weights.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 5))
	buf := make([]byte, 300000)
	for range 50 {
		off := rng.Int64N(int64(len(f.bigData)))
		n, err := fh.ReadAt(buf, off)
		if want := min(len(buf), len(f.bigData)-int(off)); n != want || (err != nil && !errors.Is(err, io.EOF)) || !bytes.Equal(buf[:n], f.bigData[off:off+int64(n)]) {
			t.Fatalf("pread at %d: %d bytes, %v", off, n, err)
		}
	}
	fh.Close()
	sparse, err := os.ReadFile(filepath.Join(mnt, "latest/configs/sparse.img"))
	if err != nil || !bytes.Equal(sparse, f.sparse.data) {
		t.Errorf("sparse.img: %d bytes, %v", len(sparse), err)
	}
	if _, err := os.ReadFile(filepath.Join(mnt, "latest/models/broken.bin")); !errors.Is(err, syscall.EIO) {
		t.Errorf("failing File read = %v, want EIO", err)
	}
	if f.tree.lent.Load() == 0 {
		t.Fatal("no read went through Slices")
	}
	deadline := time.Now().Add(2 * time.Second)
	for f.tree.returned.Load() != f.tree.lent.Load() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if l, r := f.tree.lent.Load(), f.tree.returned.Load(); l != r {
		t.Errorf("%d sets of views lent, %d released", l, r)
	}
}

func TestMountCorruptIsEIO(t *testing.T) {
	f := newFixture()
	mnt := mountFixture(t, f)
	_, err := os.ReadFile(filepath.Join(mnt, "latest/models/broken.bin"))
	if !errors.Is(err, syscall.EIO) {
		t.Errorf("corrupt file read = %v, want EIO", err)
	}
}
