package tests

import (
	"bytes"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"citadelfs/internal/testutil"
)

// monitorProc is a running `citadelfs monitor` (the foreground loop).
type monitorProc struct {
	cmd    *exec.Cmd
	stderr *testutil.SyncBuffer
	exited chan struct{}
}

var servingRe = regexp.MustCompile(`serving http://(\S+)/metrics`)

// startMonitor runs `citadelfs monitor ARGS...` and stops it with SIGTERM
// in t.Cleanup. With --metrics-listen it returns once the address is
// printed, and that address.
func startMonitor(t *testing.T, args ...string) (*monitorProc, string) {
	t.Helper()
	p := &monitorProc{stderr: &testutil.SyncBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(citadelBin, append([]string{"monitor"}, args...)...)
	p.cmd.Env = testEnv()
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			p.cmd.Process.Kill()
			<-p.exited
		}
	})
	if !strings.Contains(strings.Join(args, " "), "--metrics-listen") {
		return p, ""
	}
	deadline := time.Now().Add(readyTimeout)
	for time.Now().Before(deadline) {
		if m := servingRe.FindStringSubmatch(p.stderr.String()); m != nil {
			return p, m[1]
		}
		select {
		case <-p.exited:
			t.Fatalf("monitor exited before serving:\n%s", p.stderr)
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("monitor did not print its metrics address:\n%s", p.stderr)
	return nil, ""
}

// scrape GETs /metrics once a cycle has run (the sample's series exist).
func scrape(t *testing.T, addr string) []byte {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && bytes.Contains(b, []byte("citadelfs_monitor_last_sample_timestamp_seconds")) {
				return b
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no sample on http://%s/metrics within 15s (%v)", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestMetricsPromtoolLint scrapes the real /metrics of a running `citadelfs
// monitor` with a repository and pipes it into `promtool check metrics`:
// it parses and has no lint (naming, units, counters' _total, help), and
// it carries only citadelfs_*, process_* and go_* series.
func TestMetricsPromtoolLint(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (apt-get install prometheus; .ci/run does): cannot lint /metrics")
	}
	dir := t.TempDir()
	repo, _ := tinyRepo(t, nil)
	cfg := fastMonitorConfig(t, dir)
	_, addr := startMonitor(t, "--repo", repo, "--config", cfg, "--metrics-listen", "127.0.0.1:0")
	body := scrape(t, addr)

	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("promtool check metrics: %v\n%s\n--- /metrics:\n%s", err, out, body)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if !strings.HasPrefix(line, "citadelfs_") && !strings.HasPrefix(line, "process_") && !strings.HasPrefix(line, "go_") {
			t.Errorf("foreign series: %s", line)
		}
	}
	for _, want := range []string{"citadelfs_build_info{", "citadelfs_backup_last_success_timestamp_seconds{", "citadelfs_cpu_seconds_total{", "process_resident_memory_bytes ", "go_goroutines "} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("no %s in /metrics", want)
		}
	}
}
