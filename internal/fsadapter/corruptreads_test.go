package fsadapter

import (
	"context"
	"errors"
	"fmt"
	iofs "io/fs"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"citadelfs/snapshot"
)

func TestIntegrityRecordCountsOnlyCorruptReads(t *testing.T) {
	now := time.Date(2026, 11, 27, 4, 0, 0, 0, time.UTC)
	r := NewCorruptReadRecord(func() time.Time { return now }, nil)
	if st := r.State(); st.Reads != 0 || !st.LastTime.IsZero() || st.LastPath != "" {
		t.Fatalf("fresh record %+v", st)
	}
	// What fs passes on that is not about the data's integrity.
	for _, err := range []error{
		iofs.ErrNotExist,
		fmt.Errorf("read: %w", context.Canceled),
		context.DeadlineExceeded,
		syscall.EIO,
		errors.New("pack: short read"),
	} {
		r.OnError("/latest/a", err)
	}
	if st := r.State(); st.Reads != 0 {
		t.Fatalf("non-corrupt errors counted: %+v", st)
	}

	err := fmt.Errorf("snapshot: chunk 1a2b in pack 3c4d fails its hash check:\n%w", snapshot.ErrCorrupt)
	r.OnError("/latest/models/w.bin", err)
	now = now.Add(time.Minute)
	r.OnError("/latest/models/w.bin", err)
	r.OnError("/2026-11-27/models/v.bin", fmt.Errorf("x: %s: %w", strings.Repeat("y", 1000), snapshot.ErrCorrupt))
	st := r.State()
	if st.Reads != 3 || st.Files != 2 || st.Capped || !st.LastTime.Equal(now) || st.LastPath != "/2026-11-27/models/v.bin" {
		t.Fatalf("state %+v", st)
	}
	if strings.Contains(st.LastError, "\n") || len(st.LastError) > maxCorruptError || !strings.HasPrefix(st.LastError, "x: yyy") {
		t.Fatalf("last error not one bounded line: %q", st.LastError)
	}
	r.OnError("/latest/models/w.bin", err)
	if st := r.State(); !strings.Contains(st.LastError, "fails its hash check: corrupt data") {
		t.Fatalf("last error %q", st.LastError)
	}
}

// A repository that rots wholesale does not grow the daemon: distinct
// paths are counted up to a bound, reads always.
func TestIntegrityRecordIsBoundedAndConcurrent(t *testing.T) {
	r := NewCorruptReadRecord(nil, nil)
	err := fmt.Errorf("bad: %w", snapshot.ErrCorrupt)
	var wg sync.WaitGroup
	const workers, each = 4, maxCorruptFiles
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				r.OnError(fmt.Sprintf("/latest/w%d/f%d", w, i), err)
				if i%64 == 0 {
					r.State()
				}
			}
		}()
	}
	wg.Wait()
	st := r.State()
	if st.Reads != workers*each || st.Files != maxCorruptFiles || !st.Capped {
		t.Fatalf("state %+v", st)
	}
	r.mu.Lock()
	n := len(r.files)
	r.mu.Unlock()
	if n > maxCorruptFiles {
		t.Fatalf("%d paths kept, bound %d", n, maxCorruptFiles)
	}
}

// The record is kept in the repository: a daemon started later goes on
// from it, repeated reads of a file already recorded write at most once a
// minute, and a passing full check removes it.
func TestIntegrityRecordOutlivesTheDaemon(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	if err := snapshot.Init(dir, snapshot.Options{}); err != nil {
		t.Fatal(err)
	}
	repo, err := snapshot.Open(dir, snapshot.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer repo.Close()
	now := time.Date(2026, 11, 27, 4, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	bad := fmt.Errorf("chunk 1a2b fails its hash check: %w", snapshot.ErrCorrupt)

	r := NewCorruptReadRecord(clock, repo)
	r.OnError("/latest/models/w.bin", bad)
	now = now.Add(time.Second)
	r.OnError("/latest/models/v.bin", bad)
	now = now.Add(time.Second)
	r.OnError("/latest/models/v.bin", bad) // same file, within the minute: not written
	stored, err := repo.LoadCorruptReads()
	if err != nil || stored == nil || stored.Reads != 2 || stored.Files != 2 || stored.LastPath != "/latest/models/v.bin" {
		t.Fatalf("stored %+v, %v; want 2 reads of 2 files", stored, err)
	}
	now = now.Add(time.Minute)
	r.OnError("/latest/models/v.bin", bad)
	if stored, _ = repo.LoadCorruptReads(); stored.Reads != 4 || !stored.LastTime.Equal(now) {
		t.Fatalf("a minute later, stored %+v; want all 4 reads", stored)
	}

	// A restarted daemon.
	r2 := NewCorruptReadRecord(clock, repo)
	st := r2.State()
	if st.Reads != 4 || st.Files != 2 || st.LastPath != "/latest/models/v.bin" || !st.LastTime.Equal(now) {
		t.Fatalf("restarted record %+v", st)
	}
	r2.OnError("/latest/models/x.bin", bad)
	if st := r2.State(); st.Reads != 5 || st.Files != 3 {
		t.Fatalf("restarted record after a new file %+v", st)
	}

	// A structural check or a subset read-back leaves it; a full one
	// that passes removes it.
	ctx := context.Background()
	for _, o := range []snapshot.CheckOptions{{}, {ReadData: true, Subset: 0.5}} {
		if _, err := repo.Check(ctx, o); err != nil {
			t.Fatal(err)
		}
		if c, _ := repo.LoadCorruptReads(); c == nil {
			t.Fatalf("check %+v removed the corrupt-read record", o)
		}
	}
	if rep, err := repo.Check(ctx, snapshot.CheckOptions{ReadData: true}); err != nil || !rep.OK() {
		t.Fatalf("full check: %v %v", rep, err)
	}
	if c, _ := repo.LoadCorruptReads(); c != nil {
		t.Fatalf("a passing full check left the record %+v", c)
	}
	r2.Reset()
	if st := r2.State(); st.Reads != 0 || st.Files != 0 || st.LastPath != "" {
		t.Fatalf("reset record %+v", st)
	}
}
