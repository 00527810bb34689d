package snapshot

import (
	"context"
	"testing"
)

func TestAddTag(t *testing.T) {
	ctx := context.Background()
	r, _ := newRepo(t)
	_, data, res := snapshotRandomFile(t, r, "f", 1<<20, 5)
	old := res.Snapshot
	got, err := r.AddTag(ctx, []*Snapshot{old}, "archive")
	if err != nil || len(got) != 1 || got[0].Old != old.ID || got[0].New == old.ID {
		t.Fatalf("AddTag: %+v %v", got, err)
	}
	snaps, _ := r.Snapshots()
	if len(snaps) != 1 || snaps[0].ID != got[0].New || !snaps[0].HasTag("archive") || !snaps[0].Time.Equal(old.Time) ||
		!snaps[0].Created.Equal(old.Created) || snaps[0].Sources[0].Tree != old.Sources[0].Tree {
		t.Fatalf("after tagging: %+v", snaps)
	}
	if _, err := r.FindSnapshot(old.ID.String()); err == nil {
		t.Error("the untagged manifest is still there")
	}
	mustRestore(t, r, snaps[0], "f", data)
	mustCheck(t, r, "after tagging")
	// Tagging again changes nothing; a crash between write and forget
	// (the old manifest still there) gives the same new id.
	if again, err := r.AddTag(ctx, snaps, "archive"); err != nil || len(again) != 0 {
		t.Fatalf("second AddTag: %+v %v", again, err)
	}
	m := old.Manifest
	m.Tags = append(m.Tags, "archive")
	if id, err := r.writeManifest(&m); err != nil || id != got[0].New {
		t.Fatalf("the same tagged manifest has id %s, want %s (%v)", id.Short(), got[0].New.Short(), err)
	}
}
