package index

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestReserveHoldRelease: the reserve is held at init, released (blocks
// given back, size kept) and held again, and a zero-length one is never
// grown.
func TestReserveHoldRelease(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	if _, err := InitWithReserve(dir, ChunkerParams{Min: 1 << 10, Avg: 4 << 10, Max: 16 << 10}, time.Now(), 1<<20); err != nil {
		t.Fatal(err)
	}
	size, held, err := ReserveInfo(dir)
	if err != nil || size != 1<<20 || !held {
		t.Fatalf("after init: size %d held %v err %v; want 1 MiB held", size, held, err)
	}
	n, err := releaseReserve(dir)
	if err != nil || n != 1<<20 {
		t.Fatalf("release: %d, %v", n, err)
	}
	if size, held, _ := ReserveInfo(dir); size != 1<<20 || held {
		t.Fatalf("after release: size %d held %v; want the size kept and the blocks gone", size, held)
	}
	if n, err := releaseReserve(dir); n != 0 || err != nil {
		t.Fatalf("second release freed %d (%v); want nothing", n, err)
	}
	// Open holds it again (there is room here).
	r, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.EnsureReserve(); err != nil {
		t.Fatal(err)
	}
	r.Close()
	if size, held, _ := ReserveInfo(dir); size != 1<<20 || !held {
		t.Fatalf("after open: size %d held %v; want it held again", size, held)
	}
	// A zero-length reserve is "none": kept at zero.
	if err := os.Truncate(filepath.Join(dir, reserveName), 0); err != nil {
		t.Fatal(err)
	}
	r, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	if size, _, _ := ReserveInfo(dir); size != 0 {
		t.Fatalf("a zero-length reserve grew to %d", size)
	}
	// An absent one is made with the default size.
	os.Remove(filepath.Join(dir, reserveName))
	r, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	if size, held, _ := ReserveInfo(dir); size != defaultReserve(dir) || !held || size <= 0 {
		t.Fatalf("absent reserve: made %d held %v, want %d", size, held, defaultReserve(dir))
	}
}

// TestPebbleFatalKeepsCause: Pebble giving up on a full disk is still
// ENOSPC to errors.Is, so callers give the reserve back and exit 13.
func TestPebbleFatalKeepsCause(t *testing.T) {
	h := newKVHealth(nil)
	go pebbleLogger{h}.Fatalf("pebble: fatal commit error: write %s: %v", "000012.log", syscall.ENOSPC)
	<-h.down
	if err := h.fatalErr(); !IsDiskFull(err) || !strings.Contains(err.Error(), "Pebble stopped") {
		t.Fatalf("fatal error %v: want ENOSPC kept", err)
	}
}
