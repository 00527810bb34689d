package snapshot

import (
	"context"
	"errors"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"citadelfs/index"
)

// forget and prune record their last run, failures included, so that the
// monitor's retention_failed sees a retention timer that keeps failing; a
// dry run and a cancelled run record nothing, and the next passing run
// replaces a failure.
func TestMaintenanceRecords(t *testing.T) {
	ctx := context.Background()
	r, fs, _ := newFaultyRepo(t)
	src := t.TempDir()
	writeRandom(t, filepath.Join(src, "big"), 600<<10, 1)
	take := func() *Snapshot {
		res, err := r.TakeSnapshot(ctx, Request{Sources: []SourceSpec{{Label: "models", Path: src}}})
		if err != nil {
			t.Fatal(err)
		}
		return res.Snapshot
	}
	records := func() map[string]MaintenanceRecord {
		ms, err := r.MaintenanceRecords()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]MaintenanceRecord{}
		for _, m := range ms {
			out[m.Op] = m
		}
		return out
	}
	first := take()
	writeRandom(t, filepath.Join(src, "big"), 600<<10, 2)
	take()
	if _, err := r.Prune(ctx, true); err != nil {
		t.Fatal(err)
	}
	if len(records()) != 0 {
		t.Fatalf("a dry run recorded %+v", records())
	}
	if err := r.Forget(ctx, []index.ID{first.ID}); err != nil {
		t.Fatal(err)
	}
	if m := records()[OpForget]; m.Result != index.MaintenanceOK || m.Removed != 1 || m.Time.IsZero() {
		t.Fatalf("forget record %+v", m)
	}

	fs.SetFaults(index.Fault{Op: index.OpDelete, Nth: 1, Sticky: true, Err: syscall.EIO})
	if _, err := r.Prune(ctx, false); !errors.Is(err, syscall.EIO) {
		t.Fatalf("prune: %v, want EIO", err)
	}
	m := records()[OpPrune]
	if m.Result != index.MaintenanceFailed || m.Error == "" {
		t.Fatalf("failed prune recorded %+v", m)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	r.Prune(cancelled, false)
	if got := records()[OpPrune]; got != m {
		t.Fatalf("a cancelled prune replaced the record: %+v", got)
	}
	fs.SetFaults()
	if _, err := r.Prune(ctx, false); err != nil {
		t.Fatal(err)
	}
	if m := records()[OpPrune]; m.Result != index.MaintenanceOK || m.Error != "" || m.Removed == 0 || m.BytesFreed == 0 {
		t.Fatalf("passing prune recorded %+v", m)
	}
}

// A check that does not replace found errors (a passing 10% read) still
// notes that it ran, so check_stale does not take standing errors for a
// check timer that stopped.
func TestCheckRecordNotesRunsThatKeepErrors(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "repo")
	if err := Init(dir, Options{}); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 1, 4, 0, 0, 0, time.UTC)
	r, err := Open(dir, Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	found := now
	r.recordCheck(ctx, CheckOptions{ReadData: true}, &CheckReport{Problems: []string{"pack x: blob y: hash mismatch"}}, found, nil)
	now = now.Add(7 * 24 * time.Hour)
	r.recordCheck(ctx, CheckOptions{ReadData: true, Subset: 0.1}, &CheckReport{}, now, nil)
	lc, err := r.LastCheck()
	if err != nil || lc == nil {
		t.Fatal(lc, err)
	}
	if lc.Result != index.CheckErrors || !lc.Time.Equal(found) || !lc.LastRun.Equal(now) || !lc.Ran().Equal(now) {
		t.Fatalf("record %+v: want the errors kept, with the later run noted", lc)
	}
}
