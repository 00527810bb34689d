package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"citadelfs/index"
	"citadelfs/internal/testutil"
	"citadelfs/monitor"
)

func modelPort(t *testing.T, status int) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	return u.Port()
}

func closedModelPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

// monitorConfig writes a config whose monitor watches only what the test
// sets up: the given models, a temporary path, no systemd units, history
// in a temporary directory. No repository is configured.
func monitorConfig(t *testing.T, models string, extra string) (path, historyDir string) {
	t.Helper()
	t.Setenv("CITADELFS_REPO", "")
	dir := t.TempDir()
	historyDir = filepath.Join(dir, "history")
	cfg := fmt.Sprintf("monitor:\n  history_dir: %s\n  paths: [%s]\n  systemd_units: []\n  models: {%s}\n%s", historyDir, dir, models, extra)
	path = filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, historyDir
}

type onceOutput struct {
	Health string          `json:"health"`
	Alerts []monitor.Alert `json:"alerts"`
	Models []monitor.ModelStatus
	GPUs   *monitor.GPUStats     `json:"gpus"`
	Backup *monitor.BackupStatus `json:"backup"`
	System *monitor.SystemStats  `json:"system"`
}

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = runMain(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestMonitorOnceHealthy(t *testing.T) {
	cfg, hist := monitorConfig(t, "mixtral: "+modelPort(t, 200), "")
	code, stdout, stderr := runCLI(t, "monitor", "--once", "--json", "--config", cfg)
	if code != exitOK {
		t.Fatalf("exit %d, want 0\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	var out onceOutput
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatalf("--json output: %v\n%s", err, stdout)
	}
	if !strings.Contains(stdout, `"alerts": [`) {
		t.Errorf("no alerts key (an empty list when healthy):\n%s", stdout)
	}
	// This shared machine may be busy (a pending cpu_high warning): that
	// is not critical. Nothing here may be critical.
	if out.Health != monitor.HealthOK && out.Health != monitor.HealthWarning {
		t.Errorf("health %s, alerts %+v", out.Health, out.Alerts)
	}
	if len(out.Models) != 1 || out.Models[0].State != monitor.ModelHealthy {
		t.Errorf("models %+v", out.Models)
	}
	if out.Backup == nil || out.Backup.Configured || out.Backup.Reason != "no repository configured" {
		t.Errorf("backup %+v: want it to say no repository is configured", out.Backup)
	}
	if out.GPUs == nil || out.System == nil || out.System.Memory == nil {
		t.Errorf("gpus %+v system %+v", out.GPUs, out.System)
	}
	if _, err := os.Stat(hist); err != nil {
		t.Errorf("history directory not created: %v", err)
	}
	if stderr != "" {
		t.Errorf("stderr: %s", stderr)
	}
}

func TestMonitorOnceCritical(t *testing.T) {
	cfg, _ := monitorConfig(t, "mixtral: "+modelPort(t, 500)+", hermes: "+closedModelPort(t)+", phi3: "+modelPort(t, 200), "")
	code, stdout, stderr := runCLI(t, "monitor", "--once", "--json", "--config", cfg)
	if code != exitCritical {
		t.Fatalf("exit %d, want %d (critical)\nstdout: %s\nstderr: %s", code, exitCritical, stdout, stderr)
	}
	var out onceOutput
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatal(err)
	}
	if out.Health != monitor.HealthCritical {
		t.Errorf("health %s", out.Health)
	}
	got := map[string]monitor.Alert{}
	for _, a := range out.Alerts {
		if a.Rule == monitor.RuleModelUnhealthy {
			got[a.Subject] = a
		}
	}
	// One sample: model_unhealthy's `for` (2m) has not passed, so the
	// conditions are pending, and still critical for the exit code.
	for _, name := range []string{"mixtral", "hermes"} {
		if a, ok := got[name]; !ok || a.State != monitor.StatePending || a.Severity != monitor.SeverityCritical {
			t.Errorf("%s: alert %+v", name, a)
		}
	}
	if _, ok := got["phi3"]; ok || len(got) != 2 {
		t.Errorf("alerts %+v", got)
	}
	if !strings.Contains(got["mixtral"].Message, "HTTP 500") || !strings.Contains(got["hermes"].Message, "connection refused") {
		t.Errorf("messages: %q, %q", got["mixtral"].Message, got["hermes"].Message)
	}

	// Text output lists the same conditions, one a line.
	code, stdout, _ = runCLI(t, "monitor", "--once", "--config", cfg)
	if code != exitCritical {
		t.Fatalf("text: exit %d", code)
	}
	for _, want := range []string{"health CRITICAL", "CRITICAL model_unhealthy mixtral (port", "CRITICAL model_unhealthy hermes (port", "no repository configured", "no GPUs found"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("text output lacks %q:\n%s", want, stdout)
		}
	}
}

func TestMonitorUsageErrors(t *testing.T) {
	cfg, _ := monitorConfig(t, "", "")
	if code, _, stderr := runCLI(t, "monitor", "--once", "--metrics-listen", "127.0.0.1:0", "--config", cfg); code != exitUsage {
		t.Errorf("--once with --metrics-listen: exit %d (%s)", code, stderr)
	}
	// The address is checked as mount checks it (one checkListen): a
	// typo was a failed listen, exit 1.
	for _, bad := range []string{"typo", "999.1.1.1:99999", "127.0.0.1:http!"} {
		code, _, stderr := runCLI(t, "monitor", "--metrics-listen", bad, "--config", cfg)
		if code != exitUsage || !strings.Contains(stderr, "--metrics-listen") || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("monitor --metrics-listen %q: exit %d, stderr %q; want exit 2 and one line", bad, code, stderr)
		}
	}
	if code, _, _ := runCLI(t, "monitor", "extra", "--config", cfg); code != exitUsage {
		t.Errorf("an argument: exit %d", code)
	}
	bad, _ := monitorConfig(t, "", "  thresholds:\n    cpu: {threshold: 80, clear: 85}\n")
	code, _, stderr := runCLI(t, "monitor", "--once", "--config", bad)
	if code != exitUsage || !strings.Contains(stderr, "clear 85 is above threshold 80") {
		t.Errorf("bad thresholds: exit %d, stderr %q", code, stderr)
	}
}

// History that cannot be kept is a warning, not a failure.
func TestMonitorOnceWithoutHistory(t *testing.T) {
	blocker := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, _ := monitorConfig(t, "", "")
	data, _ := os.ReadFile(cfg)
	data = regexp.MustCompile(`history_dir: .*`).ReplaceAll(data, []byte("history_dir: "+blocker+"/history"))
	os.WriteFile(cfg, data, 0o600)
	code, stdout, stderr := runCLI(t, "monitor", "--once", "--json", "--config", cfg)
	if code != exitOK || !strings.Contains(stderr, "no history kept") || !json.Valid([]byte(stdout)) {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}

func TestStatusCommand(t *testing.T) {
	cfg, _ := monitorConfig(t, "mixtral: "+modelPort(t, 503), "  thresholds:\n    model_unhealthy: {for: 0s}\n")
	// A --once run first leaves history that status shows as recent.
	if code, _, stderr := runCLI(t, "monitor", "--once", "--config", cfg); code != exitCritical {
		t.Fatalf("monitor --once: exit %d %s", code, stderr)
	}
	code, stdout, stderr := runCLI(t, "status", "--config", cfg)
	if code != exitCritical {
		t.Fatalf("status: exit %d\n%s\n%s", code, stdout, stderr)
	}
	for _, want := range []string{"SYSTEM", "GPUS", "MODEL SERVICES", "ALERTS", "BACKUPS", "mixtral", "firing", "recent (24h):", "no repository configured"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("status lacks %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout, "\x1b[") {
		t.Errorf("colours when stdout is not a terminal")
	}
	code, stdout, _ = runCLI(t, "status", "--json", "--config", cfg)
	var doc struct {
		Health string          `json:"health"`
		Alerts []monitor.Alert `json:"alerts"`
		Recent []monitor.Event `json:"recent_events"`
	}
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil || code != exitCritical || doc.Health != monitor.HealthCritical || len(doc.Recent) == 0 {
		t.Fatalf("status --json: exit %d, %v, %+v", code, err, doc)
	}
}

func TestMonitorLoopServesMetrics(t *testing.T) {
	cfg, _ := monitorConfig(t, "mixtral: "+modelPort(t, 200), "  interval: 1s\n")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr testutil.SyncBuffer
	done := make(chan int, 1)
	go func() {
		done <- runMain(ctx, []string{"monitor", "--metrics-listen", "127.0.0.1:0", "--config", cfg}, &stdout, &stderr)
	}()
	addr := regexp.MustCompile(`serving (http://\S+/metrics)`)
	deadline := time.Now().Add(10 * time.Second)
	var body []byte
	for {
		if m := addr.FindStringSubmatch(stderr.String()); m != nil {
			resp, err := http.Get(m[1])
			if err == nil {
				body, _ = io.ReadAll(resp.Body)
				resp.Body.Close()
				if bytes.Contains(body, []byte("citadelfs_model_up")) {
					break // the first cycle is published
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no metrics served within 10s; stderr:\n%s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("served metrics do not parse: %v", err)
	}
	if f := fams["citadelfs_model_up"]; f == nil || f.Metric[0].GetGauge().GetValue() != 1 {
		t.Fatalf("citadelfs_model_up: %v", f)
	}
	cancel()
	select {
	case code := <-done:
		if code != exitOK {
			t.Fatalf("exit %d after SIGTERM-like cancel; stderr:\n%s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("monitor loop did not stop")
	}
}

// TestHistoryDirPerRepository: a monitor outside the mount daemon keeps
// its history under <state>/monitor/<repository id> ($CITADELFS_STATE_DIR,
// default /var/lib/citadelfs), or monitor.history_dir/<id>; without a
// repository under .../host. It used to be one directory for every
// repository on the host.
func TestHistoryDirPerRepository(t *testing.T) {
	repo := filepath.Join(t.TempDir(), "repo")
	if code, _, stderr := runCLI(t, "init", "--encryption", "none", "--repo", repo); code != 0 {
		t.Fatalf("init: %s", stderr)
	}
	var rc struct{ ID string }
	data, _ := os.ReadFile(filepath.Join(repo, "citadel.json"))
	if err := json.Unmarshal(data, &rc); err != nil || rc.ID == "" {
		t.Fatalf("citadel.json: %v %s", err, data)
	}
	env := &cmdEnv{global: &globalFlags{configPath: filepath.Join(t.TempDir(), "none.yaml")}}
	base := func() string {
		t.Helper()
		mc, err := monitorConfigFor(env, &config{}, repo)
		if err != nil {
			t.Fatal(err)
		}
		return mc.HistoryDir
	}
	t.Setenv(stateDirEnv, "")
	if got := base(); got != "/var/lib/citadelfs/monitor" {
		t.Errorf("default history base %s", got)
	}
	state := t.TempDir()
	t.Setenv(stateDirEnv, state)
	b := base()
	if b != filepath.Join(state, "monitor") {
		t.Errorf("$%s=%s: history base %s", stateDirEnv, state, b)
	}
	got, err := historyDirFor(b, repo, nil)
	if want := filepath.Join(state, "monitor", rc.ID); err != nil || got != want {
		t.Errorf("historyDirFor = %q, %v; want %q", got, err, want)
	}
	if got, err := historyDirFor(b, "", errors.New("no repository")); err != nil || got != filepath.Join(b, "host") {
		t.Errorf("without a repository: %q, %v", got, err)
	}
	if _, err := historyDirFor(b, filepath.Join(t.TempDir(), "missing"), nil); err == nil {
		t.Errorf("a repository without citadel.json got a history dir")
	}
	// A crafted id cannot name a directory outside the base.
	if err := os.WriteFile(filepath.Join(repo, "citadel.json"), bytes.Replace(data, []byte(rc.ID), []byte("../../etc"), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := historyDirFor(b, repo, nil); err == nil {
		t.Errorf("id ../../etc gave history dir %s", got)
	}
	t.Setenv(stateDirEnv, "relative")
	if _, err := monitorConfigFor(env, &config{}, repo); exitCode(err) != exitUsage {
		t.Errorf("relative $%s: %v, want a usage error", stateDirEnv, err)
	}
}

// A real failed snapshot attempt, recorded by snapshot, fires the
// monitor's backup_failed: the two meet only through the stored result
// word (index.AttemptFailed), which both must use.
func TestBackupFailedFromRealAttempt(t *testing.T) {
	cfg, _ := monitorConfig(t, "", "")
	repo := filepath.Join(t.TempDir(), "repo")
	if code, _, stderr := runCLI(t, "init", "--encryption", "none", "--repo", repo); code != exitOK {
		t.Fatalf("init: exit %d: %s", code, stderr)
	}
	missing := filepath.Join(t.TempDir(), "gone")
	if code, _, _ := runCLI(t, "snapshot", "--repo", repo, "--config", cfg, "--source", "logs="+missing); code == exitOK {
		t.Fatal("snapshot of a missing source exited 0")
	}
	code, stdout, stderr := runCLI(t, "monitor", "--once", "--json", "--repo", repo, "--config", cfg)
	if code != exitCritical {
		t.Fatalf("monitor: exit %d, want %d\nstdout: %s\nstderr: %s", code, exitCritical, stdout, stderr)
	}
	var out onceOutput
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatal(err)
	}
	var fired *monitor.Alert
	for i, a := range out.Alerts {
		if a.Rule == monitor.RuleBackupFailed && a.Subject == "logs" {
			fired = &out.Alerts[i]
		}
	}
	if fired == nil || fired.State != monitor.StateFiring || fired.Severity != monitor.SeverityCritical {
		t.Fatalf("backup_failed for logs: %+v; alerts %+v", fired, out.Alerts)
	}
	if out.Backup == nil || len(out.Backup.Sources) != 1 || out.Backup.Sources[0].LastResult != index.AttemptFailed {
		t.Errorf("backup sources %+v", out.Backup)
	}
}
