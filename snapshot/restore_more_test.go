package snapshot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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
	res, err := r.TakeSnapshot(ctx, Request{Sources: []SourceSpec{{"d", src}}})
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
	res, err := r.TakeSnapshot(ctx, Request{Sources: []SourceSpec{{"d", src}}})
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
