package tests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode"
)

// TestJSONEveryCommand runs every command that has --json on a small
// repository and requires stdout to be exactly one JSON document whose
// keys are snake_case (prune's were CamelCase, forget --json printed
// prose). The rows cover every command `citadelfs help` lists with --json;
// TestJSONCoversEveryCommand fails for one added without a row here.
func TestJSONEveryCommand(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	os.MkdirAll(filepath.Join(src, "sub"), 0o755)
	os.WriteFile(filepath.Join(src, "a.txt"), []byte("alpha\n"), 0o644)
	os.WriteFile(filepath.Join(src, "sub", "b.bin"), bytes.Repeat([]byte("citadel"), 10000), 0o644)
	repo := filepath.Join(dir, "repo")
	cfg := filepath.Join(dir, "config.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("repo: %s\nsources:\n  data: %s\n", repo, src)), 0o644)
	g := []string{"--config", cfg}
	os.WriteFile(filepath.Join(dir, "pw"), []byte("json rows\n"), 0o600) // the encrypted rows' passphrase

	var first string
	rows := jsonRows(dir, repo)
	for _, row := range rows {
		args := append(append([]string{}, row.args...), "--json")
		for i, a := range args {
			args[i] = strings.ReplaceAll(a, "FIRST", first)
		}
		r := citadel(t, append(args, g...)...)
		if row.code >= 0 && r.code != row.code {
			t.Errorf("citadelfs %s: %s", strings.Join(args, " "), r)
			continue
		}
		v, err := oneJSONDocument(r.stdout)
		if err != nil {
			t.Errorf("citadelfs %s: stdout is not one JSON document: %v\n%s", strings.Join(args, " "), err, r)
			continue
		}
		if k := camelKey(v); k != "" {
			t.Errorf("citadelfs %s: key %q is not snake_case\n%s", strings.Join(args, " "), k, r.stdout)
		}
		if row.args[0] == "snapshot" && first == "" {
			first = v.(map[string]any)["id"].(string)
		}
	}
}

type jsonRow struct {
	args []string
	code int // -1: any (status and monitor exit 5 on a host with critical alerts)
}

// jsonRows are TestJSONEveryCommand's commands, in order, on a repository
// at repo; FIRST stands for the first snapshot's id.
func jsonRows(dir, repo string) []jsonRow {
	return []jsonRow{
		{[]string{"init", "--encryption", "none", "--repo", repo}, 0},
		{[]string{"snapshot", "--tag", "one"}, 0},
		{[]string{"snapshot", "--tag", "two"}, 0},
		{[]string{"snapshots"}, 0},
		{[]string{"init", "--encryption", "none", "--repo", filepath.Join(dir, "copy")}, 0},
		{[]string{"copy", "--to", filepath.Join(dir, "copy")}, 0},
		{[]string{"diff", "FIRST", "latest"}, 0},
		{[]string{"check"}, 0},
		{[]string{"check", "--read-data"}, 0},
		{[]string{"restore", "latest", filepath.Join(dir, "out")}, 0},
		{[]string{"ls", "latest"}, 0},
		{[]string{"ls", "-l", "FIRST:data/sub"}, 0},
		{[]string{"find", "*.bin"}, 0},
		{[]string{"find", "nothing-matches"}, 0},
		{[]string{"snapshots", "--tag", "one", "--source", "data"}, 0},
		{[]string{"restore", "latest:data/sub", filepath.Join(dir, "out2")}, 0},
		{[]string{"config", "check"}, 0},
		{[]string{"status"}, -1},
		{[]string{"monitor", "--once"}, -1},
		{[]string{"test-restore"}, 0},
		{[]string{"version"}, 0},
		{[]string{"forget", "--keep-last", "1", "--dry-run"}, 0},
		{[]string{"forget", "--source", "nosuch", "--dry-run"}, 0},
		{[]string{"forget", "--source", "nosuch"}, 0},
		{[]string{"prune", "--dry-run"}, 0},
		{[]string{"forget", "FIRST"}, 0},
		{[]string{"snapshot", "--tag", "three"}, 0},
		{[]string{"forget", "--keep-last", "1", "--prune"}, 0},
		{[]string{"prune"}, 0},
		{[]string{"repair", "packs", "--dry-run"}, 0},
		{[]string{"repair", "snapshots", "--dry-run"}, 0},
		{[]string{"repair", "index"}, 0},
		{[]string{"init", "--repo", filepath.Join(dir, "enc"), "--password-file", filepath.Join(dir, "pw")}, 0},
		{[]string{"key", "add", "--repo", filepath.Join(dir, "enc"), "--password-file", filepath.Join(dir, "pw"), "--new-key-file", filepath.Join(dir, "kf")}, 0},
		{[]string{"key", "list", "--repo", filepath.Join(dir, "enc"), "--key-file", filepath.Join(dir, "kf")}, 0},
		{[]string{"migrate", "--to", filepath.Join(dir, "enc"), "--password-file", filepath.Join(dir, "pw")}, 0},
	}
}

// Every command whose help lists --json has a row in jsonRows.
func TestJSONCoversEveryCommand(t *testing.T) {
	covered := map[string]bool{}
	for _, r := range jsonRows("d", "r") {
		covered[r.args[0]] = true
	}
	help := mustCitadel(t, "help").stdout
	_, list, _ := strings.Cut(help, "Commands:\n")
	list, _, _ = strings.Cut(list, "\n\n")
	n := 0
	for _, line := range strings.Split(list, "\n") {
		name := strings.Fields(line)[0]
		n++
		if strings.Contains(mustCitadel(t, "help", name).stdout, "--json") && !covered[name] {
			t.Errorf("%s has --json but no row in jsonRows", name)
		}
	}
	if n < 10 {
		t.Fatalf("help lists %d commands:\n%s", n, help)
	}
}

// oneJSONDocument decodes s, which must hold one JSON value and nothing else.
func oneJSONDocument(s string) (any, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("more after the first document")
	}
	return v, nil
}

// camelKey returns the first object key in v that is not snake_case (an
// upper-case letter or a space), "" when there is none.
func camelKey(v any) string {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if strings.IndexFunc(k, func(r rune) bool { return unicode.IsUpper(r) || r == ' ' }) >= 0 {
				return k
			}
			if k := camelKey(e); k != "" {
				return k
			}
		}
	case []any:
		for _, e := range v {
			if k := camelKey(e); k != "" {
				return k
			}
		}
	}
	return ""
}
