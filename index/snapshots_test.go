package index

import (
	"bytes"
	"errors"
	"testing"
)

// A snapshot record is found by id once PutSnapshot committed it, with the
// manifest it was given, and is gone after DeleteSnapshot.
func TestSnapshotRecordByID(t *testing.T) {
	r := newTestRepo(t)
	manifest := []byte(`{"sources":[]}`)
	id := Hash(manifest)
	if ok, err := r.HasSnapshot(id); ok || err != nil {
		t.Fatalf("before: %v %v", ok, err)
	}
	if err := r.PutSnapshot(id, manifest); err != nil {
		t.Fatal(err)
	}
	if ok, err := r.HasSnapshot(id); !ok || err != nil {
		t.Fatalf("after Put: %v %v", ok, err)
	}
	if m, err := r.SnapshotManifest(id); err != nil || !bytes.Equal(m, manifest) {
		t.Fatalf("SnapshotManifest = %q, %v", m, err)
	}
	if err := r.DeleteSnapshot(id); err != nil {
		t.Fatal(err)
	}
	if _, err := r.SnapshotManifest(id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after Delete: %v", err)
	}
}
