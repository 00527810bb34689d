package fs

import (
	"context"
	"errors"
	"maps"
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

// Ids of the two snapshots that share 2026-11-26T02:00:00 in viewFixture:
// s2 comes first (was committed first), so its id order and Time order
// both disagree with the order the fixture gives.
const (
	idS2 = "5e2d9f0a77c1"
	idS3 = "3c3b8e4f11d0"
)

// viewFixture has two days, a second shared by two snapshots and tags,
// in the order the engine gives them (snapshot.Compare: by second, then
// commit order).
func viewFixture() []Snapshot {
	return []Snapshot{
		snap("s1", at("2026-11-25T02:00:00Z"), []string{"daily"}, map[string]*fnode{"models": dir("m1"), "configs": dir("c1")}),
		// s3 was taken later with --time backdated into s2's second,
		// before s2's own time.
		snap(idS2, at("2026-11-26T02:00:00.5Z"), []string{"daily", "bad/tag", ".."}, map[string]*fnode{"configs": dir("c2")}),
		snap(idS3, at("2026-11-26T02:00:00.2Z"), nil, map[string]*fnode{"configs": dir("c3")}),
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
	v := buildView(7, viewFixture(), time.UTC, "", true, nil)
	if got, want := v.dirs[""].names, []string{"2026-11-25", "2026-11-26", "hosts", "latest", "snapshots", "status", "tags"}; !slices.Equal(got, want) {
		t.Errorf("root = %q, want %q", got, want)
	}
	for _, c := range []struct{ dir, label, snap string }{
		{"2026-11-25", "models", "s1"},
		{"2026-11-25", "configs", "s1"},
		// Within one second the last given wins, not the later Time
		// nor the higher id: fs shows the order it is given.
		{"2026-11-26", "configs", idS3},
		{"2026-11-26", "models", "s4"},
		{"latest", "models", "s4"},
		{"latest", "configs", idS3},
		// The first committed of the second keeps the bare name.
		{"snapshots/2026-11-26T02:00:00", "configs", idS2},
		{"snapshots/2026-11-26T02:00:00.3c3b8e4f", "configs", idS3},
		{"tags/daily/2026-11-25T02:00:00", "models", "s1"},
		{"tags/daily/2026-11-26T02:00:00", "configs", idS2},
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
	if got := v.dirs[""].subdirs; got != 7 {
		t.Errorf("root subdirs = %d, want 7", got)
	}
}

// Every host's snapshots are under hosts/<host>/ (its own day folders and
// latest/); the top level shows only the mounting host's, and those that
// record no host. snapshots/ and tags/ keep every snapshot.
func TestBuildViewHosts(t *testing.T) {
	withHost := func(s Snapshot, h string) Snapshot { s.Host = h; return s }
	snaps := []Snapshot{
		withHost(snap("a1", at("2026-11-25T02:00:00Z"), nil, map[string]*fnode{"models": dir("ma1")}), "a"),
		withHost(snap("b1", at("2026-11-25T03:00:00Z"), nil, map[string]*fnode{"models": dir("mb1")}), "b"),
		withHost(snap("a2", at("2026-11-26T02:00:00Z"), nil, map[string]*fnode{"configs": dir("ca2")}), "a"),
		withHost(snap("b2", at("2026-11-27T02:00:00Z"), []string{"daily"}, map[string]*fnode{"models": dir("mb2"), "configs": dir("cb2")}), "b"),
		snap("n1", at("2026-11-26T05:00:00Z"), nil, map[string]*fnode{"logs": dir("ln1")}), // no host recorded
		withHost(snap("x1", at("2026-11-26T06:00:00Z"), nil, map[string]*fnode{"logs": dir("lx1")}), "../x"),
	}
	v := buildView(1, snaps, time.UTC, "a", false, nil)
	if got, want := v.dirs[""].names, []string{"2026-11-25", "2026-11-26", "hosts", "latest", "snapshots", "tags"}; !slices.Equal(got, want) {
		t.Errorf("root = %q, want %q (b's 2026-11-27 is not a's)", got, want)
	}
	if got, want := v.dirs["hosts"].names, []string{"a", "b"}; !slices.Equal(got, want) {
		t.Errorf("hosts = %q, want %q (an invalid host name is skipped)", got, want)
	}
	if got, want := v.dirs["hosts/b"].names, []string{"2026-11-25", "2026-11-27", "latest"}; !slices.Equal(got, want) {
		t.Errorf("hosts/b = %q, want %q", got, want)
	}
	for _, c := range []struct{ dir, label, snap string }{
		{"latest", "models", "a1"},
		{"latest", "configs", "a2"},
		{"latest", "logs", "n1"},
		{"2026-11-25", "models", "a1"},
		{"hosts/a/latest", "models", "a1"},
		{"hosts/a/latest", "configs", "a2"},
		{"hosts/a/2026-11-26", "configs", "a2"},
		{"hosts/b/latest", "models", "b2"},
		{"hosts/b/latest", "configs", "b2"},
		{"hosts/b/2026-11-25", "models", "b1"},
		{"snapshots/2026-11-27T02:00:00", "models", "b2"},
		{"snapshots/2026-11-26T06:00:00", "logs", "x1"},
		{"tags/daily/2026-11-27T02:00:00", "configs", "b2"},
	} {
		s := srcAt(t, v, c.dir, c.label)
		if s.scope.snapID != c.snap || s.scope.vpath != c.dir+"/"+c.label {
			t.Errorf("%s/%s = %+v, want snapshot %s", c.dir, c.label, *s.scope, c.snap)
		}
	}
	if _, ok := v.dirs["hosts/a/latest"].entries["logs"]; ok {
		t.Error("hosts/a/latest/logs: a snapshot that records no host is no host's under hosts/")
	}
	if got := v.dirs["hosts/b"].mtime; !got.Equal(at("2026-11-27T02:00:00Z")) {
		t.Errorf("hosts/b mtime = %v", got)
	}
	// A mount that names no host shows every snapshot at the top level.
	all := buildView(1, snaps, time.UTC, "", false, nil)
	if s := srcAt(t, all, "latest", "models"); s.scope.snapID != "b2" {
		t.Errorf("no host: latest/models = %s, want b2", s.scope.snapID)
	}
}

// snapshotFolders maps each folder under snapshots/ to its snapshot's id.
func snapshotFolders(t *testing.T, v *view) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, name := range v.dirs["snapshots"].names {
		d := v.dirs["snapshots/"+name]
		for _, label := range d.names {
			out[name] = srcAt(t, v, d.path, label).scope.snapID
		}
	}
	return out
}

// checkKept fails if a folder of before is gone or shows another snapshot
// in after, except the folders of the forgotten snapshots.
func checkKept(t *testing.T, before, after map[string]string, forgotten ...string) {
	t.Helper()
	for name, id := range before {
		if slices.Contains(forgotten, id) {
			if after[name] != "" {
				t.Errorf("snapshots/%s of forgotten %s now shows %s", name, id, after[name])
			}
			continue
		}
		if after[name] != id {
			t.Errorf("snapshots/%s: was %s, now %q (folders now %v)", name, id, after[name], after)
		}
	}
}

// A snapshot taken in the same second as existing ones, even backdated
// with --time to before them and with a lower id, must not rename their
// folders: ranking by id renamed one from .1 to .2 to .3 under a user's
// feet.
func TestSnapshotNamesStableWhenTiesAppear(t *testing.T) {
	snaps := viewFixture()
	for _, prev := range []bool{false, true} {
		before := buildView(1, snaps, time.UTC, "", false, nil)
		late := snap("0b7e11aa42", at("2026-11-26T02:00:00Z"), nil, map[string]*fnode{"logs": dir("l5")})
		var p *view
		if prev {
			p = before
		}
		// Committed last, it is the last of its second (before s4).
		after := buildView(2, slices.Insert(slices.Clone(snaps), 3, late), time.UTC, "", false, p)
		a := snapshotFolders(t, after)
		checkKept(t, snapshotFolders(t, before), a)
		if a["2026-11-26T02:00:00.0b7e11aa"] != late.ID {
			t.Errorf("new snapshot of a taken second: folders %v", a)
		}
		if id := srcAt(t, after, "latest", "logs").scope.snapID; id != late.ID {
			t.Errorf("latest/logs = %s", id)
		}
	}
}

// Forgetting a snapshot must not rename another one's folder while the
// mount runs: forgetting S1 renamed S2's folder from T.1 to T while a
// reader copied out of it, and its files went ENOENT mid-copy.
func TestSnapshotNamesStableWhenForgotten(t *testing.T) {
	const a, b, c, d = "aa00000000000001", "bb00000000000002", "cc00000000000003", "dd00000000000004"
	mk := func(id, tm string) Snapshot {
		return snap(id, at(tm), nil, map[string]*fnode{"configs": dir(id)})
	}
	tree := &fakeTree{}
	// Committed (given) in the order c, a, b: Time and id orders differ.
	tree.add(mk(c, "2026-11-26T02:00:00.5Z"))
	tree.add(mk(a, "2026-11-26T02:00:00.1Z"))
	tree.add(mk(b, "2026-11-26T02:00:00.9Z"))
	cache := &viewCache{tree: tree, loc: time.UTC}
	get := func() map[string]string {
		t.Helper()
		v, err := cache.get(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return snapshotFolders(t, v)
	}
	v0 := get()
	want := map[string]string{"2026-11-26T02:00:00": c, "2026-11-26T02:00:00.aa000000": a, "2026-11-26T02:00:00.bb000000": b}
	if !maps.Equal(v0, want) {
		t.Fatalf("folders = %v, want %v", v0, want)
	}
	tree.forget(a) // one with a suffix
	v1 := get()
	checkKept(t, v0, v1, a)
	tree.forget(c) // the one holding the bare name
	v2 := get()
	checkKept(t, v1, v2, c)
	if len(v2) != 1 {
		t.Errorf("folders after forgetting a, c = %v", v2)
	}
	// A new snapshot of the second does not take the freed bare name
	// either: it would mean another snapshot than it did.
	tree.add(mk(d, "2026-11-26T02:00:00.3Z"))
	v3 := get()
	checkKept(t, v2, v3)
	if v3["2026-11-26T02:00:00.dd000000"] != d || v3["2026-11-26T02:00:00"] != "" {
		t.Errorf("folders after a new one = %v", v3)
	}
	// A new mount names the second afresh: b, now the first committed,
	// gets the bare name.
	fresh := snapshotFolders(t, buildView(9, tree.snaps, time.UTC, "", false, nil))
	if fresh["2026-11-26T02:00:00"] != b {
		t.Errorf("new mount folders = %v", fresh)
	}
}

// Two snapshots whose ids share their first 8 digits: the later committed
// one gets more digits, and the earlier one's name does not change.
func TestSnapshotNamesSharedIDPrefix(t *testing.T) {
	mk := func(id string) Snapshot {
		return snap(id, at("2026-11-26T02:00:00Z"), nil, map[string]*fnode{"configs": dir(id)})
	}
	one := []Snapshot{mk("0000000000"), mk("abcdef0199")}
	v1 := buildView(1, one, time.UTC, "", false, nil)
	two := append(slices.Clone(one), mk("abcdef0123"))
	f2 := snapshotFolders(t, buildView(2, two, time.UTC, "", false, nil))
	checkKept(t, snapshotFolders(t, v1), f2)
	if f2["2026-11-26T02:00:00.abcdef01"] != "abcdef0199" || f2["2026-11-26T02:00:00.abcdef012"] != "abcdef0123" {
		t.Errorf("folders = %v", f2)
	}
}

func TestBuildViewLocalDays(t *testing.T) {
	tokyo := time.FixedZone("JST", 9*3600)
	v := buildView(1, viewFixture(), tokyo, "", false, nil)
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
	v := buildView(0, nil, time.UTC, "", false, nil)
	if got := v.dirs[""].names; !slices.Equal(got, []string{"hosts", "latest", "snapshots", "tags"}) {
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
