package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// sourceState is one entry of `monitor --once --json`'s backup.sources.
type sourceState struct {
	Label       string `json:"label"`
	LastResult  string `json:"last_result"`
	LastSuccess string `json:"last_success"`
	LastTime    string `json:"last_time"`
}

// backupSources is what the monitor says of each source, by label.
func backupSources(t *testing.T, repo string) map[string]sourceState {
	t.Helper()
	r := citadel(t, "monitor", "--once", "--json", "--repo", repo)
	var doc struct {
		Backup struct {
			Sources []sourceState `json:"sources"`
		} `json:"backup"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		t.Fatalf("monitor --once --json: %v\n%s", err, r)
	}
	out := map[string]sourceState{}
	for _, s := range doc.Backup.Sources {
		out[s.Label] = s
	}
	return out
}

func assertSourcesKnown(t *testing.T, repo, when string) {
	t.Helper()
	srcs := backupSources(t, repo)
	for _, l := range labels {
		s, ok := srcs[l]
		if !ok || s.LastResult != "ok" || s.LastSuccess == "" || s.LastTime == "" {
			t.Errorf("%s: source %s reads %+v (present %v); want its last snapshot", when, l, s, ok)
		}
	}
}

// TestRepairIndexKeepsRecords: `repair index` wiped the check record, the
// corrupt-read record and the snapshot attempts, so backup_corrupt went
// quiet while the damaged pack was still there and every source read
// "never". It carries them over (and the quarantine) when the old index
// can be read, and when it cannot, re-derives the attempts from the
// snapshots and says integrity is unknown.
func TestRepairIndexKeepsRecords(t *testing.T) {
	dir := t.TempDir()
	src := smallCorpus(t, dir)
	repo := initRepo(t, dir)
	takeSnapshot(t, repo, sourceFlags(src)...)
	pack, size := largestPack(t, repo)
	flip4(t, pack, size)
	if r := citadel(t, "check", "--repo", repo, "--read-data"); r.code != 4 {
		t.Fatalf("check of a damaged pack: exit %d, want 4\n%s", r.code, r)
	}
	before := repoStatus(t, repo)
	if before.corrupt == nil || before.corrupt.State != "firing" {
		t.Fatalf("backup_corrupt before the repair: %+v", before.corrupt)
	}

	r := mustCitadel(t, "repair", "index", "--repo", repo, "--json")
	var res struct {
		Carried, Quarantined int
		OldIndex             string `json:"old_index"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || res.Carried == 0 || res.Quarantined == 0 || res.OldIndex != "" {
		t.Errorf("repair index --json: %+v %v\n%s", res, err, r)
	}
	after := repoStatus(t, repo)
	if after.corrupt == nil || after.corrupt.State != "firing" || after.corrupt.Message != before.corrupt.Message {
		t.Errorf("backup_corrupt after repair index: %+v, want still firing as before (%q)", after.corrupt, before.corrupt.Message)
	}
	if after.lastCheck == nil || *after.lastCheck != *before.lastCheck {
		t.Errorf("last check after repair index: %+v, want %+v", after.lastCheck, before.lastCheck)
	}
	assertSourcesKnown(t, repo, "after repair index")
	// The quarantine came along: a structural check still knows, and the
	// next snapshot heals.
	if r := citadel(t, "check", "--repo", repo); r.code != 4 || !strings.Contains(r.stdout, "quarantined") {
		t.Errorf("structural check after repair index: want exit 4 naming the quarantined chunk\n%s", r)
	}
	takeSnapshot(t, repo, sourceFlags(src)...)
	mustCitadel(t, "check", "--repo", repo, "--read-data")
	// The rebuilt index serves the good copy, not the damaged one that is
	// still in the old pack.
	mustCitadel(t, "repair", "index", "--repo", repo)
	mustCitadel(t, "check", "--repo", repo, "--read-data")
	restoreEverySnapshotMatches(t, repo, src)

	// The old index gone: what can be re-derived is, and integrity is
	// unknown until a full check passes.
	if err := os.RemoveAll(filepath.Join(repo, "index")); err != nil {
		t.Fatal(err)
	}
	r = mustCitadel(t, "repair", "index", "--repo", repo)
	if !strings.Contains(r.stdout, "integrity unknown") {
		t.Errorf("repair index without the old index does not say integrity is unknown:\n%s", r)
	}
	st := repoStatus(t, repo)
	if st.corrupt == nil || st.corrupt.State != "firing" || !strings.Contains(st.corrupt.Message, "integrity unknown") ||
		st.lastCheck == nil || st.lastCheck.Result != "unknown" {
		t.Errorf("backup_corrupt after rebuilding without the old index: %+v, last check %+v; want integrity unknown", st.corrupt, st.lastCheck)
	}
	assertSourcesKnown(t, repo, "after repair index without the old index")
	// A structural check does not settle it; a full read-back does.
	mustCitadel(t, "check", "--repo", repo)
	if st := repoStatus(t, repo); st.lastCheck == nil || st.lastCheck.Result != "unknown" {
		t.Errorf("a structural check cleared 'integrity unknown': %+v", st.lastCheck)
	}
	mustCitadel(t, "check", "--repo", repo, "--read-data")
	if st := repoStatus(t, repo); st.corrupt != nil && st.corrupt.State == "firing" {
		t.Errorf("backup_corrupt still firing after a full check passed: %+v", st.corrupt)
	}
	restoreEverySnapshotMatches(t, repo, src)
}

// packsOf lists the pack files of repo.
func packsOf(t *testing.T, repo string) map[string]bool {
	t.Helper()
	ps, _ := filepath.Glob(filepath.Join(repo, "packs", "*", "*.pack"))
	out := map[string]bool{}
	for _, p := range ps {
		out[filepath.Base(p)] = true
	}
	return out
}

// TestRepairPacks: `repair packs` salvages every readable blob of a
// damaged pack into a new pack and drops the damaged one, from the index
// and the disk; the blob it cannot salvage is reported with the files
// that used it, and exits 4. --dry-run changes nothing.
func TestRepairPacks(t *testing.T) {
	t.Run("damage a source still has", func(t *testing.T) {
		dir := t.TempDir()
		src := smallCorpus(t, dir)
		repo := initRepo(t, dir)
		takeSnapshot(t, repo, sourceFlags(src)...)
		pack, size := largestPack(t, repo)
		flip4(t, pack, size)
		if r := citadel(t, "check", "--repo", repo, "--read-data"); r.code != 4 {
			t.Fatalf("check: exit %d, want 4\n%s", r.code, r)
		}
		affected := regexp.MustCompile(`(?m)^affected: .*?: ((models|configs|logs)/\S+)`).FindStringSubmatch(
			citadel(t, "check", "--repo", repo, "--read-data").stdout)
		if affected == nil {
			t.Fatal("check names no affected file")
		}

		before := packsOf(t, repo)
		r := citadel(t, "repair", "packs", "--dry-run", "--repo", repo)
		if r.code != 4 || !strings.Contains(r.stdout, "would lose 1") || !strings.Contains(r.stdout, affected[1]) {
			t.Fatalf("repair packs --dry-run: want exit 4, 'would lose 1' and %s named\n%s", affected[1], r)
		}
		if fmt.Sprint(packsOf(t, repo)) != fmt.Sprint(before) {
			t.Fatalf("repair packs --dry-run changed the packs")
		}
		if r := citadel(t, "check", "--repo", repo); r.code != 4 {
			t.Fatalf("after a dry run the quarantine must stand: check exit %d\n%s", r.code, r)
		}

		r = citadel(t, "repair", "packs", "--repo", repo, "--json")
		var res struct {
			Salvaged, Lost int
			Packs          []struct {
				Pack    string   `json:"pack"`
				NewPack string   `json:"new_pack"`
				Lost    []string `json:"lost"`
			}
			Affected []string
		}
		if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || r.code != 4 || res.Lost != 1 || res.Salvaged == 0 ||
			len(res.Packs) != 1 || res.Packs[0].NewPack == "" || len(res.Affected) == 0 {
			t.Fatalf("repair packs --json: exit %d, %+v %v\n%s", r.code, res, err, r)
		}
		if _, err := os.Stat(pack); err == nil {
			t.Fatalf("the damaged pack %s is still on disk", filepath.Base(pack))
		}
		if !packsOf(t, repo)[res.Packs[0].NewPack+".pack"] {
			t.Fatalf("new pack %s not on disk", res.Packs[0].NewPack)
		}
		// What was salvaged restores; the one lost chunk is missing, and
		// said so, never wrong bytes.
		r = citadel(t, "check", "--repo", repo, "--read-data")
		if r.code != 4 || !strings.Contains(r.stdout, "not in the index") || !strings.Contains(r.stdout, affected[1]) {
			t.Fatalf("check after repair packs: want the lost chunk and %s named\n%s", affected[1], r)
		}
		out := filepath.Join(t.TempDir(), "out")
		if r := citadel(t, "restore", "--repo", repo, "latest", out); r.code != 4 {
			t.Fatalf("restore with a lost chunk: exit %d, want 4\n%s", r.code, r)
		}
		if n := assertPresentFilesMatch(t, src, out); n < 200 {
			t.Errorf("only %d files restored after salvage", n)
		}
		// Nothing left to repair; the next snapshot stores the lost chunk
		// again from the source, and every snapshot is whole.
		if r := mustCitadel(t, "repair", "packs", "--repo", repo); !strings.Contains(r.stdout, "no damaged packs") {
			t.Errorf("second repair packs:\n%s", r)
		}
		takeSnapshot(t, repo, sourceFlags(src)...)
		mustCitadel(t, "check", "--repo", repo, "--read-data")
		restoreEverySnapshotMatches(t, repo, src)
	})

	t.Run("pack with a healed bad copy", func(t *testing.T) {
		dir := t.TempDir()
		src := smallCorpus(t, dir)
		repo := initRepo(t, dir)
		takeSnapshot(t, repo, sourceFlags(src)...)
		pack, size := largestPack(t, repo)
		flip4(t, pack, size)
		citadel(t, "check", "--repo", repo, "--read-data")
		takeSnapshot(t, repo, sourceFlags(src)...) // stores the chunk again
		// The pack still holds the bad copy (and live blobs): repair packs
		// moves every live blob out and drops it, losing nothing.
		r := mustCitadel(t, "repair", "packs", "--repo", repo)
		if !strings.Contains(r.stdout, "0 lost") {
			t.Errorf("repair packs of a healed pack:\n%s", r)
		}
		if _, err := os.Stat(pack); err == nil {
			t.Errorf("the damaged pack %s is still on disk", filepath.Base(pack))
		}
		mustCitadel(t, "check", "--repo", repo, "--read-data")
		restoreEverySnapshotMatches(t, repo, src)
	})
}

// TestRepairSnapshots: snapshots that use a chunk no copy of which is
// left are rewritten: the damaged file kept truncated to its good prefix,
// marked with an xattr and named, never zero-filled; --dry-run changes
// nothing; --forget removes the originals. Afterwards every snapshot
// restores, and with `repair packs` check --read-data passes.
func TestRepairSnapshots(t *testing.T) {
	dir := t.TempDir()
	src := smallCorpus(t, dir)
	repo := initRepo(t, dir)
	takeSnapshot(t, repo, sourceFlags(src)...)
	corpus(t, "-out", src, "-mutate", "day", "-seed", "2")
	takeSnapshot(t, repo, sourceFlags(src)...)
	before := listSnapshots(t, repo)
	pack, size := largestPack(t, repo)
	flip4(t, pack, size)
	r := citadel(t, "check", "--repo", repo, "--read-data")
	m := regexp.MustCompile(`(?m)^affected: snapshot \S+ \S+: ((models|configs|logs)/\S+)`).FindStringSubmatch(r.stdout)
	if r.code != 4 || m == nil {
		t.Fatalf("check: want exit 4 and an affected file\n%s", r)
	}
	damaged := m[1]

	r = citadel(t, "repair", "snapshots", "--dry-run", "--repo", repo)
	if r.code != 4 || !strings.Contains(r.stdout, "file "+damaged+": bytes ") || !strings.Contains(r.stdout, "nothing changed") {
		t.Fatalf("repair snapshots --dry-run: want exit 4 naming %s\n%s", damaged, r)
	}
	if got := listSnapshots(t, repo); fmt.Sprint(got) != fmt.Sprint(before) {
		t.Fatalf("dry run changed the snapshots:\n%v\nbefore:\n%v", got, before)
	}

	r = mustCitadel(t, "repair", "snapshots", "--forget", "--repo", repo, "--json")
	var res struct {
		Snapshots []struct {
			Snapshot, Repaired string
			Paths              []struct {
				Path, Kind, Lost string
				Kept             int64 `json:"kept_bytes"`
				Size             int64
			}
		}
		Forgotten []string
	}
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || len(res.Snapshots) == 0 || len(res.Forgotten) != len(res.Snapshots) {
		t.Fatalf("repair snapshots --json: %+v %v\n%s", res, err, r)
	}
	after := listSnapshots(t, repo)
	if len(after) != len(before) {
		t.Fatalf("%d snapshots after repair --forget, want %d (each replaced)", len(after), len(before))
	}
	repaired := map[string]bool{}
	for _, s := range res.Snapshots {
		repaired[s.Repaired] = true
	}
	for _, s := range after {
		if repaired[s.ID] != strings.Contains(fmt.Sprint(s.Tags), "repaired") {
			t.Errorf("snapshot %s: tags %v, repaired %v", s.ID[:8], s.Tags, repaired[s.ID])
		}
	}
	// Every snapshot restores now; the damaged file is its good prefix,
	// marked, and the rest of the newest is the source as it is.
	for _, s := range after {
		out := restore(t, repo, s.ID)
		if s.ID != after[len(after)-1].ID {
			continue
		}
		for _, l := range s.Sources {
			if !strings.HasPrefix(damaged, l+"/") {
				diffTrees(t, filepath.Join(src, l), filepath.Join(out, l))
			}
		}
		got, err := os.ReadFile(filepath.Join(out, damaged))
		if err != nil {
			t.Fatal(err)
		}
		want, _ := os.ReadFile(filepath.Join(src, damaged))
		if len(got) >= len(want) || string(got) != string(want[:len(got)]) {
			t.Errorf("%s restored as %d bytes, want a strict prefix of its %d bytes", damaged, len(got), len(want))
		}
		xs, err := readXattrs(filepath.Join(out, damaged))
		if err != nil || !strings.Contains(xs["user.citadelfs.repaired"], "lost") {
			t.Errorf("%s carries no repair marker: %v %v", damaged, xs, err)
		}
	}
	// The snapshots no longer use the damaged chunk; repair packs drops
	// it (no loss: nothing uses it), and a full check passes.
	mustCitadel(t, "check", "--repo", repo)
	r = mustCitadel(t, "repair", "packs", "--repo", repo)
	if !strings.Contains(r.stdout, "0 lost") {
		t.Errorf("repair packs after repair snapshots:\n%s", r)
	}
	mustCitadel(t, "check", "--repo", repo, "--read-data")
	if r := mustCitadel(t, "repair", "snapshots", "--repo", repo); !strings.Contains(r.stdout, "no snapshot uses lost data") {
		t.Errorf("second repair snapshots:\n%s", r)
	}
}

// Every form of repair refuses bad input with one line and exit 2, and a
// missing repository with exit 10, changing nothing.
func TestRepairBadInput(t *testing.T) {
	dir := t.TempDir()
	repo := initRepo(t, dir)
	for _, tc := range []struct {
		args     []string
		code     int
		mentions []string
	}{
		{[]string{"repair"}, 2, []string{"index|packs|snapshots"}},
		{[]string{"repair", "everything"}, 2, []string{"index|packs|snapshots"}},
		{[]string{"repair", "index", "extra"}, 2, []string{"usage"}},
		{[]string{"repair", "snapshots", "extra"}, 2, []string{"usage"}},
		{[]string{"repair", "index", "--dry-run"}, 2, []string{"--dry-run"}},
		{[]string{"repair", "packs", "--forget"}, 2, []string{"--forget"}},
		{[]string{"repair", "packs", "zzzz"}, 1, []string{"no pack"}},
		{[]string{"repair", "snapshots", "--bogus"}, 2, []string{"bogus"}},
	} {
		r := citadel(t, append(tc.args, "--repo", repo)...)
		assertOneLineError(t, r, tc.code, tc.mentions...)
	}
	for _, sub := range []string{"index", "packs", "snapshots"} {
		r := citadel(t, "repair", sub, "--repo", filepath.Join(dir, "nothing"))
		assertOneLineError(t, r, 10)
	}
}
