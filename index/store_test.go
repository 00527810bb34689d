package index_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"citadelfs/index"
	"citadelfs/index/storetest"
)

func TestLocalStoreContract(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "packs"), 0o700); err != nil {
		t.Fatal(err)
	}
	s := index.NewLocalStore(dir, 4)
	defer s.Close()
	storetest.Contract(t, s)
	if left, _ := filepath.Glob(filepath.Join(dir, "packs", "*.partial")); len(left) != 0 {
		t.Fatalf("temp files left: %v", left)
	}
}

func openFaulty(t *testing.T, faults ...index.Fault) (*index.Repo, *index.FaultyStore) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "repo")
	if _, err := index.Init(dir, index.ChunkerParams{Min: 1, Avg: 2, Max: 4}, time.Unix(0, 0)); err != nil {
		t.Fatal(err)
	}
	var fs *index.FaultyStore
	r, err := index.Open(dir, index.Options{WrapStore: func(s index.Store) index.Store {
		fs = index.NewFaultyStore(s, faults...)
		return fs
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, fs
}

// writeBigPack writes a pack of three 3 MiB blobs (more than one 4 MiB
// buffer, so the flusher writes before Finish) and returns Finish's error.
func writeBigPack(t *testing.T, r *index.Repo) error {
	t.Helper()
	pw, err := r.NewPackWriter()
	if err != nil {
		return err
	}
	for i := range 3 {
		b := bytes.Repeat([]byte{byte(i + 1)}, 3<<20)
		if err := pw.Add(index.DataBlob, 0, index.Hash(b), b, len(b)); err != nil {
			pw.Abort()
			return err
		}
	}
	id, es, err := pw.Finish()
	if err != nil {
		return err
	}
	return r.CommitPack(id, es, pw.Size())
}

// Each way a pack write can fail (the disk full at the first or a later
// buffer, a short write, EIO at the final rename) returns the error and
// leaves neither a pack nor a temp file, and the repository takes the
// next pack once the fault is gone.
func TestPackWriteFaultsLeaveNothing(t *testing.T) {
	cases := []struct {
		name  string
		fault index.Fault
		want  error
	}{
		{"ENOSPC at the first write", index.Fault{Op: index.OpWrite, Nth: 1, Err: syscall.ENOSPC}, syscall.ENOSPC},
		{"ENOSPC from the second write on", index.Fault{Op: index.OpWrite, Nth: 2, Sticky: true, Err: syscall.ENOSPC}, syscall.ENOSPC},
		{"short write with EIO", index.Fault{Op: index.OpWrite, Nth: 1, Short: true, Err: syscall.EIO}, syscall.EIO},
		{"short write, no error", index.Fault{Op: index.OpWrite, Nth: 2, Short: true}, io.ErrShortWrite},
		{"EIO at commit", index.Fault{Op: index.OpCommit, Nth: 1, Err: syscall.EIO}, syscall.EIO},
		{"ENOSPC at create", index.Fault{Op: index.OpCreate, Nth: 1, Err: syscall.ENOSPC}, syscall.ENOSPC},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, fs := openFaulty(t, c.fault)
			err := writeBigPack(t, r)
			if !errors.Is(err, c.want) {
				t.Fatalf("pack write: %v, want %v", err, c.want)
			}
			if fs.Calls(c.fault.Op) < c.fault.Nth {
				t.Fatalf("the fault was never reached (%d %s calls)", fs.Calls(c.fault.Op), c.fault.Op)
			}
			if packs, _ := r.ListPacks(); len(packs) != 0 {
				t.Fatalf("a failed write left packs: %v", packs)
			}
			if left, _ := filepath.Glob(filepath.Join(r.Dir, "packs", "*.partial")); len(left) != 0 {
				t.Fatalf("temp files left: %v", left)
			}
			if c.fault.Sticky {
				return
			}
			if err := writeBigPack(t, r); err != nil {
				t.Fatalf("next pack after the fault: %v", err)
			}
			if packs, _ := r.ListPacks(); len(packs) != 1 {
				t.Fatalf("%d packs after a good write, want 1", len(packs))
			}
		})
	}
}

// Bytes a store hands back wrong never reach the caller as a trailer:
// the CRC catches them (blobs are caught by their hash, in snapshot).
// A store that fails a read (EIO) is an error, not a finding of damage.
func TestStoreReadFaults(t *testing.T) {
	r, fs := openFaulty(t)
	if err := writeBigPack(t, r); err != nil {
		t.Fatal(err)
	}
	packs, _ := r.ListPacks()
	fs.SetFaults(index.Fault{Op: index.OpRead, Nth: 3, Corrupt: true}) // the trailer's read
	if _, _, err := r.ReadPackTrailer(packs[0].ID); !errors.Is(err, index.ErrCorrupt) {
		t.Fatalf("trailer read with a flipped byte: %v, want ErrCorrupt", err)
	}
	fs.SetFaults(index.Fault{Op: index.OpRead, Nth: 1, Err: syscall.EIO})
	var ref index.BlobRef
	r.Blobs(func(b index.BlobRef) error { ref = b; return nil })
	if _, err := r.ReadStored(ref, nil); !errors.Is(err, syscall.EIO) || errors.Is(err, index.ErrCorrupt) {
		t.Fatalf("read with EIO: %v, want EIO and not ErrCorrupt", err)
	}
	if b, err := r.ReadStored(ref, nil); err != nil || len(b) != 3<<20 {
		t.Fatalf("read after the fault: %d bytes, %v", len(b), err)
	}
}

func TestReadOnlyStoreRefusesWrites(t *testing.T) {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "packs"), 0o700)
	local := index.NewLocalStore(dir, 1)
	if err := local.Put("x", []byte("x")); err != nil {
		t.Fatal(err)
	}
	ro := index.NewReadOnlyStore(local)
	if err := ro.Put("y", nil); !errors.Is(err, index.ErrReadOnlyStore) {
		t.Fatalf("put: %v", err)
	}
	if _, err := ro.Create(); !errors.Is(err, index.ErrReadOnlyStore) {
		t.Fatalf("create: %v", err)
	}
	if err := ro.Delete("x"); !errors.Is(err, index.ErrReadOnlyStore) {
		t.Fatalf("delete: %v", err)
	}
	if b, err := ro.ReadRange("x", 0, 1, nil); err != nil || string(b) != "x" {
		t.Fatalf("read through the read-only store: %q %v", b, err)
	}
}
