package index

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func initConfig(t *testing.T) (dir string, data []byte) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "repo")
	if _, err := Init(dir, ChunkerParams{Min: 64 << 10, Avg: 128 << 10, Max: 512 << 10, Seed: 7}, time.Unix(1e9, 5).UTC()); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, configName))
	if err != nil {
		t.Fatal(err)
	}
	return dir, data
}

// Every byte of citadel.json is covered: a flip is refused at open, or
// (whitespace, or a key's letter case, which encoding/json ignores)
// changes nothing the file says. A flipped digit of the chunker's sizes
// used to open and chunk with the wrong sizes.
func TestConfigEveryFlipDetectedOrHarmless(t *testing.T) {
	dir, valid := initConfig(t)
	want, err := ReadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(want.Checksum, "blake3:") {
		t.Fatalf("init wrote no checksum:\n%s", valid)
	}
	for off := range valid {
		for _, mask := range []byte{0x01, 0x20, 0xff} {
			data := bytes.Clone(valid)
			data[off] ^= mask
			got, err := parseConfig(dir, data)
			switch {
			case err == nil:
				if *got != *want {
					t.Errorf("byte %d ^%#x (%q): opens with different parameters %+v", off, mask, valid[off], got)
				}
			case !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrVersion):
				t.Errorf("byte %d ^%#x: %v, want ErrCorrupt", off, mask, err)
			case strings.Contains(err.Error(), "\n"):
				t.Errorf("byte %d ^%#x: error is not one line: %q", off, mask, err)
			}
		}
	}
}

// A citadel.json from before checksums opens, and the next writer seals it.
func TestConfigWithoutChecksumOpensAndIsSealed(t *testing.T) {
	dir, valid := initConfig(t)
	var m map[string]any
	if err := json.Unmarshal(valid, &m); err != nil {
		t.Fatal(err)
	}
	delete(m, "checksum")
	legacy, _ := json.MarshalIndent(m, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, configName), legacy, 0o600); err != nil {
		t.Fatal(err)
	}
	if cfg, err := ReadConfig(dir); err != nil || cfg.Checksum != "" {
		t.Fatalf("legacy citadel.json: %+v, %v", cfg, err)
	}
	r, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	cfg, err := ReadConfig(dir)
	if err != nil || cfg.Checksum == "" {
		t.Fatalf("after a writer's open: %+v, %v; want a checksum", cfg, err)
	}
	if _, err := os.Stat(filepath.Join(dir, configName+".tmp")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temporary file left: %v", err)
	}
}

// Chunker sizes that would make a reader allocate without bound are
// refused in one line, checksum or not (a hand-edited file has none).
func TestConfigChunkerBounds(t *testing.T) {
	dir, valid := initConfig(t)
	var m map[string]any
	json.Unmarshal(valid, &m)
	delete(m, "checksum")
	for _, c := range []map[string]any{
		{"min": 65536, "avg": 131072, "max": 1 << 40},
		{"min": 65536, "avg": 131072, "max": 65 << 20},
		{"min": 0, "avg": 131072, "max": 524288},
		{"min": 262144, "avg": 131072, "max": 524288},
		{"min": 65536, "avg": 1048576, "max": 524288},
	} {
		c["seed"] = 1
		m["chunker"] = c
		data, _ := json.Marshal(m)
		_, err := parseConfig(dir, data)
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "chunker sizes") || strings.Contains(err.Error(), "\n") {
			t.Errorf("chunker %v: %v, want one line naming the chunker sizes", c, err)
		}
	}
}
