package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"citadelfs/internal/backupsource"
	"citadelfs/monitor"
)

// staleLabelRepo makes a repository whose config has the source configs,
// snapshots it, and records a failed attempt of the label typo (a mistake
// on the command line). It returns the config path.
func staleLabelRepo(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "configs")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "f"), []byte("x"), 0o644)
	cfg, _ := monitorConfig(t, "", fmt.Sprintf("repo: %s/repo\nsources:\n  configs: %s\n", dir, src))
	run(t, "init", "--encryption", "none", "--config", cfg)
	run(t, "snapshot", "--config", cfg)
	var o, e bytes.Buffer
	if code := runMain(t.Context(), []string{"snapshot", "--config", cfg, "--source", "typo=" + filepath.Join(dir, "nowhere")}, &o, &e); code == exitOK {
		t.Fatal("snapshot of a missing path exited 0")
	}
	return cfg
}

// backupLabels is the labels the monitor's backup state lists at now.
func backupLabels(t *testing.T, cfg string, now time.Time) []string {
	t.Helper()
	env := &cmdEnv{stdout: io.Discard, stderr: io.Discard, global: &globalFlags{configPath: cfg}, flags: pflag.NewFlagSet("x", pflag.ContinueOnError)}
	src, release, err := backupSourceFor(context.Background(), env)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	src.(*backupsource.Source).Now = func() time.Time { return now }
	st, err := src.BackupState(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range st.Sources {
		out = append(out, s.Label+":"+s.LastResult)
	}
	return out
}

// The attempt of a label the config does not have raises backup_failed
// for a day (backup_max_age), then expires; it used to fire forever.
func TestStaleLabelAttemptExpires(t *testing.T) {
	cfg := staleLabelRepo(t)
	if got := strings.Join(backupLabels(t, cfg, time.Now()), " "); got != "configs:ok typo:failed" {
		t.Fatalf("now: %s", got)
	}
	if got := strings.Join(backupLabels(t, cfg, time.Now().Add(27*time.Hour)), " "); got != "configs:ok" {
		t.Fatalf("a day later: %s", got)
	}
}

// forget --source LABEL clears the label's attempt at once (backup_failed
// ends) and keeps its snapshots; it goes alone.
func TestForgetSourceClearsAttempt(t *testing.T) {
	cfg := staleLabelRepo(t)
	code, stdout, _ := runCLI(t, "monitor", "--once", "--json", "--config", cfg)
	if code != exitCritical || !strings.Contains(stdout, `"subject": "typo"`) {
		t.Fatalf("before: exit %d\n%s", code, stdout)
	}
	if out := run(t, "forget", "--config", cfg, "--source", "typo", "--dry-run"); !strings.Contains(out, "would forget the attempts of typo") {
		t.Errorf("dry run: %s", out)
	}
	if out := run(t, "forget", "--config", cfg, "--source", "typo"); !strings.Contains(out, "forgot the attempts of typo") {
		t.Errorf("forget: %s", out)
	}
	code, stdout, stderr := runCLI(t, "monitor", "--once", "--json", "--config", cfg)
	var once onceOutput
	if err := json.Unmarshal([]byte(stdout), &once); err != nil {
		t.Fatalf("%v: %s %s", err, stdout, stderr)
	}
	for _, a := range once.Alerts {
		if a.Subject == "typo" || a.Rule == monitor.RuleBackupFailed {
			t.Errorf("alert after forget --source: %+v", a)
		}
	}
	for _, s := range once.Backup.Sources {
		if s.Label == "typo" {
			t.Errorf("typo still listed: %+v", s)
		}
	}
	// A configured source's snapshots stay; the label is listed again
	// (it is configured), without an attempt.
	run(t, "forget", "--config", cfg, "--source", "configs")
	if out := run(t, "snapshots", "--config", cfg); !strings.Contains(out, "configs") {
		t.Errorf("snapshots gone: %s", out)
	}
	if out := run(t, "forget", "--config", cfg, "--source", "never"); !strings.Contains(out, "no attempt of never recorded") {
		t.Errorf("unknown label: %s", out)
	}
	for _, args := range [][]string{{"--source", "typo", "--keep-daily", "1"}, {"--source", "typo", "--prune"}, {"--source", "typo", "latest"}, {"--source", "bad label"}} {
		if code, _, stderr := runCLI(t, append([]string{"forget", "--config", cfg}, args...)...); code != exitUsage {
			t.Errorf("%v: exit %d %s", args, code, stderr)
		}
	}
}
