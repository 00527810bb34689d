package snapshot

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// setReadHook installs testHookRead for one test.
func setReadHook(t *testing.T, hook func(path string, off int64)) {
	t.Helper()
	testHookRead = hook
	t.Cleanup(func() { testHookRead = nil })
}

// snapshotSavedAsRead snapshots src (label "d", holding f) into a new
// repository and asserts checkSavedAsRead.
func snapshotSavedAsRead(t *testing.T, src string, want []byte) {
	t.Helper()
	r, _ := newRepo(t)
	res, err := r.TakeSnapshot(context.Background(), Request{Sources: []SourceSpec{{Label: "d", Path: src}}})
	if err != nil {
		t.Fatal(err)
	}
	checkSavedAsRead(t, r, res, want)
}

// checkSavedAsRead asserts that the snapshot's d/f is want exactly, with a
// size its chunks agree with, and that the snapshot said f changed.
func checkSavedAsRead(t *testing.T, r *Repository, res *Result, want []byte) {
	t.Helper()
	n, err := r.Resolve(context.Background(), res.Snapshot, "d/f")
	if err != nil {
		t.Fatal(err)
	}
	if n.Size != int64(len(want)) {
		t.Errorf("size %d, want %d (the bytes actually read)", n.Size, len(want))
	}
	if k := len(n.Content); k > 0 && n.Content[k-1].Offset+n.Content[k-1].Length > n.Size {
		t.Errorf("chunks end at %d, past size %d", n.Content[k-1].Offset+n.Content[k-1].Length, n.Size)
	}
	got := make([]byte, n.Size)
	k, err := r.OpenFile(n).ReadAt(context.Background(), got, 0)
	if err != nil && err != io.EOF {
		t.Fatal(err)
	}
	if !bytes.Equal(got[:k], want) {
		t.Errorf("content differs from what was read (%d bytes back, want %d)", k, len(want))
	}
	if st := res.Snapshot.Sources[0].Stats; st.Changed != 1 {
		t.Errorf("stats.Changed = %d, want 1", st.Changed)
	}
	if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "changed while being read") {
		t.Errorf("warnings %q, want one 'changed while being read'", res.Warnings)
	}
}

// A file truncated after the walk stat'ed it but before it was read was
// saved with the walk's size and no chunks: zeros it never held, exit 0.
func TestSnapshotFileShrunkBeforeReadSavedAsRead(t *testing.T) {
	src := t.TempDir()
	path := filepath.Join(src, "f")
	data := make([]byte, 3<<20)
	fillRandom(data, 21)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	keep := int64(1<<20 + 123)
	setReadHook(t, func(p string, off int64) {
		if p == path && off == -1 {
			if err := os.Truncate(p, keep); err != nil {
				t.Error(err)
			}
		}
	})
	snapshotSavedAsRead(t, src, data[:keep])
}

// A sparse file cut short while its first extent was read, then regrown
// by appending, must end where the read did: reading on at the next
// extent recorded the appended region before it as a hole of zeros.
func TestSnapshotSparseFileShortReadIsNotAHole(t *testing.T) {
	src := t.TempDir()
	path := filepath.Join(src, "f")
	data := make([]byte, 1<<20)
	fillRandom(data, 22)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(data)
	f.WriteAt(data, 4<<20) // hole at [1 MiB, 4 MiB)
	f.Close()
	keep := int64(512 << 10)
	setReadHook(t, func(p string, off int64) {
		if p != path {
			return
		}
		switch off {
		case 0:
			if err := os.Truncate(p, keep); err != nil {
				t.Error(err)
			}
		case 4 << 20:
			g, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Error(err)
				return
			}
			g.Write(bytes.Repeat([]byte{0xab}, 5<<20-int(keep)))
			g.Close()
		}
	})
	snapshotSavedAsRead(t, src, data[:keep])
}

// A file that grows while read is saved up to the size stat'ed when it
// was opened, and said to have changed.
func TestSnapshotFileGrownWhileReadSavedAsRead(t *testing.T) {
	src := t.TempDir()
	path := filepath.Join(src, "f")
	data := make([]byte, 2<<20)
	fillRandom(data, 23)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	setReadHook(t, func(p string, off int64) {
		if p == path && off == 0 {
			g, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Error(err)
				return
			}
			g.Write(data[:1000])
			g.Close()
		}
	})
	snapshotSavedAsRead(t, src, data)
}

// A sparse file rewritten whole while read: its holes were found before
// the rewrite, its data read after. It is read again whole, so no hole is
// recorded where the file then held data (zeros it never had).
func TestSnapshotSparseFileRewrittenHasNoInventedHole(t *testing.T) {
	src := t.TempDir()
	path := filepath.Join(src, "f")
	data := make([]byte, 1<<20)
	fillRandom(data, 24)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(data)
	f.WriteAt(data, 4<<20) // hole at [1 MiB, 4 MiB)
	f.Close()
	dense := bytes.Repeat([]byte{0xcd}, 5<<20)
	done := false
	setReadHook(t, func(p string, off int64) {
		if p == path && off == 0 && !done {
			done = true
			if err := os.WriteFile(p, dense, 0o644); err != nil { // truncates, then writes
				t.Error(err)
			}
		}
	})
	snapshotSavedAsRead(t, src, dense)
}
