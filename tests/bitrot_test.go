package tests

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

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

	mustCitadel(t, "repair", "index", "--repo", repo)
	mustCitadel(t, "check", "--repo", repo, "--read-data")
	if st := repoStatus(t, repo); st.corrupt != nil {
		t.Fatalf("backup_corrupt after repair index and a passing check: %+v", st.corrupt)
	}
	restoreEverySnapshotMatches(t, repo, src)
}
