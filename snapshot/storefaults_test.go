package snapshot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"citadelfs/index"
)

// The ENOSPC/EIO paths of snapshot, prune, repair and restore, through
// index.FaultyStore: no root, no tmpfs, each fault at the call it names.

func newFaultyRepo(t *testing.T) (*Repository, *index.FaultyStore, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "repo")
	if err := Init(dir, Options{}); err != nil {
		t.Fatal(err)
	}
	var fs *index.FaultyStore
	r, err := Open(dir, Options{PackSize: 1 << 20, WrapStore: func(s index.Store) index.Store {
		fs = index.NewFaultyStore(s)
		return fs
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, fs, dir
}

func mustCheck(t *testing.T, r *Repository, step string) {
	t.Helper()
	rep, err := r.Check(context.Background(), CheckOptions{ReadData: true})
	if err != nil || !rep.OK() {
		t.Fatalf("%s: check: %v %q", step, err, rep.Problems)
	}
}

func mustRestore(t *testing.T, r *Repository, s *Snapshot, name string, want []byte) {
	t.Helper()
	out := t.TempDir()
	if _, err := r.Restore(context.Background(), s, nil, out, RestoreOptions{}); err != nil {
		t.Fatalf("restore %s: %v", s.ID.Short(), err)
	}
	got, err := os.ReadFile(filepath.Join(out, "d", name))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("restore %s: wrong bytes (%d of %d) %v", s.ID.Short(), len(got), len(want), err)
	}
}

// A disk that fills up in the middle of a snapshot (from the third pack
// buffer on, or at a pack's final commit): the snapshot fails with ENOSPC,
// no snapshot and no temp file is left, and once there is room the next
// snapshot succeeds and restores.
func TestSnapshotENOSPCCommitsNothing(t *testing.T) {
	for _, fault := range []index.Fault{
		{Op: index.OpWrite, Nth: 3, Sticky: true, Err: syscall.ENOSPC},
		{Op: index.OpCommit, Nth: 2, Sticky: true, Err: syscall.ENOSPC},
		{Op: index.OpWrite, Nth: 2, Short: true, Err: syscall.EIO},
	} {
		t.Run(fmt.Sprintf("%s#%d", fault.Op, fault.Nth), func(t *testing.T) {
			ctx := context.Background()
			r, fs, dir := newFaultyRepo(t)
			src := t.TempDir()
			data := make([]byte, 12<<20)
			fillRandom(data, 3)
			os.WriteFile(filepath.Join(src, "f"), data, 0o644)
			fs.SetFaults(fault)
			_, err := r.TakeSnapshot(ctx, Request{Sources: []SourceSpec{{Label: "d", Path: src}}})
			if !errors.Is(err, fault.Err) {
				t.Fatalf("snapshot on a full disk: %v, want %v", err, fault.Err)
			}
			if snaps, _ := r.Snapshots(); len(snaps) != 0 {
				t.Fatalf("a failed snapshot left %d snapshots", len(snaps))
			}
			if left, _ := filepath.Glob(filepath.Join(dir, "packs", "*.partial")); len(left) != 0 {
				t.Fatalf("temp files left: %v", left)
			}
			mustCheck(t, r, "after the failed snapshot")
			fs.SetFaults()
			res, err := r.TakeSnapshot(ctx, Request{Sources: []SourceSpec{{Label: "d", Path: src}}})
			if err != nil {
				t.Fatalf("snapshot once there is room: %v", err)
			}
			mustRestore(t, r, res.Snapshot, "f", data)
			mustCheck(t, r, "after the good snapshot")
		})
	}
}

// A prune whose rewrite fails (ENOSPC writing the new pack, where it
// falls back to deleting only unused packs; EIO at its commit, EIO
// deleting an old pack) loses nothing: every snapshot
// restores, check passes, and the next prune finishes the work.
func TestPruneStoreFaultsLoseNothing(t *testing.T) {
	for _, fault := range []index.Fault{
		{Op: index.OpWrite, Nth: 1, Sticky: true, Err: syscall.ENOSPC},
		{Op: index.OpCommit, Nth: 1, Err: syscall.EIO},
		{Op: index.OpDelete, Nth: 1, Sticky: true, Err: syscall.EIO},
	} {
		t.Run(fmt.Sprintf("%s#%d", fault.Op, fault.Nth), func(t *testing.T) {
			ctx := context.Background()
			r, fs, _ := newFaultyRepo(t)
			// Big and small files; the big ones change, so after the
			// first snapshot is forgotten its packs are mostly dead and
			// prune rewrites the small files into a new pack.
			var srcs []string
			small := map[int][]byte{}
			for i := range 3 {
				src := t.TempDir()
				writeRandom(t, filepath.Join(src, "big"), 600<<10, uint64(10*i+1))
				writeRandom(t, filepath.Join(src, "small"), 100<<10, uint64(10*i+2))
				small[i], _ = os.ReadFile(filepath.Join(src, "small"))
				srcs = append(srcs, src)
			}
			snap := func() *Snapshot {
				var specs []SourceSpec
				for i, s := range srcs {
					specs = append(specs, SourceSpec{Label: fmt.Sprintf("s%d", i), Path: s})
				}
				res, err := r.TakeSnapshot(ctx, Request{Sources: specs})
				if err != nil {
					t.Fatal(err)
				}
				return res.Snapshot
			}
			first := snap()
			for i, src := range srcs {
				writeRandom(t, filepath.Join(src, "big"), 600<<10, uint64(10*i+3))
			}
			second := snap()
			if err := r.Forget(ctx, []index.ID{first.ID}); err != nil {
				t.Fatal(err)
			}
			fs.SetFaults(fault)
			res, err := r.Prune(ctx, false)
			switch {
			case errors.Is(fault.Err, syscall.ENOSPC):
				// A full disk: prune deletes the unused packs, which
				// writes nothing, and says it skipped the rewrite.
				if err != nil || !res.RepackSkipped {
					t.Fatalf("prune on a full disk: %+v, %v; want success with the rewrite skipped", res, err)
				}
			case !errors.Is(err, fault.Err):
				t.Fatalf("prune: %v, want %v", err, fault.Err)
			}
			if fs.Calls(fault.Op) < fault.Nth {
				t.Fatalf("the fault was never reached")
			}
			fs.SetFaults()
			mustCheck(t, r, "after the failed prune")
			for i := range srcs {
				out := t.TempDir()
				if _, err := r.Restore(ctx, second, nil, out, RestoreOptions{}); err != nil {
					t.Fatal(err)
				}
				got, _ := os.ReadFile(filepath.Join(out, fmt.Sprintf("s%d", i), "small"))
				if !bytes.Equal(got, small[i]) {
					t.Fatalf("s%d/small restores wrong after the failed prune", i)
				}
			}
			if _, err := r.Prune(ctx, false); err != nil {
				t.Fatalf("prune after the fault: %v", err)
			}
			mustCheck(t, r, "after the second prune")
		})
	}
}

// repair packs that cannot write its salvage pack (ENOSPC) changes
// nothing: the damage is still there to repair, and the next run does.
func TestRepairPacksENOSPCChangesNothing(t *testing.T) {
	ctx := context.Background()
	r, fs, dir := newFaultyRepo(t)
	// Small files share one pack: repair has the others to salvage.
	src := t.TempDir()
	for i := range 20 {
		writeRandom(t, filepath.Join(src, fmt.Sprintf("f%d", i)), 40<<10, uint64(i+1))
	}
	res, err := r.TakeSnapshot(ctx, Request{Sources: []SourceSpec{{Label: "d", Path: src}}})
	if err != nil {
		t.Fatal(err)
	}
	ref := fileChunk(t, r, res.Snapshot, "d", "f7")
	flipStored(t, dir, ref)
	if rep, err := r.Check(ctx, CheckOptions{ReadData: true}); err != nil || rep.OK() {
		t.Fatalf("check: %v %+v", err, rep)
	}
	fs.SetFaults(index.Fault{Op: index.OpWrite, Nth: 1, Sticky: true, Err: syscall.ENOSPC})
	if _, err := r.RepairPacks(ctx, nil, false); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("repair packs on a full disk: %v, want ENOSPC", err)
	}
	if _, err := os.Stat(index.PackPath(dir, ref.Pack)); err != nil {
		t.Fatalf("the damaged pack went although its salvage was never written: %v", err)
	}
	if rep, err := r.Check(ctx, CheckOptions{ReadData: true}); err != nil || len(rep.Affected) != 1 {
		t.Fatalf("check after the failed repair: %v %q, want the one damaged file", err, rep.Affected)
	}
	fs.SetFaults()
	rp, err := r.RepairPacks(ctx, nil, false)
	if err != nil || len(rp.Packs) != 1 || rp.Lost != 1 || rp.Salvaged == 0 {
		t.Fatalf("repair packs once there is room: %+v %v", rp, err)
	}
}

// A store that fails a read (EIO) or hands back wrong bytes: restore
// reports an error and never writes wrong bytes; once the store is well
// the same restore succeeds.
func TestRestoreStoreReadFaults(t *testing.T) {
	for _, fault := range []index.Fault{
		{Op: index.OpRead, Nth: 1, Sticky: true, Err: syscall.EIO},
		{Op: index.OpRead, Nth: 1, Sticky: true, Corrupt: true},
	} {
		t.Run(fmt.Sprintf("corrupt=%v", fault.Corrupt), func(t *testing.T) {
			ctx := context.Background()
			r, fs, _ := newFaultyRepo(t)
			_, data, res := snapshotRandomFile(t, r, "f.bin", 2<<20, 9)
			r.cache = newBlobCache(64 << 20)
			fs.SetFaults(fault)
			out := t.TempDir()
			_, err := r.Restore(ctx, res.Snapshot, nil, out, RestoreOptions{})
			if err == nil {
				t.Fatal("restore through a failing store returned no error")
			}
			if fault.Corrupt && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("restore of wrong bytes: %v, want ErrCorrupt", err)
			}
			if got, err := os.ReadFile(filepath.Join(out, "d", "f.bin")); err == nil && !bytes.Equal(got, data) {
				t.Fatal("restore wrote wrong bytes")
			}
			fs.SetFaults()
			r.cache = newBlobCache(64 << 20)
			mustRestore(t, r, res.Snapshot, "f.bin", data)
		})
	}
}
