package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"citadelfs/index"

	"github.com/cockroachdb/pebble/sstable"
	"github.com/cockroachdb/pebble/vfs"
)

// TestConfigDamageRefusedAtOpen: citadel.json is verified before anything
// trusts it. A flipped digit in a chunker size used to open (and chunk
// with the wrong size); a huge chunker.max, hand-edited, used to pass
// check and crash the next snapshot with a 400-line out-of-memory trace
// and exit 2. Both are one line and exit 4 now.
func TestConfigDamageRefusedAtOpen(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src", "c")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "a"), []byte("a"), 0o644)
	repo := initRepo(t, dir)
	cj := filepath.Join(repo, "citadel.json")
	orig, err := os.ReadFile(cj)
	if err != nil {
		t.Fatal(err)
	}

	// One digit of chunker.max changed (4194304 -> 4194305): still valid
	// JSON with plausible sizes; only the checksum says it is not what
	// init wrote.
	flipped := regexp.MustCompile(`("max":\s*419430)4`).ReplaceAll(orig, []byte("${1}5"))
	if string(flipped) == string(orig) {
		t.Fatalf("citadel.json has no max 4194304 to flip:\n%s", orig)
	}
	os.WriteFile(cj, flipped, 0o600)
	assertOneLineError(t, citadel(t, "check", "--repo", repo), 4, "citadel.json", "checksum")
	assertOneLineError(t, citadel(t, "snapshot", "--repo", repo, "--source", "c="+src), 4, "citadel.json", "checksum")

	// A hand edit without the checksum (as a file from before checksums
	// has none): the sizes themselves are bounded.
	var m map[string]any
	if err := json.Unmarshal(orig, &m); err != nil {
		t.Fatal(err)
	}
	delete(m, "checksum")
	m["chunker"].(map[string]any)["max"] = 1 << 40
	huge, _ := json.MarshalIndent(m, "", "  ")
	os.WriteFile(cj, huge, 0o600)
	for _, cmd := range [][]string{{"check"}, {"snapshot", "--source", "c=" + src}} {
		assertOneLineError(t, citadel(t, append(cmd, "--repo", repo)...), 4, "citadel.json", "chunker sizes", "1099511627776")
	}
	// Sizes inside the bounds but unusable by the chunker (an average
	// that is not a power of two).
	m["chunker"].(map[string]any)["max"] = 4 << 20
	m["chunker"].(map[string]any)["avg"] = 1000000
	odd, _ := json.MarshalIndent(m, "", "  ")
	os.WriteFile(cj, odd, 0o600)
	assertOneLineError(t, citadel(t, "snapshot", "--repo", repo, "--source", "c="+src), 4, "citadel.json", "power of two")

	// The original back: everything works, and a writer seals a file
	// without a checksum.
	delete(m, "chunker")
	json.Unmarshal(orig, &m)
	delete(m, "checksum")
	legacy, _ := json.MarshalIndent(m, "", "  ")
	os.WriteFile(cj, legacy, 0o600)
	mustCitadel(t, "snapshot", "--repo", repo, "--source", "c="+src)
	sealed, _ := os.ReadFile(cj)
	if string(sealed) != string(orig) {
		t.Fatalf("a writer's open should seal the legacy citadel.json as init wrote it:\n%s\nwant:\n%s", sealed, orig)
	}
	mustCitadel(t, "check", "--repo", repo, "--read-data")
}

// sstRegion is one block of a Pebble table, or one record in a data block.
type sstRegion struct {
	name     string // "data", "index", "properties", "meta-index", "footer", …
	off, len int64
}

// sstLayout lists the blocks of the table at path (Pebble's own layout
// description) and, for each key whose first byte is in prefixes, the file
// offset of its record.
func sstLayout(t *testing.T, path string, prefixes string) (blocks []sstRegion, records map[byte][]int64) {
	t.Helper()
	f, err := vfs.Default.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	readable, err := sstable.NewSimpleReadable(f)
	if err != nil {
		t.Fatal(err)
	}
	r, err := sstable.NewReader(readable, sstable.ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	l, err := r.Layout()
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	records = map[byte][]int64{}
	recordLine := regexp.MustCompile(`(?m)^\s*(\d+)\s+record \(`)
	l.Describe(&out, true, r, func(k *sstable.InternalKey, _ []byte) {
		if len(k.UserKey) == 0 || !strings.ContainsRune(prefixes, rune(k.UserKey[0])) {
			return
		}
		// Describe has just printed this record's line, with its offset.
		m := recordLine.FindAllStringSubmatch(out.String(), -1)
		off, _ := strconv.ParseInt(m[len(m)-1][1], 10, 64)
		records[k.UserKey[0]] = append(records[k.UserKey[0]], off)
	})
	blockLine := regexp.MustCompile(`(?m)^\s*(\d+)  ([a-z-]+) \((\d+)\)$`)
	for _, m := range blockLine.FindAllStringSubmatch(out.String(), -1) {
		off, _ := strconv.ParseInt(m[1], 10, 64)
		n, _ := strconv.ParseInt(m[3], 10, 64)
		blocks = append(blocks, sstRegion{m[2], off, n})
	}
	if len(blocks) == 0 {
		t.Fatalf("%s: no blocks in the layout:\n%s", path, out.String())
	}
	return blocks, records
}

// indexTables returns the repository's Pebble tables.
func indexTables(t *testing.T, repo string) []string {
	t.Helper()
	ssts, _ := filepath.Glob(filepath.Join(repo, "index", "*.sst"))
	if len(ssts) == 0 {
		t.Fatalf("no Pebble table in %s/index", repo)
	}
	return ssts
}

// TestCheckReadsEveryIndexTable: a flipped byte in a Pebble block that
// holds only file-change-cache records (which check did not read) used to
// pass `check --read-data`; every compaction touching the table then
// failed in the background. Now a plain check (no --read-data) exits 4
// with one line naming the index and the remedy, the monitor raises
// backup_corrupt, and `repair index` puts it right.
func TestCheckReadsEveryIndexTable(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	corpus(t, "-out", src, "-models-mb", "2", "-logs-mb", "1", "-configs", "100")
	repo := initRepo(t, dir)
	takeSnapshot(t, repo, sourceFlags(src)...)
	mustCitadel(t, "check", "--repo", repo) // its open flushes the WAL into a table

	var table string
	var off int64
	for _, sst := range indexTables(t, repo) {
		_, recs := sstLayout(t, sst, "f")
		if len(recs['f']) > 0 {
			table, off = sst, recs['f'][len(recs['f'])/2]
			break
		}
	}
	if table == "" {
		t.Fatal("no Pebble table holds file-change-cache records")
	}
	flipByte(t, table, off+3)

	r := citadel(t, "check", "--repo", repo)
	if r.code != 4 || !regexp.MustCompile(`(?m)^error: index: table `+regexp.QuoteMeta(filepath.Base(table))+` .*checksum mismatch.*repair index`).MatchString(r.stdout) {
		t.Fatalf("check over a flipped file-change-cache block: want exit 4 and one error naming %s\n%s", filepath.Base(table), r)
	}
	if strings.Count(r.stdout, "error: ") != 1 || strings.Contains(r.stdout+r.stderr, "goroutine ") {
		t.Fatalf("want exactly one error line:\n%s", r)
	}
	if st := repoStatus(t, repo); st.corrupt == nil || st.corrupt.State != "firing" || !strings.Contains(st.corrupt.Message, "repair index") {
		t.Fatalf("backup_corrupt after check found the index damaged: %+v", st.corrupt)
	}
	// A snapshot over it fails in one line with the remedy (a lookup or
	// the compaction its writes start meets the damaged block).
	assertOneLineError(t, citadel(t, append([]string{"snapshot", "--repo", repo}, sourceFlags(src)...)...), 4, "index", "repair index")

	mustCitadel(t, "repair", "index", "--repo", repo)
	mustCitadel(t, "check", "--repo", repo, "--read-data")
	if st := repoStatus(t, repo); st.corrupt != nil {
		t.Fatalf("backup_corrupt after repair index and a passing check: %+v", st.corrupt)
	}
	restoreEverySnapshotMatches(t, repo, src)
}

// rotCase is one byte of one on-disk region to flip.
type rotCase struct {
	name string
	path string // relative to the repository
	off  int64
}

// writeRotSource makes a small tree whose one large file spans several
// chunks (the chunker's minimum is 512 KiB), beside small files, a
// directory and a symlink.
func writeRotSource(t *testing.T, src string, seed byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(src, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 5<<19)
	x := uint32(2463534242) + uint32(seed)
	for i := range big {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		big[i] = byte(x)
	}
	for name, data := range map[string][]byte{
		"weights.bin":     big,
		"config.json":     []byte(`{"hidden_size": 4096, "seed": ` + strconv.Itoa(int(seed)) + "}\n"),
		"sub/tokens.txt":  []byte(strings.Repeat("token ", 500+int(seed))),
		"sub/notes.md":    []byte("# notes\n"),
		"sub/empty-file":  nil,
		"sub/../README":   []byte("readme\n"),
		"sub/version.txt": []byte{'v', '0' + seed},
	} {
		if err := os.WriteFile(filepath.Join(src, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.Symlink("sub/notes.md", filepath.Join(src, "link"))
}

// copyTree copies a directory tree of regular files, directories and
// symlinks, modes kept.
func copyTree(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(dst, info.Mode().Perm())
		case d.Type()&os.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(target, dst)
		case d.Type().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(dst, data, info.Mode().Perm())
		}
		return nil // sockets (daemon.sock) and the like
	})
	if err != nil {
		t.Fatal(err)
	}
}

// rotCases lists one byte in every region of every file of the
// repository: each pack's header (magic, version, reserved), each blob,
// its trailer and each footer field; citadel.json; each block of each
// Pebble table, the MANIFEST, CURRENT, OPTIONS and the WAL; the lock.
func rotCases(t *testing.T, repo string) []rotCase {
	t.Helper()
	var cases []rotCase
	add := func(name, path string, off int64) {
		cases = append(cases, rotCase{name, path, off})
	}
	packs, _ := filepath.Glob(filepath.Join(repo, "packs", "*", "*.pack"))
	if len(packs) < 2 {
		t.Fatalf("want at least a data pack and a tree pack, have %d", len(packs))
	}
	types := map[index.BlobType]string{index.DataBlob: "data", index.TreeBlob: "tree", index.SnapshotBlob: "snapshot manifest"}
	for _, p := range packs {
		rel, _ := filepath.Rel(repo, p)
		short := filepath.Base(p)[:8]
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := f.Stat()
		es, err := index.DecodeTrailer(f, fi.Size())
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		size := fi.Size()
		add("pack "+short+" header magic", rel, 3)
		add("pack "+short+" header version", rel, 8)
		add("pack "+short+" header reserved", rel, 12)
		for i, e := range es {
			if e.Length > 0 {
				add(fmt.Sprintf("pack %s blob %d (%s)", short, i, types[e.Type]), rel, int64(e.Offset)+int64(e.Length)/2)
			}
		}
		trailer := size - 16 - int64(len(es))*50
		add("pack "+short+" trailer entry 0 id", rel, trailer+5)
		add("pack "+short+" trailer last entry length", rel, size-16-50+42)
		add("pack "+short+" footer trailer length", rel, size-16)
		add("pack "+short+" footer crc", rel, size-12)
		add("pack "+short+" footer magic", rel, size-3)
	}
	cj, _ := os.ReadFile(filepath.Join(repo, "citadel.json"))
	for _, what := range []string{`"version"`, `"id": "`, `"min": `, `"max": `, `"seed": `, `"checksum": "blake3:`} {
		i := strings.Index(string(cj), what)
		if i < 0 {
			t.Fatalf("citadel.json has no %s:\n%s", what, cj)
		}
		add("citadel.json "+what, "citadel.json", int64(i+len(what)+1))
	}
	add("citadel.json first byte", "citadel.json", 0)
	ssts := indexTables(t, repo)
	for _, sst := range ssts {
		rel, _ := filepath.Rel(repo, sst)
		blocks, _ := sstLayout(t, sst, "")
		for i, b := range blocks {
			add(fmt.Sprintf("%s block %d (%s)", rel, i, b.name), rel, b.off+b.len/2)
		}
	}
	current, err := os.ReadFile(filepath.Join(repo, "index", "CURRENT"))
	if err != nil {
		t.Fatal(err)
	}
	manifest := filepath.Join("index", strings.TrimSpace(string(current)))
	add("index/CURRENT", "index/CURRENT", 10)
	for _, rel := range []string{manifest} {
		fi, err := os.Stat(filepath.Join(repo, rel))
		if err != nil {
			t.Fatal(err)
		}
		add(rel+" record header", rel, 2)
		add(rel+" middle", rel, fi.Size()/2)
	}
	opts, _ := filepath.Glob(filepath.Join(repo, "index", "OPTIONS-*"))
	wals, _ := filepath.Glob(filepath.Join(repo, "index", "*.log"))
	for _, p := range append(opts, wals...) {
		rel, _ := filepath.Rel(repo, p)
		fi, _ := os.Stat(p)
		if fi.Size() == 0 {
			continue
		}
		add(rel+" first record", rel, 8)
		add(rel+" middle", rel, fi.Size()/2)
	}
	// The lock file says who holds the repository only while someone
	// does: between commands it is empty, with nothing to rot.
	if fi, err := os.Stat(filepath.Join(repo, "lock")); err == nil && fi.Size() > 0 {
		add("lock", "lock", 0)
	}
	return cases
}

// TestBitRotCampaign flips one bit in every region of every file of a
// repository, each in its own copy, and requires that `check
// --read-data` detects it (a non-zero exit, errors named in one line
// each, no crash), or that it is harmless: both snapshots still listed and
// restored identical to their sources.
func TestBitRotCampaign(t *testing.T) {
	dir := t.TempDir()
	srcs := []string{filepath.Join(dir, "src1"), filepath.Join(dir, "src2")}
	live := filepath.Join(dir, "src")
	repo := initRepo(t, dir)
	var ids []string
	for i, s := range srcs {
		writeRotSource(t, s, byte(i+1))
		os.RemoveAll(live)
		copyTree(t, s, live)
		ids = append(ids, takeSnapshot(t, repo, "--source", "data="+live).ID)
		if i == 0 {
			// The check's open flushes what the first snapshot wrote into
			// a table; what the second writes stays in the WAL.
			mustCitadel(t, "check", "--repo", repo, "--read-data")
		}
	}

	cases := rotCases(t, repo)
	var mu sync.Mutex
	outcomes := map[string]int{}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r2 := filepath.Join(t.TempDir(), "repo")
			copyTree(t, repo, r2)
			f, err := os.OpenFile(filepath.Join(r2, c.path), os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			b := make([]byte, 1)
			if _, err := f.ReadAt(b, c.off); err != nil {
				t.Fatalf("read %s at %d: %v", c.path, c.off, err)
			}
			b[0] ^= 0x01
			f.WriteAt(b, c.off)
			f.Close()

			r := citadel(t, "check", "--repo", r2, "--read-data")
			for _, bad := range []string{"panic", "goroutine ", ".go:"} {
				if strings.Contains(r.stdout+r.stderr, bad) {
					t.Fatalf("check crashed (%q):\n%s", bad, r)
				}
			}
			if r.code != 0 {
				// Exit 4 (damage), or 12 for a version byte of citadel.json
				// that now names another format; one line on stderr when
				// the open refuses, the check's own lines otherwise.
				if r.code != 4 && r.code != 12 || !oneLine(r.stderr) && r.stderr != "" {
					t.Fatalf("detected, but not as documented (exit 4, one line):\n%s", r)
				}
				t.Logf("detected, exit %d: %s", r.code, firstLine(r.stdout+r.stderr))
				mu.Lock()
				outcomes[fmt.Sprintf("detected, exit %d", r.code)]++
				mu.Unlock()
				return
			}
			// Not detected: then it must have changed nothing a user sees.
			snaps := listSnapshots(t, r2)
			if len(snaps) != len(ids) {
				t.Fatalf("check passed, but %d snapshots are listed, want %d", len(snaps), len(ids))
			}
			for i, id := range ids {
				out := filepath.Join(t.TempDir(), "out")
				if rr := citadel(t, "restore", "--repo", r2, id, out); rr.code != 0 {
					t.Fatalf("check passed, but restore of snapshot %d fails:\n%s", i+1, rr)
				}
				diffTrees(t, srcs[i], filepath.Join(out, "data"))
			}
			t.Logf("harmless: both snapshots restore identical")
			mu.Lock()
			outcomes["harmless"]++
			mu.Unlock()
		})
	}
	t.Cleanup(func() { t.Logf("%d flips: %v", len(cases), outcomes) })
}

func firstLine(s string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, "error: ") || strings.HasPrefix(l, "citadelfs ") {
			return l
		}
	}
	return strings.SplitN(s, "\n", 2)[0]
}
