package fsadapter

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	cfs "citadelfs/fs"
	"citadelfs/index"
	"citadelfs/snapshot"
)

// A mount of a repository in a store (a reader lock) while another host,
// with its own cache, forgets a snapshot and prunes it: the file of that
// snapshot the mount has open answers ESTALE, and the mount's corrupt-read
// record (backup_corrupt) counts nothing; the snapshot that stays reads
// the same bytes. Until the read re-synced the cache, the deleted pack
// was a corrupt read of a snapshot the cache still listed.
func TestOtherHostsPruneIsNoCorruptRead(t *testing.T) {
	ctx := context.Background()
	store := index.NewLocalStore(t.TempDir(), 8) // the bucket
	t.Cleanup(func() { store.Close() })
	if err := snapshot.InitStore(store, "fake://bucket", snapshot.Options{}); err != nil {
		t.Fatal(err)
	}
	cacheA, cacheB := t.TempDir(), t.TempDir()
	openB := func(exclusive bool) *snapshot.Repository {
		t.Helper()
		r, err := snapshot.OpenStore(store, "fake://bucket", snapshot.Options{CacheDir: cacheB, Exclusive: exclusive})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	src := source(t)
	shared := bytes.Repeat([]byte("kept config\n"), 2000)
	os.WriteFile(filepath.Join(src, "d", "kept.cfg"), shared, 0o644)
	other := filepath.Join(t.TempDir(), "other")
	os.MkdirAll(filepath.Join(other, "d"), 0o755)
	os.WriteFile(filepath.Join(other, "d", "kept.cfg"), shared, 0o644)
	b := openB(false)
	gone := take(t, b, src, time.Unix(1e9, 0))
	if _, err := b.TakeSnapshot(ctx, snapshot.Request{Sources: []snapshot.SourceSpec{{Label: "m", Path: other}}, Time: time.Unix(1e9+60, 0)}); err != nil {
		t.Fatal(err)
	}
	b.Close()

	a, err := snapshot.OpenStore(store, "fake://bucket", snapshot.Options{CacheDir: cacheA, Reader: true, Command: "citadelfs mount"})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	rec := NewCorruptReadRecord(time.Now, a)
	tr := NewTree(a)
	snaps, err := tr.Snapshots(ctx)
	if err != nil || len(snaps) != 2 {
		t.Fatalf("a's snapshots: %v %v", snaps, err)
	}
	open := func(s cfs.Snapshot, name string) cfs.File {
		t.Helper()
		f, err := tr.Open(ctx, children(t, tr, children(t, tr, s.Sources[0].Root)["d"])[name])
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	forgotten, kept := open(snaps[0], "a.bin"), open(snaps[1], "kept.cfg")

	b = openB(true)
	if err := b.Forget(ctx, []index.ID{gone.ID}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.PruneWith(ctx, snapshot.PruneOptions{Grace: 0}); err != nil {
		t.Fatal(err)
	}
	b.Close()

	_, _, err = forgotten.Slices(ctx, 0, 4096)
	rec.OnError("snapshots/x/m/d/a.bin", err)
	if !errors.Is(err, syscall.ESTALE) {
		t.Errorf("read of the file open in the snapshot another host forgot and pruned: %v, want ESTALE", err)
	}
	if st := rec.State(); st.Reads != 0 {
		t.Errorf("the read counted as corrupt (backup_corrupt): %+v", st)
	}
	views, done, err := kept.Slices(ctx, 0, len(shared))
	if err != nil {
		t.Fatalf("read of the snapshot that stays: %v", err)
	}
	if got := bytes.Join(views, nil); !bytes.Equal(got, shared) {
		t.Errorf("the snapshot that stays reads %d bytes, not the source's %d", len(got), len(shared))
	}
	done()
}
