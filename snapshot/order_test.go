package snapshot

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Two snapshots of one label in one second, the second taken with --time
// backdated before the first: every "latest" is the one committed last.
// Snapshots sorted by Time alone and LatestSources by Time then Created
// picked the first, while the mount's latest/ showed the second.
func TestLatestIsLastCommittedOfItsSecond(t *testing.T) {
	r, _ := newRepo(t)
	ctx := context.Background()
	src := filepath.Join(t.TempDir(), "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	sec := time.Date(2026, 11, 26, 2, 0, 0, 0, time.UTC)
	take := func(content string, at time.Time) *Snapshot {
		t.Helper()
		if err := os.WriteFile(filepath.Join(src, "f"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		res, err := r.TakeSnapshot(ctx, Request{Sources: []SourceSpec{{Label: "c", Path: src}}, Time: at})
		if err != nil {
			t.Fatal(err)
		}
		return res.Snapshot
	}
	first := take("first", sec.Add(900*time.Millisecond))
	second := take("second", sec.Add(100*time.Millisecond))
	if !second.Created.After(first.Created) {
		// The clock did not move between two commits: nothing to order.
		t.Skipf("commit times %v, %v", first.Created, second.Created)
	}
	snaps, err := r.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	if len(snaps) != 2 || snaps[1].ID != second.ID {
		t.Fatalf("Snapshots order = %v, want %s last", snaps, second.ID.Short())
	}
	if s, err := r.FindSnapshot("latest"); err != nil || s.ID != second.ID {
		t.Errorf("FindSnapshot(latest) = %v, %v; want %s", s, err, second.ID.Short())
	}
	picks, err := r.LatestSources()
	if err != nil || len(picks) != 1 || picks[0].Snapshot.ID != second.ID {
		t.Errorf("LatestSources = %v, %v; want %s", picks, err, second.ID.Short())
	}
	ds := ApplyPolicy(snaps, Policy{Last: 1}, time.UTC)
	for _, d := range ds {
		if d.Keep != (d.Snapshot.ID == second.ID) {
			t.Errorf("keep-last 1 keeps %s = %v", d.Snapshot.ID.Short(), d.Keep)
		}
	}
}

func TestCompareOrder(t *testing.T) {
	sec := time.Date(2026, 11, 26, 2, 0, 0, 0, time.UTC)
	mk := func(id byte, at, created time.Duration) *Snapshot {
		s := &Snapshot{Manifest: Manifest{Time: sec.Add(at)}}
		if created != 0 {
			s.Created = sec.Add(created)
		}
		s.ID[0] = id
		return s
	}
	for _, c := range []struct {
		name string
		a, b *Snapshot
	}{
		{"by second first", mk(2, 0, 10*time.Second), mk(1, time.Second, 5*time.Second)},
		{"within a second by commit", mk(1, 900*time.Millisecond, time.Second), mk(2, 100*time.Millisecond, 2*time.Second)},
		{"no commit time: by Time", mk(2, 100*time.Millisecond, 0), mk(1, 900*time.Millisecond, 0)},
		{"then by id", mk(1, 0, 0), mk(2, 0, 0)},
	} {
		if Compare(c.a, c.b) >= 0 || Compare(c.b, c.a) <= 0 {
			t.Errorf("%s: a must come before b", c.name)
		}
	}
}
