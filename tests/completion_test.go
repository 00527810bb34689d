package tests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The bash completion script, sourced in a real bash, completes commands
// (also after global flags), each command's flags (no --json where the
// command has none), fixed argument words and file names for flag values.
func TestBashCompletion(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "citadelfs.bash")
	os.WriteFile(script, []byte(mustCitadel(t, "completion", "bash").stdout), 0o644)
	os.WriteFile(filepath.Join(dir, "conf.yaml"), nil, 0o644)
	complete := func(line string) []string {
		t.Helper()
		// COMP_WORDS from the line as bash would split it; a trailing
		// space starts an empty word.
		words := strings.Fields(line)
		if strings.HasSuffix(line, " ") {
			words = append(words, "")
		}
		var quoted []string
		for _, w := range words {
			quoted = append(quoted, "'"+w+"'")
		}
		prog := `source "$1"; COMP_WORDS=(` + strings.Join(quoted, " ") + `); COMP_CWORD=$((${#COMP_WORDS[@]}-1)); COMP_LINE="$2"; _citadelfs; printf '%s\n' "${COMPREPLY[@]}"`
		c := exec.Command("bash", "--norc", "--noprofile", "-c", prog, "bash", script, line)
		c.Dir = dir
		out, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("bash completion of %q: %v\n%s", line, err, out)
		}
		return strings.Fields(string(out))
	}
	has := func(got []string, want ...string) bool {
		set := map[string]bool{}
		for _, g := range got {
			set[g] = true
		}
		for _, w := range want {
			if !set[w] {
				return false
			}
		}
		return true
	}
	for _, tc := range []struct {
		line    string
		want    []string
		exactly bool
		not     []string
	}{
		{line: "citadelfs sn", want: []string{"snapshot", "snapshots"}, exactly: true},
		{line: "citadelfs ", want: []string{"check", "completion", "forget", "man", "mount", "restore", "snapshot", "status", "version"}},
		{line: "citadelfs --repo /r --json sn", want: []string{"snapshot", "snapshots"}, exactly: true},
		{line: "citadelfs --", want: []string{"--repo", "--config", "--json", "--help", "--version"}},
		{line: "citadelfs snapshots --", want: []string{"--json", "--repo", "--help", "--quiet"}},
		{line: "citadelfs snapshot --exc", want: []string{"--exclude", "--exclude-caches", "--exclude-file"}, exactly: true},
		{line: "citadelfs check --read", want: []string{"--read-data"}, exactly: true},
		{line: "citadelfs mount --", want: []string{"--allow-other", "--repo"}, not: []string{"--json"}},
		{line: "citadelfs repair ", want: []string{"index", "packs", "snapshots"}, exactly: true},
		{line: "citadelfs completion ", want: []string{"bash", "zsh", "fish"}, exactly: true},
		{line: "citadelfs help ver", want: []string{"version"}, exactly: true},
		{line: "citadelfs --config con", want: []string{"conf.yaml"}, exactly: true},
		{line: "citadelfs snapshots --repo con", want: []string{"conf.yaml"}, exactly: true},
		{line: "citadelfs snapshots ", want: nil, exactly: true},
	} {
		got := complete(tc.line)
		if !has(got, tc.want...) || (tc.exactly && len(got) != len(tc.want)) || (len(tc.not) > 0 && has(got, tc.not...)) {
			t.Errorf("complete %q: %q, want %q (exactly: %v, not %q)", tc.line, got, tc.want, tc.exactly, tc.not)
		}
	}
}

// zsh and fish scripts: checked by the shell itself where it is installed,
// and for every command either way.
func TestZshFishCompletion(t *testing.T) {
	dir := t.TempDir()
	help := mustCitadel(t, "help").stdout
	for _, sh := range []string{"zsh", "fish"} {
		s := mustCitadel(t, "completion", sh).stdout
		flag := map[string]string{"zsh": "--%s", "fish": "-l %s"}[sh]
		for _, name := range []string{"snapshot", "snapshots", "restore", "completion", "man", fmt.Sprintf(flag, "read-data"), fmt.Sprintf(flag, "repo")} {
			if !strings.Contains(s, name) {
				t.Errorf("%s completion has no %s", sh, name)
			}
		}
		if !strings.Contains(help, "completion") {
			t.Errorf("help lists no completion command")
		}
		path := filepath.Join(dir, "c."+sh)
		os.WriteFile(path, []byte(s), 0o644)
		if _, err := exec.LookPath(sh); err != nil {
			t.Logf("%s not installed: syntax not checked", sh)
			continue
		}
		if out, err := exec.Command(sh, "-n", path).CombinedOutput(); err != nil {
			t.Errorf("%s -n: %v\n%s", sh, err, out)
		}
		if sh != "fish" {
			continue
		}
		// fish completes from the script as a user's shell would.
		for line, want := range map[string]string{
			"citadelfs snapshots":    "snapshots\tlist snapshots",
			"citadelfs check --read": "--read-data\t",
			"citadelfs repair ":      "index\npacks\nsnapshots\n",
			"citadelfs mount --js":   "",
			"citadelfs status --js":  "--json\t",
		} {
			out, err := exec.Command("fish", "--no-config", "-c", "source $argv[1]; complete -C $argv[2]", path, line).CombinedOutput()
			got := string(out)
			if err != nil || !strings.Contains(got, want) || (want == "" && got != "") {
				t.Errorf("fish: complete -C %q: %v %q, want %q", line, err, out, want)
			}
		}
	}
	if r := citadel(t, "completion", "tcsh"); r.code != 2 || r.stdout != "" {
		t.Errorf("completion tcsh: %s", r)
	}
}

// The man page renders without warnings in groff (or man -l), has the
// sections of a section-1 page, and names every command and exit code.
func TestManPage(t *testing.T) {
	page := mustCitadel(t, "man").stdout
	for _, want := range []string{".TH CITADELFS 1 ", ".SH NAME\n", ".SH SYNOPSIS\n", ".SH DESCRIPTION\n", ".SH COMMANDS\n", ".SH EXIT STATUS\n", ".SS \"snapshots", ".SS \"completion", "\n.B 13\n", "\\fB\\-\\-read\\-data\\fR"} {
		if !strings.Contains(page, want) {
			t.Errorf("man page has no %q", want)
		}
	}
	path := filepath.Join(t.TempDir(), "citadelfs.1")
	os.WriteFile(path, []byte(page), 0o644)
	if _, err := exec.LookPath("groff"); err != nil {
		t.Skip("groff not installed: structure checked only")
	}
	c := exec.Command("groff", "-man", "-Tutf8", "-ww", path)
	var stderr strings.Builder
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("groff: %v\n%s", err, stderr.String())
	}
	text := string(out)
	for _, want := range []string{"CITADELFS(1)", "EXIT STATUS", "citadelfs snapshot --source models=/srv/models --tag nightly"} {
		if !strings.Contains(stripOverstrike(text), want) {
			t.Errorf("rendered man page has no %q", want)
		}
	}
}

// stripOverstrike drops groff's tty bold and underline (X\bX, _\bX).
func stripOverstrike(s string) string {
	var b []byte
	for i := 0; i < len(s); i++ {
		if i+1 < len(s) && s[i+1] == '\b' {
			i++
			continue
		}
		b = append(b, s[i])
	}
	return string(b)
}
