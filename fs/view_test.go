package fs

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// viewFixture has two days, a second shared by two snapshots and tags.
func viewFixture() []Snapshot {
	return []Snapshot{
		snap("s1", at("2026-11-25T02:00:00Z"), []string{"daily"}, map[string]*fnode{"models": dir("m1"), "configs": dir("c1")}),
		snap("s2", at("2026-11-26T02:00:00Z"), []string{"daily", "bad/tag", ".."}, map[string]*fnode{"configs": dir("c2")}),
		snap("s3", at("2026-11-26T02:00:00.5Z"), nil, map[string]*fnode{"configs": dir("c3")}),
		snap("s4", at("2026-11-26T03:15:00Z"), []string{"weekly"}, map[string]*fnode{"models": dir("m4")}),
	}
}

func srcAt(t *testing.T, v *view, dirPath, name string) *srcEntry {
	t.Helper()
	d := v.dirs[dirPath]
	if d == nil {
		t.Fatalf("no folder %q", dirPath)
	}
	e, ok := d.entries[name]
	if !ok || e.src == nil {
		t.Fatalf("%s/%s: not a source root (%+v)", dirPath, name, e)
	}
	return e.src
}

func TestBuildViewLayout(t *testing.T) {
	v := buildView(7, viewFixture(), time.UTC, true)
	if got, want := v.dirs[""].names, []string{"2026-11-25", "2026-11-26", "latest", "snapshots", "status", "tags"}; !slices.Equal(got, want) {
		t.Errorf("root = %q, want %q", got, want)
	}
	for _, c := range []struct{ dir, label, snap string }{
		{"2026-11-25", "models", "s1"},
		{"2026-11-25", "configs", "s1"},
		{"2026-11-26", "configs", "s3"}, // newest of the day, same second as s2
		{"2026-11-26", "models", "s4"},
		{"latest", "models", "s4"},
		{"latest", "configs", "s3"},
		{"snapshots/2026-11-26T02:00:00", "configs", "s2"},
		{"snapshots/2026-11-26T02:00:00.1", "configs", "s3"},
		{"tags/daily/2026-11-25T02:00:00", "models", "s1"},
		{"tags/daily/2026-11-26T02:00:00", "configs", "s2"},
		{"tags/weekly/2026-11-26T03:15:00", "models", "s4"},
	} {
		s := srcAt(t, v, c.dir, c.label)
		if s.scope.snapID != c.snap || s.scope.vpath != c.dir+"/"+c.label {
			t.Errorf("%s/%s = %+v, want snapshot %s", c.dir, c.label, *s.scope, c.snap)
		}
	}
	if got := v.dirs["tags"].names; !slices.Equal(got, []string{"daily", "weekly"}) {
		t.Errorf("tags = %q; invalid tag names must be skipped", got)
	}
	if got := v.dirs["2026-11-26"].mtime; !got.Equal(at("2026-11-26T03:15:00Z")) {
		t.Errorf("day mtime = %v", got)
	}
	if got := v.dirs[""].subdirs; got != 6 {
		t.Errorf("root subdirs = %d, want 6", got)
	}
}

// A snapshot taken later with the same second as an existing one must not
// rename the existing one's folder: paths a user copied must keep working.
func TestSnapshotNamesStableWhenTiesAppear(t *testing.T) {
	snaps := viewFixture()
	before := buildView(1, snaps, time.UTC, false)
	late := snap("s5", at("2026-11-26T02:00:00.9Z"), nil, map[string]*fnode{"logs": dir("l5")})
	after := buildView(2, append(snaps, late), time.UTC, false)
	for _, name := range before.dirs["snapshots"].names {
		b := before.dirs["snapshots/"+name]
		a := after.dirs["snapshots/"+name]
		if a == nil || !slices.Equal(a.names, b.names) {
			t.Errorf("snapshots/%s changed: %v -> %v", name, b, a)
		}
	}
	if srcAt(t, after, "snapshots/2026-11-26T02:00:00.2", "logs").scope.snapID != "s5" {
		t.Error("third snapshot of the second should be .2")
	}
}

func TestBuildViewLocalDays(t *testing.T) {
	tokyo := time.FixedZone("JST", 9*3600)
	v := buildView(1, viewFixture(), tokyo, false)
	// 2026-11-26T03:15Z is 12:15 in Tokyo; 2026-11-25T02:00Z is 11:00.
	if _, ok := v.dirs["2026-11-26"].entries["models"]; !ok {
		t.Error("models missing from 2026-11-26 local")
	}
	if _, ok := v.dirs["snapshots/2026-11-26T12:15:00"]; !ok {
		t.Errorf("snapshots named in UTC, not local: %q", v.dirs["snapshots"].names)
	}
	if _, ok := v.dirs[""].entries["status"]; ok {
		t.Error("status/ without a StatusSource")
	}
}

func TestBuildViewEmpty(t *testing.T) {
	v := buildView(0, nil, time.UTC, false)
	if got := v.dirs[""].names; !slices.Equal(got, []string{"latest", "snapshots", "tags"}) {
		t.Errorf("root = %q", got)
	}
}

func TestViewCacheRebuildsOnGeneration(t *testing.T) {
	tree := &fakeTree{}
	c := &viewCache{tree: tree, loc: time.UTC}
	ctx := context.Background()
	v1, err := c.get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	v2, _ := c.get(ctx)
	if v1 != v2 {
		t.Error("view rebuilt without a generation change")
	}
	tree.add(viewFixture()[0])
	v3, _ := c.get(ctx)
	if v3 == v1 || len(v3.dirs["latest"].names) != 2 {
		t.Errorf("view not rebuilt after a new snapshot: %v", v3.dirs["latest"].names)
	}
	tree.snapErr = errors.New("pebble: closed")
	tree.gen.Add(1)
	if _, err := c.get(ctx); err == nil {
		t.Error("Snapshots error not returned")
	}
}
