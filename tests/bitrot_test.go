package tests

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"testing"
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
