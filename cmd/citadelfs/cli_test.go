package main

import (
	"context"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
)

// Every command has a row in cliSpecs: its argument count, --json and
// examples are what help, completion and the man page are made of.
func TestCLISpecs(t *testing.T) {
	for name := range commands {
		if strings.HasPrefix(name, "dtest-") { // daemon_test's own
			continue
		}
		s, ok := cliSpecs[name]
		if !ok {
			t.Errorf("command %q has no row in cliSpecs (cli.go)", name)
			continue
		}
		if len(s.examples) == 0 {
			t.Errorf("command %q has no examples", name)
		}
		for _, e := range s.examples {
			if !strings.HasPrefix(e.cmd, "citadelfs ") || !strings.Contains(e.cmd, name) || e.why == "" {
				t.Errorf("%s: example %q (%q) does not run the command or says not why", name, e.cmd, e.why)
			}
		}
	}
	for name := range cliSpecs {
		if commands[name] == nil {
			t.Errorf("cliSpecs has %q, which is no command", name)
		}
	}
}

// A stray argument to a command that takes none is a usage error before
// anything runs (snapshots extra exited 0), and so is --json on a command
// that prints none; both say so in one line on stderr.
func TestCLIStrayArgumentsAndJSON(t *testing.T) {
	for name, s := range cliSpecs {
		if s.maxArgs == 0 {
			code, stdout, stderr := runCLI(t, name, "--repo", t.TempDir(), "extra")
			if code != exitUsage || stdout != "" || !strings.Contains(stderr, `unexpected argument "extra"`) || strings.Count(stderr, "\n") != 1 {
				t.Errorf("%s extra: exit %d, stdout %q, stderr %q; want exit 2 and one line on stderr", name, code, stdout, stderr)
			}
		}
		if !s.json {
			for _, args := range [][]string{{name, "--json"}, {"--json", name}} {
				code, stdout, stderr := runCLI(t, args...)
				if code != exitUsage || stdout != "" || !strings.Contains(stderr, "has no --json output") {
					t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 2", args, code, stdout, stderr)
				}
			}
		}
	}
}

// Global flags before the command mean what they mean after it.
func TestCLIGlobalFlagsBeforeCommand(t *testing.T) {
	var seen []string
	register(&command{name: "dtest-globals", run: func(_ context.Context, env *cmdEnv, args []string) error {
		seen = append(seen, env.global.repo, env.global.configPath, strconv.FormatBool(env.global.json), strconv.FormatBool(env.global.quiet), strings.Join(args, ","))
		return nil
	}})
	defer delete(commands, "dtest-globals")
	for _, args := range [][]string{
		{"--repo", "/r", "--config=/c", "--json", "-q", "dtest-globals", "a", "b"},
		{"dtest-globals", "--repo", "/r", "a", "--config", "/c", "--json", "b", "-q"},
		{"--repo=/r", "-q", "dtest-globals", "--json", "--config", "/c", "a", "b"},
	} {
		seen = nil
		if code, _, stderr := runCLI(t, args...); code != 0 || strings.Join(seen, " ") != "/r /c true true a,b" {
			t.Errorf("%v: exit %d (%s), saw %q", args, code, stderr, seen)
		}
	}
	for _, tc := range []struct {
		args []string
		code int
		out  string // on stdout, or on stderr when code is not 0
	}{
		{nil, exitUsage, "Usage: citadelfs [global flags] COMMAND"},
		{[]string{"--repo", "/r"}, exitUsage, "Usage: citadelfs [global flags] COMMAND"},
		{[]string{"--nope", "snapshots"}, exitUsage, "unknown flag: --nope"},
		{[]string{"nope"}, exitUsage, `unknown command "nope"`},
		{[]string{"help", "nope"}, exitUsage, `unknown command "nope"`},
		{[]string{"--help"}, exitOK, "Usage: citadelfs [global flags] COMMAND"},
		{[]string{"--repo", "/r", "--help", "snapshots"}, exitOK, "Usage: citadelfs snapshots"},
		{[]string{"--version"}, exitOK, "citadelfs " + version},
	} {
		code, stdout, stderr := runCLI(t, tc.args...)
		got, other := stdout, stderr
		if tc.code != exitOK {
			got, other = stderr, stdout
		}
		if code != tc.code || !strings.Contains(got, tc.out) || other != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit %d and %q", tc.args, code, stdout, stderr, tc.code, tc.out)
		}
	}
}

// Help shows examples for every command, through help CMD and CMD --help alike.
func TestCLIHelpExamples(t *testing.T) {
	for name := range cliSpecs {
		_, a, _ := runCLI(t, "help", name)
		code, b, _ := runCLI(t, name, "--help")
		if code != exitOK || a != b || !strings.Contains(a, "Examples:\n  citadelfs ") || !strings.Contains(a, "Global flags:") {
			t.Errorf("help %s (exit %d):\n%s\n--help:\n%s", name, code, a, b)
		}
	}
}

func TestVersionOf(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.99.1", Main: debug.Module{Path: "citadelfs", Version: "v1.2.3"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "abc123"}, {Key: "vcs.time", Value: "2026-12-01T00:00:00Z"}, {Key: "vcs.modified", Value: "true"}}}
	v := versionOf(bi, "fromldflags", false)
	if v.Commit != "abc123" || !v.Modified || v.ModuleVersion != "v1.2.3" || v.GoVersion != "go1.99.1" || v.Version != version || v.CommitTime == "" {
		t.Errorf("versionOf: %+v", v)
	}
	v = versionOf(&debug.BuildInfo{Main: debug.Module{Path: "citadelfs", Version: "(devel)"}}, "fromldflags", true)
	if v.Commit != "fromldflags" || !v.Modified {
		t.Errorf("versionOf without vcs settings: %+v, want the -ldflags commit", v)
	}
}

// --tag a,b is two tags (restic's reading, and the one `snapshots --tag
// a,b` filters by); repeats and duplicates merge; an empty or spaced tag
// is a usage error.
func TestSplitTags(t *testing.T) {
	got, err := splitTags([]string{"daily,pre-upgrade", "daily", "x"})
	if err != nil || strings.Join(got, " ") != "daily pre-upgrade x" {
		t.Fatalf("got %q, %v", got, err)
	}
	for _, bad := range []string{"", "a,", ",a", "a b", "a,\tb"} {
		if _, err := splitTags([]string{bad}); exitCode(err) != exitUsage {
			t.Errorf("--tag %q: want a usage error, got %v", bad, err)
		}
	}
}
