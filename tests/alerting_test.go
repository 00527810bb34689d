package tests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"citadelfs/internal/testutil"
)

// startAlertmanager runs Debian's prometheus-alertmanager binary on
// 127.0.0.1 with a temp config and storage, clustering off, and returns
// its base URL once it is ready. Without the binary the test is skipped.
func startAlertmanager(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("prometheus-alertmanager")
	if err != nil {
		if bin, err = exec.LookPath("alertmanager"); err != nil {
			t.Skip("prometheus-alertmanager not installed (apt-get install prometheus-alertmanager; .ci/run does)")
		}
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "alertmanager.yml")
	os.WriteFile(cfg, []byte("route:\n  receiver: none\nreceivers:\n  - name: none\n"), 0o600)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	out := &testutil.SyncBuffer{}
	cmd := exec.Command(bin, "--config.file="+cfg, "--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--cluster.listen-address=")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	base := "http://" + addr
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(base + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return base
			}
		}
		select {
		case <-exited:
			t.Fatalf("alertmanager exited:\n%s", out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("alertmanager not ready within 20s:\n%s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// amAlert is the part of GET /api/v2/alerts this test reads.
type amAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	StartsAt    time.Time         `json:"startsAt"`
	EndsAt      time.Time         `json:"endsAt"`
	Status      struct {
		State string `json:"state"`
	} `json:"status"`
}

func alertmanagerAlerts(t *testing.T, base string) []amAlert {
	t.Helper()
	resp, err := http.Get(base + "/api/v2/alerts")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out []amAlert
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("GET /api/v2/alerts: %v", err)
	}
	return out
}

// TestAlertsReachAlertmanager runs `citadelfs monitor` with alerting set
// to a real Alertmanager and a webhook on 127.0.0.1, against a model
// service that starts failing and then recovers: the alert fires and
// Alertmanager lists it with its labels and annotations, it is re-sent
// while firing (endsAt moves on), then it resolves and Alertmanager no
// longer lists it; the webhook gets the firing and the resolved alert.
func TestAlertsReachAlertmanager(t *testing.T) {
	am := startAlertmanager(t)

	var hookMu sync.Mutex
	var hookGot []map[string]any
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var batch []map[string]any
		if err := json.Unmarshal(b, &batch); err != nil {
			t.Errorf("webhook body: %v\n%s", err, b)
		}
		hookMu.Lock()
		hookGot = append(hookGot, batch...)
		hookMu.Unlock()
	}))
	defer hook.Close()
	hookStatuses := func() []string {
		hookMu.Lock()
		defer hookMu.Unlock()
		var s []string
		for _, a := range hookGot {
			if l, _ := a["labels"].(map[string]any); l["alertname"] == "model_unhealthy" {
				s = append(s, fmt.Sprint(a["status"]))
			}
		}
		return s
	}

	var failing atomic.Bool
	failing.Store(true)
	model := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" && failing.Load() {
			http.Error(w, "model crashed", http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "ok")
	}))
	defer model.Close()
	_, port, _ := net.SplitHostPort(model.Listener.Addr().String())

	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`monitor:
  interval: 1s
  history_dir: %s
  models: {llm: %s}
  paths: []
  thresholds:
    model_unhealthy: {for: 0s}
alerting:
  alertmanager: [%s]
  webhook: [%s/hook]
  resend_interval: 1s
`, filepath.Join(dir, "history"), port, am, hook.URL)), 0o600)
	p, _ := startMonitor(t, "--config", cfg)

	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; alertmanager has %+v\nmonitor log:\n%s", what, alertmanagerAlerts(t, am), p.stderr)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	find := func() *amAlert {
		for _, a := range alertmanagerAlerts(t, am) {
			if a.Labels["alertname"] == "model_unhealthy" && a.Labels["subject"] == "llm" {
				return &a
			}
		}
		return nil
	}

	waitFor("Alertmanager to list model_unhealthy", func() bool { return find() != nil })
	a := find()
	host, _ := os.Hostname()
	if a.Labels["severity"] != "critical" || a.Labels["instance"] != host || a.Status.State != "active" ||
		!strings.Contains(a.Annotations["description"], "500") || a.Annotations["summary"] == "" || !a.EndsAt.After(time.Now()) {
		t.Fatalf("alert in Alertmanager: %+v", a)
	}
	firstEnd := a.EndsAt
	waitFor("a re-send (endsAt moves on)", func() bool { b := find(); return b != nil && b.EndsAt.After(firstEnd) })

	failing.Store(false)
	waitFor("the alert to resolve in Alertmanager", func() bool { return find() == nil })
	waitFor("the webhook to get firing then resolved", func() bool {
		s := hookStatuses()
		return len(s) >= 2 && s[0] == "firing" && s[len(s)-1] == "resolved"
	})
	if s := hookStatuses(); len(s) != 2 {
		t.Errorf("webhook got %v, want one firing and one resolved", s)
	}
}

// TestRetentionFailureAlerts: a forget that cannot delete a pack (each
// manifest has its own; the pack directories made immutable with chattr
// +i, which stops root too) fails, records the failure in the repository,
// and `monitor --once` raises retention_failed for it naming the error;
// the next forget --prune that passes resolves it.
func TestRetentionFailureAlerts(t *testing.T) {
	if _, err := exec.LookPath("chattr"); err != nil {
		t.Skip("chattr not installed (e2fsprogs)")
	}
	repo, _ := tinyRepo(t, nil)
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "other.bin"), bytes.Repeat([]byte("x"), 1<<20), 0o644)
	mustCitadel(t, "snapshot", "--repo", repo, "--source", "models="+src)
	dirs, _ := filepath.Glob(filepath.Join(repo, "packs", "*"))
	immutable := func(on bool) {
		flag := "-i"
		if on {
			flag = "+i"
		}
		for _, d := range dirs {
			if r := runCmd(t, testEnv(), "chattr", flag, d); r.code != 0 {
				t.Skipf("chattr %s %s: %s (file system without immutable files?)", flag, d, r)
			}
		}
	}
	immutable(true)
	t.Cleanup(func() { immutable(false) })
	cfg := fastMonitorConfig(t, t.TempDir())

	r := citadel(t, "forget", "--repo", repo, "--config", cfg, "--keep-last", "1", "--prune")
	if r.code == 0 {
		t.Fatalf("prune deleted from immutable directories: %s", r)
	}
	doc, res := statusOf(t, nil, "monitor", "--once", "--repo", repo, "--config", cfg)
	var got *alertJSON
	for i, a := range doc.Alerts {
		if a.Rule == "retention_failed" {
			got = &doc.Alerts[i]
		}
	}
	if got == nil || got.Subject != "forget" || got.State != "firing" || !strings.Contains(got.Message, "failed") || !strings.Contains(got.Message, "operation not permitted") {
		t.Fatalf("retention_failed after the failed forget: %+v\n%s", got, res)
	}

	immutable(false)
	mustCitadel(t, "forget", "--repo", repo, "--config", cfg, "--keep-last", "1", "--prune")
	doc, res = statusOf(t, nil, "monitor", "--once", "--repo", repo, "--config", cfg)
	for _, a := range doc.Alerts {
		if a.Rule == "retention_failed" {
			t.Fatalf("retention_failed still active after a passing forget --prune: %+v\n%s", a, res)
		}
	}
}
