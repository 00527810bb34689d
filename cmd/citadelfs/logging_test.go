package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"citadelfs/internal/testutil"
)

// Under systemd (JOURNAL_STREAM naming stderr) log lines carry the
// journal's priority prefixes and no time; elsewhere they are plain text.
func TestJournalPriorityPrefixes(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var st syscall.Stat_t
	syscall.Fstat(int(f.Fd()), &st)
	t.Setenv("JOURNAL_STREAM", fmt.Sprintf("%d:%d", st.Dev, st.Ino))
	env := &cmdEnv{stderr: f, global: &globalFlags{logLevel: "debug", logFormat: "text"}}
	l := env.logger().With("repo", "/r")
	l.Debug("d")
	l.Info("i", "n", 1)
	l.Warn("w")
	l.Error("e")
	b, _ := os.ReadFile(f.Name())
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	want := []string{"<7>level=DEBUG msg=d repo=/r", "<6>level=INFO msg=i repo=/r n=1", "<4>level=WARN msg=w repo=/r", "<3>level=ERROR msg=e repo=/r"}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("journal lines:\n%s\nwant:\n%s", b, strings.Join(want, "\n"))
	}

	// The variable inherited by a process whose stderr is elsewhere.
	var buf bytes.Buffer
	g, _ := os.Create(filepath.Join(t.TempDir(), "other"))
	defer g.Close()
	(&cmdEnv{stderr: g, global: &globalFlags{logLevel: "info", logFormat: "text"}}).logger().Warn("w")
	b, _ = os.ReadFile(g.Name())
	buf.Write(b)
	if strings.HasPrefix(buf.String(), "<") || !strings.Contains(buf.String(), "time=") {
		t.Errorf("not the journal stream, yet %q", buf.String())
	}
}

// --log-level and --log-format, before or after the command; a bad value
// is a usage error.
func TestLogFlags(t *testing.T) {
	register(&command{name: "dtest-log", run: func(_ context.Context, env *cmdEnv, _ []string) error {
		l := env.logger()
		l.Info("an info")
		l.Warn("a warning", "n", 2)
		return nil
	}})
	defer delete(commands, "dtest-log")
	code, _, stderr := runCLI(t, "--log-format", "json", "dtest-log", "--log-level", "warn")
	var rec map[string]any
	if code != 0 || strings.Count(stderr, "\n") != 1 || json.Unmarshal([]byte(stderr), &rec) != nil || rec["level"] != "WARN" || rec["msg"] != "a warning" || rec["n"] != 2.0 {
		t.Errorf("exit %d, stderr %q: want one JSON WARN line", code, stderr)
	}
	if _, _, stderr := runCLI(t, "dtest-log"); !strings.Contains(stderr, "level=INFO msg=\"an info\"") {
		t.Errorf("default text at info: %q", stderr)
	}
	for _, args := range [][]string{{"--log-level", "loud", "dtest-log"}, {"dtest-log", "--log-format", "xml"}} {
		if code, _, stderr := runCLI(t, args...); code != exitUsage || !strings.Contains(stderr, "--log-") {
			t.Errorf("%v: exit %d %q, want 2", args, code, stderr)
		}
	}
}

// The mount daemon logs a command that failed for its client at WARN, a
// success at INFO.
func TestDaemonLogsFailedClientAtWarn(t *testing.T) {
	repo := filepath.Join(t.TempDir(), "repo")
	os.MkdirAll(repo, 0o700)
	var buf testutil.SyncBuffer
	s, err := startDaemonServer(repo, &daemonState{}, slog.New(slog.NewTextHandler(&buf, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(5 * time.Second)
	client(context.Background(), repo, "dtest-echo", "--code", "3")
	<-dtestEnvs
	client(context.Background(), repo, "dtest-echo")
	<-dtestEnvs
	s.Close(5 * time.Second)
	log := buf.String()
	if !strings.Contains(log, `level=WARN msg="daemon: ran a command for a client" args="[dtest-echo --code 3]" code=3`) ||
		!strings.Contains(log, `level=INFO msg="daemon: ran a command for a client" args=[dtest-echo] code=0`) {
		t.Errorf("daemon log:\n%s", log)
	}
}
