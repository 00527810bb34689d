package main

import (
	"context"
	"errors"
	"fmt"
	iofs "io/fs"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"citadelfs/snapshot"
)

func TestIntegrityRecordCountsOnlyCorruptReads(t *testing.T) {
	now := time.Date(2026, 11, 27, 4, 0, 0, 0, time.UTC)
	r := newIntegrityRecord(func() time.Time { return now })
	if st := r.state(); st.CorruptReads != 0 || !st.LastTime.IsZero() || st.LastPath != "" {
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
		r.onError("/latest/a", err)
	}
	if st := r.state(); st.CorruptReads != 0 {
		t.Fatalf("non-corrupt errors counted: %+v", st)
	}

	err := fmt.Errorf("snapshot: chunk 1a2b in pack 3c4d fails its hash check:\n%w", snapshot.ErrCorrupt)
	r.onError("/latest/models/w.bin", err)
	now = now.Add(time.Minute)
	r.onError("/latest/models/w.bin", err)
	r.onError("/2026-11-27/models/v.bin", fmt.Errorf("x: %s: %w", strings.Repeat("y", 1000), snapshot.ErrCorrupt))
	st := r.state()
	if st.CorruptReads != 3 || st.CorruptFiles != 2 || st.CorruptFilesCapped || !st.LastTime.Equal(now) || st.LastPath != "/2026-11-27/models/v.bin" {
		t.Fatalf("state %+v", st)
	}
	if strings.Contains(st.LastError, "\n") || len(st.LastError) > maxIntegrityError || !strings.HasPrefix(st.LastError, "x: yyy") {
		t.Fatalf("last error not one bounded line: %q", st.LastError)
	}
	r.onError("/latest/models/w.bin", err)
	if st := r.state(); !strings.Contains(st.LastError, "fails its hash check: corrupt data") {
		t.Fatalf("last error %q", st.LastError)
	}
}

// A repository that rots wholesale does not grow the daemon: distinct
// paths are counted up to a bound, reads always.
func TestIntegrityRecordIsBoundedAndConcurrent(t *testing.T) {
	r := newIntegrityRecord(nil)
	err := fmt.Errorf("bad: %w", snapshot.ErrCorrupt)
	var wg sync.WaitGroup
	const workers, each = 4, maxIntegrityFiles
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				r.onError(fmt.Sprintf("/latest/w%d/f%d", w, i), err)
				if i%64 == 0 {
					r.state()
				}
			}
		}()
	}
	wg.Wait()
	st := r.state()
	if st.CorruptReads != workers*each || st.CorruptFiles != maxIntegrityFiles || !st.CorruptFilesCapped {
		t.Fatalf("state %+v", st)
	}
	r.mu.Lock()
	n := len(r.files)
	r.mu.Unlock()
	if n > maxIntegrityFiles {
		t.Fatalf("%d paths kept, bound %d", n, maxIntegrityFiles)
	}
}
