package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// unquoteExec reads an ExecStart= value as systemd does for the words
// citadelfs systemd writes: double-quoted, \ escapes, %% and $$.
func unquoteExec(t *testing.T, v string) []string {
	t.Helper()
	var argv []string
	for _, w := range strings.SplitAfter(v, `" `) {
		w = strings.TrimSuffix(strings.TrimSpace(w), " ")
		if !strings.HasPrefix(w, `"`) || !strings.HasSuffix(w, `"`) {
			t.Fatalf("not a quoted word: %q in %s", w, v)
		}
		w = w[1 : len(w)-1]
		w = strings.NewReplacer(`\\`, `\`, `\"`, `"`, "%%", "%", "$$", "$").Replace(w)
		argv = append(argv, w)
	}
	return argv
}

// The snapshot services citadelfs systemd generates, run as systemd would
// run their ExecStart= (the real binary, the words as written), take the
// snapshots the schedule means: each source once per timer, tagged, the
// weekly one reading every file again; then forget, check and the test
// restore run as written too.
func TestSystemdUnitsRunAsWritten(t *testing.T) {
	dir := t.TempDir()
	var srcs []string
	for _, l := range []string{"models", "configs"} {
		d := filepath.Join(dir, "src "+l) // a space, quoted in the unit
		os.MkdirAll(d, 0o755)
		os.WriteFile(filepath.Join(d, "f"), []byte(l), 0o644)
		srcs = append(srcs, d)
	}
	repo := filepath.Join(dir, "repo")
	cfg := filepath.Join(dir, "config.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`repo: %q
sources:
  models: %q
  configs: %q
backup_config:
  backup_schedule:
    models: {daily: "0 2 * * *", weekly: "0 3 * * 0", monthly: "0 4 1 * *"}
    configs: "*/15 * * * *"
  validation: {test_restore_monthly: true}
`, repo, srcs[0], srcs[1])), 0o600)
	mustCitadel(t, "init", "--encryption", "none", "--config", cfg)
	units := filepath.Join(dir, "units")
	mustCitadel(t, "systemd", "--config", cfg, "--install", "--dir", units, "--bin", citadelBin)

	runUnit := func(s string) {
		t.Helper()
		b, _ := os.ReadFile(s)
		var argv []string
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "ExecStart="); ok {
				argv = unquoteExec(t, v)
			}
		}
		if len(argv) < 2 || argv[0] != citadelBin {
			t.Fatalf("%s: ExecStart %q", s, argv)
		}
		if r := runCmd(t, testEnv(), argv[0], argv[1:]...); r.code != 0 {
			t.Fatalf("%s: %q: %s", filepath.Base(s), argv, r)
		}
	}
	services, _ := filepath.Glob(filepath.Join(units, "citadelfs-snapshot-*.service"))
	sort.Strings(services)
	if len(services) != 5 {
		t.Fatalf("snapshot services: %v", services)
	}
	for _, s := range services {
		runUnit(s)
	}
	r := mustCitadel(t, "snapshots", "--config", cfg, "--json")
	var snaps []struct {
		Tags    []string `json:"tags"`
		Sources []string `json:"sources"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &snaps); err != nil {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	var got []string
	for _, s := range snaps {
		if len(s.Sources) != 1 {
			t.Fatalf("a timer's snapshot has %d sources", len(s.Sources))
		}
		got = append(got, s.Sources[0]+":"+strings.Join(s.Tags, ","))
	}
	sort.Strings(got)
	if want := "configs: configs:weekly models:daily models:monthly models:weekly"; strings.Join(got, " ") != want {
		t.Errorf("snapshots %q, want %q", strings.Join(got, " "), want)
	}

	// Then retention, the check and (where the binary has it) the test
	// restore, as their timers would run them after the snapshots.
	others, _ := filepath.Glob(filepath.Join(units, "citadelfs-*.service"))
	ran := 0
	for _, o := range others {
		if !strings.Contains(o, "-snapshot-") && !strings.HasSuffix(o, "-mount.service") {
			runUnit(o)
			ran++
		}
	}
	if ran < 2 {
		t.Errorf("forget and check services: %v", others)
	}
}
