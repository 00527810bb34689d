package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// addEdgeCases adds to a corpusgen tree what corpusgen does not make but a
// faithful restore must keep: extended attributes, a foreign owner (file
// and symlink), a setuid bit, and a file name that is not UTF-8.
func addEdgeCases(t *testing.T, src string) {
	t.Helper()
	cfg := filepath.Join(src, "configs")
	files, _ := filepath.Glob(filepath.Join(cfg, "svc00", "part0", "*"))
	if len(files) == 0 {
		t.Fatal("corpusgen made no configs/svc00/part0 files")
	}
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	must("setxattr", syscall.Setxattr(files[0], "user.test", []byte("citadel \x00 binary"), 0))
	must("setxattr", syscall.Setxattr(files[0], "user.second", []byte("2"), 0))
	must("setxattr dir", syscall.Setxattr(filepath.Join(cfg, "svc01"), "user.dir", []byte("on a directory"), 0))
	must("chown", os.Chown(filepath.Join(cfg, "backup-hook.sh"), 1234, 5678))
	// chmod after chown: chown clears setuid, and so must a restore that
	// does them in the wrong order.
	must("chmod", syscall.Chmod(filepath.Join(cfg, "backup-hook.sh"), 0o4750))
	must("lchown", os.Lchown(filepath.Join(cfg, "current"), 4321, 8765))
	raw := filepath.Join(cfg, "odd names", "raw-\xff\xfe-name.bin")
	must("write", os.WriteFile(raw, []byte("not utf-8 named\n"), 0o640))
	// Keep mtimes deterministic-looking, to nanoseconds, on what we added.
	ts := time.Date(2026, 3, 4, 5, 6, 7, 123456789, time.UTC)
	must("chtimes", os.Chtimes(raw, ts, ts))
}

func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	src := smallCorpus(t, dir)
	addEdgeCases(t, src)
	repo := initRepo(t, dir)
	s := takeSnapshot(t, repo, sourceFlags(src)...)
	if len(s.Warnings) != 0 {
		t.Fatalf("snapshot warned on a readable tree: %v", s.Warnings)
	}
	if s.Files < 200 || s.NewBytes <= 0 || s.Stored <= 0 || s.Stored >= s.NewBytes {
		t.Fatalf("implausible summary for a fresh %d-file tree: %+v", s.Files, s)
	}

	out := restore(t, repo, "latest")
	ents, _ := os.ReadDir(out)
	if len(ents) != 3 {
		t.Fatalf("restore of a 3-source snapshot made %d entries in the target, want models, configs, logs", len(ents))
	}
	for _, l := range labels {
		assertSameTree(t, filepath.Join(src, l), filepath.Join(out, l))
	}

	// The sparse file's 255 MiB hole must stay a hole: 1 MiB of data, so
	// allow a little allocation slack but nowhere near the apparent size.
	a, err := lmeta(t, filepath.Join(src, "configs", "sparse.img"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := lmeta(t, filepath.Join(out, "configs", "sparse.img"))
	if err != nil {
		t.Fatal(err)
	}
	if b.size != 256<<20 || b.blocks*512 > a.blocks*512+(1<<20) || b.blocks*512 > 8<<20 {
		t.Fatalf("sparse.img: %d bytes, %d KiB allocated after restore (source %d KiB): holes were filled",
			b.size, b.blocks/2, a.blocks/2)
	}

	// A path inside a snapshot restores as its last element in the target.
	sub := restore(t, repo, "latest:configs/svc00")
	ents, _ = os.ReadDir(sub)
	if len(ents) != 1 || ents[0].Name() != "svc00" {
		t.Fatalf("restore latest:configs/svc00 made %v, want just svc00", ents)
	}
	assertSameTree(t, filepath.Join(src, "configs", "svc00"), filepath.Join(sub, "svc00"))

	// And by id prefix, a single file.
	one := restore(t, repo, s.ID[:10]+":configs/backup-hook.sh")
	assertSameFile(t, filepath.Join(src, "configs", "backup-hook.sh"), filepath.Join(one, "backup-hook.sh"))
}

// assertSameFile compares one file's bytes and metadata.
func assertSameFile(t *testing.T, a, b string) {
	t.Helper()
	da, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	db, err := os.ReadFile(b)
	if err != nil {
		t.Fatalf("restored file: %v", err)
	}
	if string(da) != string(db) {
		t.Fatalf("%s: restored bytes differ", b)
	}
	ma, _ := lmeta(t, a)
	mb, _ := lmeta(t, b)
	if ma.mode != mb.mode || ma.uid != mb.uid || ma.gid != mb.gid || ma.mtimeNs != mb.mtimeNs {
		t.Fatalf("%s: metadata %+v, restored %+v", b, ma, mb)
	}
}

func TestUnchangedSnapshotReadsNothing(t *testing.T) {
	dir := t.TempDir()
	src := smallCorpus(t, dir)
	repo := initRepo(t, dir)
	first := takeSnapshot(t, repo, sourceFlags(src)...)
	second := takeSnapshot(t, repo, sourceFlags(src)...)
	if second.ReadBytes != 0 || second.NewBytes != 0 {
		t.Fatalf("unchanged tree re-snapshot read %d and stored %d new bytes, want 0 and 0 (file-change cache)",
			second.ReadBytes, second.NewBytes)
	}
	if second.Files != first.Files || second.Bytes != first.Bytes || second.ID == first.ID {
		t.Fatalf("re-snapshot: %d files %d bytes id %s, first: %d files %d bytes id %s",
			second.Files, second.Bytes, second.ID, first.Files, first.Bytes, first.ID)
	}
	// The cache must not hide a change: touch one config keeping its size.
	p := filepath.Join(src, "configs", "hardlink-a.yaml")
	if err := os.WriteFile(p, []byte("shared: INODE\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	third := takeSnapshot(t, repo, sourceFlags(src)...)
	if third.ReadBytes == 0 || third.NewBytes == 0 {
		t.Fatalf("a rewritten file was not read again: read %d new %d", third.ReadBytes, third.NewBytes)
	}
	out := restore(t, repo, "latest")
	diffTrees(t, filepath.Join(src, "configs"), filepath.Join(out, "configs"))
}

// fileState is what decides whether a file changed between two walks.
type fileState struct {
	size  int64
	mtime int64
	ctime int64
	ino   uint64
}

func walkStates(t *testing.T, root string) map[string]fileState {
	t.Helper()
	out := map[string]fileState{}
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		out[rel] = fileState{st.Size, st.Mtim.Nano(), st.Ctim.Nano(), st.Ino}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// changedBytes sums, per source label, the sizes of the regular files that
// are new or changed between two walks (hardlinked files counted once).
func changedBytes(before, after map[string]fileState) map[string]int64 {
	out := map[string]int64{}
	seen := map[uint64]bool{}
	for rel, a := range after {
		if b, ok := before[rel]; ok && b == a {
			continue
		}
		if seen[a.ino] {
			continue
		}
		seen[a.ino] = true
		label, _, _ := strings.Cut(rel, string(filepath.Separator))
		out[label] += a.size
	}
	return out
}

func TestMutationsStoreOnlyWhatChanged(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	// 64 MiB of models gives mixtral a 16 MiB shard (~13 chunks of ~1.2 MiB);
	// on the 4 MiB shards of a smaller corpus one chunk is a quarter of the
	// file and no bound on re-stored bytes would mean anything.
	corpus(t, "-out", src, "-models-mb", "64", "-logs-mb", "2", "-configs", "200")
	repo := initRepo(t, dir)
	takeSnapshot(t, repo, sourceFlags(src)...)

	rewrote := regexp.MustCompile(`rewrote (\d+) bytes of (\S+) at`)
	shifted := regexp.MustCompile(`insert-shift: (\S+) header`)
	steps := []struct {
		name string
		args []string
		// check asserts the mutation-specific bound; out is corpusgen's
		// stdout, changed the changed bytes per label.
		check func(t *testing.T, out string, s snapSummary, changed map[string]int64)
	}{
		{"day", []string{"-mutate", "day", "-seed", "2"}, func(t *testing.T, out string, s snapSummary, changed map[string]int64) {
			if m := s.Sources["models"]; m.ReadBytes != 0 || m.NewBytes != 0 {
				t.Errorf("models untouched by -mutate day, yet read %d and stored %d new bytes", m.ReadBytes, m.NewBytes)
			}
			// ~1% of the configs are appended to: what is new must be a
			// small fraction of the configs source.
			if c := s.Sources["configs"]; c.NewBytes == 0 || c.NewBytes > c.Bytes/20 {
				t.Errorf("configs: %d new bytes of %d after touching %d bytes of files", c.NewBytes, c.Bytes, changed["configs"])
			}
			if s.Sources["logs"].NewBytes == 0 {
				t.Errorf("logs were appended to but nothing new was stored")
			}
		}},
		// -model mixtral: its shard in a 64 MiB tree is the largest (~15 MiB),
		// so a chunk is a small part of the file and the bounds mean
		// something; a seed alone could pick a 4 MiB shard.
		{"finetune", []string{"-mutate", "finetune", "-model", "mixtral", "-seed", "10"}, func(t *testing.T, out string, s snapSummary, changed map[string]int64) {
			m := rewrote.FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("corpusgen finetune printed %q", out)
			}
			region, _ := strconv.ParseInt(m[1], 10, 64)
			shard := fileSize(t, m[2])
			nb := s.Sources["models"].NewBytes
			// 5% of the shard rewritten in place: the chunks around it are
			// new (chunk boundaries need a chunk or two to fall back in
			// step), the rest deduplicates. Measured: 29%.
			if nb < region || nb > shard*35/100 {
				t.Errorf("finetune rewrote %d bytes of a %d-byte shard; %d new bytes stored, want between %d and 35%% of the shard",
					region, shard, nb, region)
			}
			if rb := s.Sources["models"].ReadBytes; rb != shard {
				t.Errorf("models: read %d bytes, want exactly the changed shard's %d", rb, shard)
			}
		}},
		{"insert-shift", []string{"-mutate", "insert-shift", "-model", "mixtral", "-seed", "13"}, func(t *testing.T, out string, s snapSummary, changed map[string]int64) {
			m := shifted.FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("corpusgen insert-shift printed %q", out)
			}
			shard := fileSize(t, m[1])
			nb := s.Sources["models"].NewBytes
			// Every byte moved, but content-defined boundaries realign after
			// the first chunk. Measured: 7%.
			if nb == 0 || nb > shard/4 {
				t.Errorf("insert-shift of a %d-byte shard stored %d new bytes, want (0, 25%%]", shard, nb)
			}
		}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			before := walkStates(t, src)
			out := corpus(t, append([]string{"-out", src}, st.args...)...)
			changed := changedBytes(before, walkStates(t, src))
			s := takeSnapshot(t, repo, sourceFlags(src)...)
			t.Logf("%s: changed %v; snapshot read %d new %d stored %d", st.name, changed, s.ReadBytes, s.NewBytes, s.Stored)
			for _, l := range labels {
				got := s.Sources[l]
				// Unchanged files are not read; changed ones are read whole,
				// and nothing stores more than the changed files hold.
				if got.ReadBytes != changed[l] {
					t.Errorf("%s: read %d bytes, but the changed files hold %d", l, got.ReadBytes, changed[l])
				}
				if got.NewBytes > changed[l] {
					t.Errorf("%s: %d new bytes stored, more than the %d bytes of changed files", l, got.NewBytes, changed[l])
				}
			}
			st.check(t, out, s, changed)
			restored := restore(t, repo, "latest")
			for _, l := range labels {
				assertSameTree(t, filepath.Join(src, l), filepath.Join(restored, l))
			}
		})
	}
}

func fileSize(t *testing.T, p string) int64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func TestRepairIndexRestoresEverySnapshot(t *testing.T) {
	dir := t.TempDir()
	src := smallCorpus(t, dir)
	repo := initRepo(t, dir)
	takeSnapshot(t, repo, sourceFlags(src)...)
	corpus(t, "-out", src, "-mutate", "day", "-seed", "2")
	takeSnapshot(t, repo, append(sourceFlags(src), "--tag", "daily")...)
	corpus(t, "-out", src, "-mutate", "finetune", "-seed", "3")
	takeSnapshot(t, repo, sourceFlags(src, "models")...)

	snaps := listSnapshots(t, repo)
	if len(snaps) != 3 {
		t.Fatalf("%d snapshots listed, want 3", len(snaps))
	}
	before := map[string]string{}
	for _, s := range snaps {
		before[s.ID] = restore(t, repo, s.ID)
	}

	if err := os.RemoveAll(filepath.Join(repo, "index")); err != nil {
		t.Fatal(err)
	}
	// A timer may open the repository before the operator repairs it;
	// whatever that does, repair must still rebuild everything.
	citadel(t, "snapshots", "--repo", repo)
	mustCitadel(t, "repair", "index", "--repo", repo)

	after := listSnapshots(t, repo)
	if fmt.Sprint(after) != fmt.Sprint(snaps) {
		t.Fatalf("snapshots after repair index:\n%v\nbefore:\n%v", after, snaps)
	}
	mustCitadel(t, "check", "--repo", repo, "--read-data")
	for _, s := range snaps {
		got := restore(t, repo, s.ID)
		for _, l := range s.Sources {
			assertSameTree(t, filepath.Join(before[s.ID], l), filepath.Join(got, l))
		}
	}
	// The rebuilt index knows every chunk: the same tree stores nothing new.
	if s := takeSnapshot(t, repo, sourceFlags(src)...); s.NewBytes != 0 {
		t.Fatalf("after repair index, an unchanged tree stored %d new bytes; the rebuilt index lost chunks", s.NewBytes)
	}
}

func TestRetentionForgetPrune(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	data := filepath.Join(src, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		t.Fatal(err)
	}
	repo := initRepo(t, dir)
	// One snapshot a day at 02:00 UTC from Thu 2026-01-01 to Mon 2026-02-09,
	// and a second one at 14:00 on the last day. Every day has its own
	// 600 KiB file (a chunk of its own), so prune has data to delete.
	start := time.Date(2026, 1, 1, 2, 0, 0, 0, time.UTC)
	var times []time.Time
	for d := 0; d < 40; d++ {
		times = append(times, start.AddDate(0, 0, d))
	}
	times = append(times, start.AddDate(0, 0, 39).Add(12*time.Hour))
	for i, at := range times {
		writeDay(t, data, i)
		takeSnapshot(t, repo, "--source", "data="+data, "--time", at.Format(time.RFC3339))
	}
	if n := len(listSnapshots(t, repo)); n != len(times) {
		t.Fatalf("%d snapshots, want %d", n, len(times))
	}
	packBytes := func() int64 {
		var n int64
		filepath.WalkDir(filepath.Join(repo, "packs"), func(p string, d os.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				fi, _ := d.Info()
				n += fi.Size()
			}
			return nil
		})
		return n
	}
	sizeBefore := packBytes()

	mustCitadel(t, "forget", "--repo", repo, "--keep-daily", "7", "--keep-weekly", "4", "--prune")

	// daily 7: Feb 3..9 (Feb 9's newest is 14:00); weekly 4 (ISO weeks,
	// Monday first): W07 Feb 9, W06 Feb 8, W05 Feb 1, W04 Jan 25.
	want := []string{"2026-01-25T02", "2026-02-01T02", "2026-02-03T02", "2026-02-04T02", "2026-02-05T02",
		"2026-02-06T02", "2026-02-07T02", "2026-02-08T02", "2026-02-09T14"}
	var got []string
	kept := listSnapshots(t, repo)
	for _, s := range kept {
		got = append(got, s.Time.UTC().Format("2006-01-02T15"))
	}
	sort.Strings(got)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("kept %d snapshots:\n  %v\nwant %d:\n  %v", len(got), got, len(want), want)
	}
	mustCitadel(t, "check", "--repo", repo, "--read-data")
	if after := packBytes(); after > sizeBefore*3/4 {
		t.Errorf("prune left %d of %d pack bytes after forgetting %d of %d snapshots", after, sizeBefore, len(times)-len(want), len(times))
	}
	// The oldest kept snapshot still has all its data: day 24 (Jan 25).
	for _, s := range kept {
		if s.Time.UTC().Format("2006-01-02") != "2026-01-25" {
			continue
		}
		out := restore(t, repo, s.ID)
		check := filepath.Join(dir, "day24")
		os.MkdirAll(check, 0o755)
		writeDay(t, check, 24)
		diffTrees(t, check, filepath.Join(out, "data"))
	}
}

// writeDay makes dir hold what it holds on day i: one small text file and one
// 600 KiB file whose bytes depend on i.
func writeDay(t *testing.T, dir string, i int) {
	t.Helper()
	big := make([]byte, 600<<10)
	x := uint64(i)*0x9e3779b97f4a7c15 + 1
	for j := range big {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		big[j] = byte(x)
	}
	if err := os.WriteFile(filepath.Join(dir, "big.bin"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "day.txt"), []byte(fmt.Sprintf("day %d\n", i)), 0o644); err != nil {
		t.Fatal(err)
	}
	ts := time.Date(2026, 1, 1, 0, 0, i, 0, time.UTC)
	os.Chtimes(filepath.Join(dir, "big.bin"), ts, ts)
	os.Chtimes(filepath.Join(dir, "day.txt"), ts, ts)
}

// TestRepoAndSourcesFromEnvAndConfig: timers run `citadelfs snapshot` with
// no flags, so the repository and sources must come from $CITADELFS_REPO
// and from the config file, in both its own keys and the seed's layout.
func TestRepoAndSourcesFromEnvAndConfig(t *testing.T) {
	dir := t.TempDir()
	src := smallCorpus(t, dir)
	repo := initRepo(t, dir)

	seed := filepath.Join(dir, "backup-config.yaml")
	os.WriteFile(seed, []byte(fmt.Sprintf(`backup_config:
  storage:
    backup_root: %s
    source_models: %s
    source_configs: %s
    source_logs: %s
`, repo, filepath.Join(src, "models"), filepath.Join(src, "configs"), filepath.Join(src, "logs"))), 0o644)
	s := takeSnapshot(t, "", "--config", seed)
	if len(s.Sources) != 3 || s.Sources["models"].Files == 0 || s.Sources["configs"].Files == 0 || s.Sources["logs"].Files == 0 {
		t.Fatalf("seed config: snapshot sources %v, want models, configs and logs", s.Sources)
	}

	own := filepath.Join(dir, "config.yaml")
	os.WriteFile(own, []byte(fmt.Sprintf("repo: %s\nsources:\n  etc: %s\n", repo, filepath.Join(src, "configs", "svc00"))), 0o644)
	s2 := takeSnapshot(t, "", "--config", own)
	if _, ok := s2.Sources["etc"]; !ok || len(s2.Sources) != 1 {
		t.Fatalf("own config: snapshot sources %v, want just etc", s2.Sources)
	}

	r := citadelEnv(t, []string{"CITADELFS_REPO=" + repo}, "snapshots", "--json")
	if r.code != 0 || !strings.Contains(r.stdout, s.ID) || !strings.Contains(r.stdout, s2.ID) {
		t.Fatalf("CITADELFS_REPO: snapshots does not list %s and %s:\n%s", s.ID, s2.ID, r)
	}
	out := filepath.Join(t.TempDir(), "out")
	if r := citadelEnv(t, []string{"CITADELFS_REPO=" + repo}, "restore", s.ID, out); r.code != 0 {
		t.Fatalf("restore via CITADELFS_REPO: %s", r)
	}
	for _, l := range labels {
		diffTrees(t, filepath.Join(src, l), filepath.Join(out, l))
	}
}

// Sources snapshotted apart (a timer each, as `citadelfs systemd` sets
// up): restore latest takes each source from its own newest snapshot, as
// the mount's latest/ does, and latest:LABEL/… finds the newest snapshot
// that has LABEL even when a newer one holds only another source.
func TestRestoreLatestPerSource(t *testing.T) {
	dir := t.TempDir()
	src := smallCorpus(t, dir)
	repo := initRepo(t, dir)
	takeSnapshot(t, repo, sourceFlags(src, "configs")...)
	takeSnapshot(t, repo, sourceFlags(src, "logs")...)

	out := restore(t, repo, "latest")
	for _, l := range []string{"configs", "logs"} {
		assertSameTree(t, filepath.Join(src, l), filepath.Join(out, l))
	}
	one := restore(t, repo, "latest:configs")
	assertSameTree(t, filepath.Join(src, "configs"), filepath.Join(one, "configs"))

	r := citadel(t, "restore", "--repo", repo, "latest:models", filepath.Join(dir, "none"))
	if r.code == 0 || !strings.Contains(r.stderr, `"models"`) {
		t.Fatalf("restore latest:models with no models snapshot: %s", r)
	}
}
