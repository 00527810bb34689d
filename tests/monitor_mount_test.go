package tests

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TestMonitorStatusThroughMount runs the daemon's embedded monitor against
// a real model server on 127.0.0.1 and reads status/ through the real
// mount while the server goes from healthy to failing and back: the
// Prometheus file parses, and alerts, health and models follow the server.
func TestMonitorStatusThroughMount(t *testing.T) {
	needMount(t)
	var failing atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/health" && failing.Load():
			http.Error(w, "model crashed", http.StatusInternalServerError)
		case r.URL.Path == "/health", r.URL.Path == "/metrics":
			fmt.Fprintln(w, "ok")
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())

	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	os.MkdirAll(filepath.Join(src, "configs"), 0o755)
	os.WriteFile(filepath.Join(src, "configs", "a.yaml"), []byte("a: 1\n"), 0o644)
	repo := initRepo(t, dir)
	takeSnapshot(t, repo, "--source", "configs="+filepath.Join(src, "configs"))
	cfg := filepath.Join(dir, "config.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`monitor:
  interval: 1s
  models: {llm: %s}
  paths: []
  thresholds:
    model_unhealthy: {for: 0s, clear_for: 0s}
`, port)), 0o600)
	mp := filepath.Join(dir, "mnt")
	startMount(t, repo, mp, cfg)
	status := func(name string) string {
		b, err := os.ReadFile(filepath.Join(mp, "status", name))
		if err != nil {
			t.Fatalf("read status/%s: %v", name, err)
		}
		return string(b)
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; alerts:\n%s\nmodels:\n%s", what, status("alerts"), status("models"))
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	waitFor("the model to show healthy", func() bool {
		return strings.Contains(status("models"), "llm") && strings.Contains(status("models"), "healthy") &&
			!strings.Contains(status("models"), "unhealthy")
	})
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(status("metrics")))
	if err != nil {
		t.Fatalf("status/metrics does not parse as Prometheus text: %v", err)
	}
	up, ok := fams["citadelfs_model_up"]
	if !ok || len(up.Metric) != 1 || up.Metric[0].GetGauge().GetValue() != 1 {
		t.Fatalf("citadelfs_model_up = %v", up)
	}
	if _, ok := fams["citadelfs_load1"]; !ok {
		t.Errorf("no citadelfs_load1 in status/metrics (have %d families)", len(fams))
	}
	if strings.TrimSpace(status("alerts")) != "" {
		t.Fatalf("alerts while healthy:\n%s", status("alerts"))
	}

	failing.Store(true)
	waitFor("model_unhealthy to fire", func() bool {
		a := status("alerts")
		return strings.Contains(a, "CRITICAL") && strings.Contains(a, "model_unhealthy") && strings.Contains(a, "llm")
	})
	if h := status("health"); !strings.HasPrefix(h, "CRITICAL") {
		t.Fatalf("status/health while a model fails: %q", h)
	}
	// The CLI handed to the daemon sees the same state and says so in its
	// exit code.
	r := citadel(t, "status", "--repo", repo, "--config", cfg, "--json")
	if r.code != 5 || !bytes.Contains([]byte(r.stdout), []byte("model_unhealthy")) {
		t.Fatalf("status --json while critical: %s", r)
	}

	failing.Store(false)
	waitFor("the alert to resolve", func() bool { return strings.TrimSpace(status("alerts")) == "" })

	// Every open renders one whole document: concurrent readers never see
	// a torn file while values change underneath.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	errs := make(chan error, 4)
	for i := 0; i < 4; i++ {
		go func() {
			for ctx.Err() == nil {
				b, err := os.ReadFile(filepath.Join(mp, "status", "metrics"))
				if err != nil {
					errs <- err
					return
				}
				p := expfmt.NewTextParser(model.LegacyValidation)
				if _, err := p.TextToMetricFamilies(bytes.NewReader(b)); err != nil {
					errs <- fmt.Errorf("torn metrics document: %v", err)
					return
				}
			}
			errs <- nil
		}()
	}
	for i := 0; i < 4; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
