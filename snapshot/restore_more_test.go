package snapshot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A restore stopped half way (Ctrl-C, a full disk) leaves whole files or
// none in the target, never a partly written one.
func TestRestoreCancelledLeavesNoPartialFile(t *testing.T) {
	ctx := context.Background()
	r, _ := newRepo(t)
	src := t.TempDir()
	for i := range 8 {
		writeRandom(t, filepath.Join(src, fmt.Sprintf("f%d", i)), 4<<20, uint64(200+i))
	}
	res, err := r.TakeSnapshot(ctx, Request{Sources: []SourceSpec{{Label: "d", Path: src}}})
	if err != nil {
		t.Fatal(err)
	}
	r.cache = newBlobCache(64 << 20) // read back from the packs: slow enough to stop
	cctx, cancel := context.WithCancel(ctx)
	prog := &Progress{}
	go func() {
		for prog.Bytes.Load() < 5<<20 {
			time.Sleep(50 * time.Microsecond)
		}
		cancel()
	}()
	out := t.TempDir()
	if _, err := r.Restore(cctx, res.Snapshot, nil, out, RestoreOptions{Progress: prog}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled restore: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Join(out, "d"))
	for _, e := range entries {
		got, _ := os.ReadFile(filepath.Join(out, "d", e.Name()))
		want, _ := os.ReadFile(filepath.Join(src, e.Name()))
		if !bytes.Equal(got, want) {
			t.Errorf("%s left in the target with %d of %d bytes", e.Name(), len(got), len(want))
		}
	}
}

// The source directory's own xattrs (an ACL, a label) are kept and
// restored, like every other directory's.
func TestSourceRootXattrsRestored(t *testing.T) {
	ctx := context.Background()
	r, _ := newRepo(t)
	src := t.TempDir()
	if err := unix.Setxattr(src, "user.citadel-root", []byte("kept"), 0); err != nil {
		t.Skipf("xattrs not supported here: %v", err)
	}
	res, err := r.TakeSnapshot(ctx, Request{Sources: []SourceSpec{{Label: "d", Path: src}}})
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if _, err := r.Restore(ctx, res.Snapshot, nil, out, RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, err := unix.Getxattr(filepath.Join(out, "d"), "user.citadel-root", buf)
	if err != nil || string(buf[:n]) != "kept" {
		t.Fatalf("restored source root xattr: %q, %v", buf[:max(n, 0)], err)
	}
}

// A file whose pack cannot be read (a bad sector, here a pack replaced by
// a directory) is skipped and named; the other files are restored. And a
// failed file never removes what was at its path before the restore.
func TestRestoreGoesOnPastAnUnreadablePack(t *testing.T) {
	ctx := context.Background()
	r, dir := newRepo(t)
	src := t.TempDir()
	packsBefore := func() map[string]bool {
		ps, _ := filepath.Glob(filepath.Join(dir, "packs", "*", "*.pack"))
		m := map[string]bool{}
		for _, p := range ps {
			m[p] = true
		}
		return m
	}
	var badPack string
	for _, name := range []string{"a", "b", "c"} {
		writeRandom(t, filepath.Join(src, name), 300<<10, uint64(len(name)+int(name[0])))
		before := packsBefore()
		if _, err := r.TakeSnapshot(ctx, Request{Sources: []SourceSpec{{Label: "d", Path: src}}}); err != nil {
			t.Fatal(err)
		}
		if name == "b" {
			var biggest int64
			for p := range packsBefore() {
				if fi, _ := os.Stat(p); !before[p] && fi.Size() > biggest {
					badPack, biggest = p, fi.Size()
				}
			}
		}
	}
	r.Close()
	if err := os.Remove(badPack); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(badPack, 0o700); err != nil { // reads fail with EISDIR
		t.Fatal(err)
	}
	r2, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	snaps, _ := r2.Snapshots()
	out := t.TempDir()
	os.MkdirAll(filepath.Join(out, "d"), 0o755)
	rr, err := r2.Restore(ctx, snaps[len(snaps)-1], nil, out, RestoreOptions{})
	if err == nil || len(rr.Failed) != 1 || !strings.Contains(rr.Failed[0], "/d/b") {
		t.Fatalf("restore past an unreadable pack: %v, failed %q", err, rr.Failed)
	}
	for _, name := range []string{"a", "c"} {
		got, _ := os.ReadFile(filepath.Join(out, "d", name))
		want, _ := os.ReadFile(filepath.Join(src, name))
		if !bytes.Equal(got, want) {
			t.Errorf("%s not restored (%d bytes)", name, len(got))
		}
	}
	if _, err := os.Stat(filepath.Join(out, "d", "b")); err == nil {
		t.Error("the unreadable file was left in the target")
	}

	// Something already at a file's path that restore cannot replace (an
	// empty directory) stays; the restore fails on it.
	out2 := t.TempDir()
	os.MkdirAll(filepath.Join(out2, "d", "a"), 0o755)
	if _, err := r2.Restore(ctx, snaps[0], nil, out2, RestoreOptions{}); err == nil {
		t.Fatal("restore over a directory where a file goes succeeded")
	}
	if fi, err := os.Stat(filepath.Join(out2, "d", "a")); err != nil || !fi.IsDir() {
		t.Fatalf("the directory in the way was removed: %v", err)
	}
}
