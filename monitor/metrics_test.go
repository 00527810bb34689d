package monitor

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http/httptest"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"citadelfs/index"
)

// metricsText renders s and alerts as the monitor's sample collector does,
// through a pedantic registry, which fails on what a scraper would reject
// or silently mangle: inconsistent help or labels within a family,
// duplicate series, invalid names.
func metricsText(t testing.TB, s *Sample, alerts []Alert) []byte {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(sampleCollector{func() (*Sample, []Alert) { return s, alerts }, nil})
	if _, err := reg.Gather(); err != nil {
		t.Fatalf("gather: %v", err)
	}
	b, err := gatherText(reg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func parseProm(t testing.TB, b []byte) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("Prometheus parser rejects the output: %v\n%s", err, b)
	}
	return fams
}

// value returns the value of the series of family name whose labels
// include want (alternating name, value).
func value(t testing.TB, fams map[string]*dto.MetricFamily, name string, want ...string) float64 {
	t.Helper()
	f := fams[name]
	if f == nil {
		t.Fatalf("no family %s", name)
	}
next:
	for _, m := range f.Metric {
		have := map[string]string{}
		for _, l := range m.Label {
			have[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(want); i += 2 {
			if have[want[i]] != want[i+1] {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Untyped != nil:
			return m.Untyped.GetValue()
		}
	}
	t.Fatalf("%s has no series with labels %v", name, want)
	return 0
}

func richSample(now time.Time) *Sample {
	weird := "/mnt/odd \"dir\"\\with\nnewline"
	return &Sample{
		Time: now, Host: "gpu-1",
		System: &SystemStats{
			CPU: &CPUStats{Cores: 2, TotalPercent: 42.5, PerCore: []float64{40, 45},
				Seconds: []CPUSeconds{{User: 100, Idle: 900, System: 10}, {User: 120, Idle: 880}}},
			Load:   &LoadStats{Load1: 1.5, Load5: 1.25, Load15: 1},
			Memory: &MemoryStats{Total: 64 << 30, Available: 16 << 30, Free: 8 << 30, Cached: 4 << 30, Buffers: 1 << 20, UsedPercent: 75},
			Swap:   &SwapStats{Total: 8 << 30, Free: 8 << 30},
			Paths: []PathUsage{
				{Path: weird, Mountpoint: "/", Usage: &FSUsage{Total: 1000, Used: 870, Free: 130, Avail: 100, UsedPercent: 89.69}},
				{Path: "/opt/citadel", Absent: true},
			},
			Mounts: []MountUsage{{Device: "/dev/nvme0n1p2", Mountpoint: "/", FSType: "ext4", Usage: &FSUsage{Total: 1000, Used: 500, Free: 500, Avail: 450, Files: 100, FilesFree: 50, UsedPercent: 52.6}},
				{Device: "server:/export", Mountpoint: "/mnt/nfs", FSType: "nfs4", Error: "monitor: statfs /mnt/nfs: no answer within 2s (hung mount?)"}},
			Disks:   []DiskIO{{Device: "nvme0n1", ReadBytes: 4096, WrittenBytes: 8192, Reads: 1, Writes: 2, IOTimeSeconds: 0.5, ReadBytesRate: f64(1024), WriteBytesRate: f64(2048), BusyPercentRate: f64(12.5)}},
			Network: []NetworkIO{{Interface: "eth0", RxBytes: 1e6, TxBytes: 2e6, RxBytesRate: f64(100), TxBytesRate: f64(200)}},
		},
		GPUs: &GPUStats{Available: true, Driver: "550.54.15", Devices: []GPU{{
			Index: 0, Name: "NVIDIA H100 80GB HBM3", UUID: "GPU-1234",
			UtilizationPercent: f64(97), MemoryUtilizationPercent: f64(40), MemoryUsed: u64(70 << 30), MemoryTotal: u64(80 << 30),
			TemperatureC: f64(83), PowerWatts: f64(650.5), PowerLimitWatts: f64(700), ECCUncorrected: u64(0), XIDErrors: u64(2), LastXID: u64(79),
			Throttle: []string{"sw_power_cap"}, Processes: []GPUProcess{{PID: 42, Name: "python3", MemoryUsed: 60 << 30}},
		}}},
		Models: []ModelStatus{
			{Name: "mixtral", Port: 11400, State: ModelHealthy, HTTPStatus: 200, LatencySeconds: 0.012, Metrics: new(bool)},
			{Name: "hermes", Port: 11401, State: ModelDown, Error: "connection refused"},
		},
		Units: []UnitStatus{{Name: "citadelfs-mount.service", State: "active"}, {Name: "x.service", State: UnitUnknown}},
		Backup: &BackupStatus{Configured: true, Repo: "/mnt/citadel-backup/repo", RepoBytes: u64(5 << 30),
			FS: &FSUsage{Total: 100 << 30, Used: 87 << 30, Avail: 13 << 30, UsedPercent: 87},
			Sources: []SourceStatus{{SourceState: SourceState{Label: "models", LastTime: now.Add(-time.Hour), LastResult: index.AttemptOK, LastSuccess: now.Add(-time.Hour)},
				LastDurationSeconds: 300, AgeSeconds: f64(3600), MaxAgeSeconds: 93600}}},
		Collectors: []CollectorResult{{Name: CollectorSystem, OK: true, Seconds: 0.01}, {Name: CollectorBackup, OK: false, Error: "x"}},
	}
}

func TestPrometheusOutputParses(t *testing.T) {
	now := time.Date(2026, 11, 27, 4, 2, 11, 0, time.UTC)
	s := richSample(now)
	alerts := []Alert{{Rule: RuleGPUTemperatureHigh, Severity: SeverityCritical, Subject: "gpu0", State: StateFiring},
		{Rule: RuleStorageHigh, Severity: SeverityWarning, Subject: s.System.Paths[0].Path, State: StatePending}}
	fams := parseProm(t, metricsText(t, s, alerts))

	weird := s.System.Paths[0].Path
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"citadelfs_cpu_seconds_total", []string{"cpu", "0", "mode", "user"}, 100},
		{"citadelfs_cpu_seconds_total", []string{"cpu", "1", "mode", "idle"}, 880},
		{"citadelfs_load1", nil, 1.5},
		{"citadelfs_memory_available_bytes", nil, 16 << 30},
		{"citadelfs_swap_total_bytes", nil, 8 << 30},
		{"citadelfs_filesystem_avail_bytes", []string{"mountpoint", "/", "fstype", "ext4"}, 450},
		{"citadelfs_filesystem_device_error", []string{"mountpoint", "/mnt/nfs"}, 1},
		{"citadelfs_path_filesystem_used_ratio", []string{"path", weird}, 0.8969},
		{"citadelfs_path_present", []string{"path", "/opt/citadel"}, 0},
		{"citadelfs_disk_written_bytes_total", []string{"device", "nvme0n1"}, 8192},
		{"citadelfs_disk_io_time_seconds_total", []string{"device", "nvme0n1"}, 0.5},
		{"citadelfs_network_receive_bytes_total", []string{"device", "eth0"}, 1e6},
		{"citadelfs_network_transmit_bytes_total", []string{"device", "eth0"}, 2e6},
		{"citadelfs_gpus", nil, 1},
		{"citadelfs_gpu_info", []string{"gpu", "0", "name", "NVIDIA H100 80GB HBM3", "driver_version", "550.54.15"}, 1},
		{"citadelfs_gpu_temperature_celsius", []string{"uuid", "GPU-1234"}, 83},
		{"citadelfs_gpu_memory_used_bytes", []string{"gpu", "0"}, 70 << 30},
		{"citadelfs_gpu_power_watts", []string{"gpu", "0"}, 650.5},
		{"citadelfs_gpu_xid_errors_total", []string{"gpu", "0"}, 2},
		{"citadelfs_gpu_throttle_reason", []string{"reason", "sw_power_cap"}, 1},
		{"citadelfs_model_up", []string{"model", "mixtral", "port", "11400"}, 1},
		{"citadelfs_model_up", []string{"model", "hermes"}, 0},
		{"citadelfs_model_metrics_endpoint_up", []string{"model", "mixtral"}, 0},
		{"citadelfs_model_health_latency_seconds", []string{"model", "mixtral"}, 0.012},
		{"citadelfs_systemd_unit_state", []string{"name", "citadelfs-mount.service", "state", "active"}, 1},
		{"citadelfs_systemd_unit_state", []string{"name", "citadelfs-mount.service", "state", "failed"}, 0},
		{"citadelfs_backup_filesystem_used_ratio", nil, 0.87},
		{"citadelfs_repository_size_bytes", nil, 5 << 30},
		{"citadelfs_backup_last_success_timestamp_seconds", []string{"source", "models"}, float64(now.Add(-time.Hour).Unix())},
		{"citadelfs_backup_last_result", []string{"source", "models", "result", "ok"}, 1},
		{"citadelfs_backup_last_result", []string{"source", "models", "result", "failed"}, 0},
		{"citadelfs_alerts", []string{"severity", "warning", "state", "pending"}, 1},
		{"citadelfs_alerts", []string{"severity", "critical", "state", "firing"}, 1},
		{"citadelfs_alerts", []string{"severity", "warning", "state", "firing"}, 0},
		{"citadelfs_monitor_collector_up", []string{"collector", "backup"}, 0},
		{"citadelfs_monitor_last_sample_timestamp_seconds", nil, float64(now.Unix())},
	} {
		if got := value(t, fams, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if got := fams["citadelfs_cpu_seconds_total"].GetType(); got != dto.MetricType_COUNTER {
		t.Errorf("citadelfs_cpu_seconds_total type %v", got)
	}
	if got := fams["citadelfs_load1"].GetType(); got != dto.MetricType_GAUGE {
		t.Errorf("citadelfs_load1 type %v", got)
	}
	if f := fams["citadelfs_systemd_unit_state"]; len(f.Metric) != 5 {
		t.Errorf("citadelfs_systemd_unit_state has %d series: the unknown unit must have none", len(f.Metric))
	}
	// Prometheus conventions: only citadelfs_* (node_* would collide with
	// a real node_exporter, ALERTS is Prometheus's own), no precomputed
	// rates beside their counters, no cpu="all" beside the per-CPU series.
	for name, f := range fams {
		if !strings.HasPrefix(name, "citadelfs_") {
			t.Errorf("series %s: only citadelfs_* belong to the sample", name)
		}
		if strings.HasSuffix(name, "_per_second") {
			t.Errorf("series %s: a precomputed rate; export the counter", name)
		}
		for _, m := range f.Metric {
			for _, l := range m.Label {
				if l.GetName() == "cpu" && l.GetValue() == "all" {
					t.Errorf("series %s has cpu=\"all\" beside the per-CPU series", name)
				}
			}
		}
	}
}

// The real collectors' output parses too, whatever this machine has.
func TestPrometheusOutputOfRealHost(t *testing.T) {
	clock := newFakeClock()
	o := testOptions(clock, nil)
	o.System = nil // gopsutil
	o.RateWindow = 20 * time.Millisecond
	o.Config.Paths = []string{t.TempDir(), "/nonexistent/citadel"}
	m := mustNew(t, o)
	collect(t, m)
	b, err := m.Render(context.Background(), FileMetrics)
	if err != nil {
		t.Fatal(err)
	}
	fams := parseProm(t, b)
	if value(t, fams, "citadelfs_memory_total_bytes") <= 0 {
		t.Errorf("no memory total")
	}
	if value(t, fams, "citadelfs_path_present", "path", "/nonexistent/citadel") != 0 {
		t.Errorf("absent path reported present")
	}
	if value(t, fams, "citadelfs_path_filesystem_size_bytes", "path", o.Config.Paths[0]) <= 0 {
		t.Errorf("temp dir's file system has no size")
	}
	if _, ok := fams["citadelfs_cpu_seconds_total"]; !ok {
		t.Errorf("no CPU seconds")
	}

	// metrics.json is the same sample.
	j, err := m.Render(context.Background(), FileMetricsJSON)
	if err != nil {
		t.Fatal(err)
	}
	var s Sample
	if err := json.Unmarshal(j, &s); err != nil {
		t.Fatal(err)
	}
	if s.System == nil || s.System.Memory == nil || s.System.Memory.Total != uint64(value(t, fams, "citadelfs_memory_total_bytes")) {
		t.Fatalf("metrics.json disagrees with metrics")
	}
}

// promtoolCheck pipes b into `promtool check metrics`, which parses it and
// lints it by Prometheus' naming conventions (counters end in _total, base
// units, snake_case, help on every family). Without promtool (Debian's
// prometheus package; .ci/run installs it) the test is skipped.
func promtoolCheck(t *testing.T, b []byte) {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (apt-get install prometheus): cannot lint the metrics")
	}
	cmd := exec.Command(path, "check", "metrics")
	cmd.Stdin = bytes.NewReader(b)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("promtool check metrics: %v\n%s\n--- metrics:\n%s", err, out, b)
	}
}

// The whole exposition, as served: every series a GPU host with a
// repository has (the rich sample), the build info, and the process and Go
// collectors, through the registry and promhttp, then promtool's lint.
func TestMetricsPassPromtool(t *testing.T) {
	now := time.Date(2026, 11, 27, 4, 2, 11, 0, time.UTC)
	s := richSample(now)
	s.Backup.Integrity = &IntegrityStatus{CorruptReads: 2, CorruptFiles: 1, LastTime: now}
	s.Backup.LastCheck = &CheckStatus{Time: now, Result: index.CheckOK}
	alerts := []Alert{{Rule: RuleGPUTemperatureHigh, Severity: SeverityCritical, Subject: "gpu0", State: StateFiring}}
	n := newNotifier(AlertingConfig{Alertmanager: []string{"http://127.0.0.1:9093"}, Webhook: []string{"http://127.0.0.1:8080/hook"}}, nil, quietLogger(), 0)
	reg := newRegistry(func() (*Sample, []Alert) { return s, alerts }, func() *notifier { return n })
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fams := parseProm(t, body)
	for _, name := range []string{"citadelfs_build_info", "citadelfs_alert_deliveries_total", "citadelfs_alert_queue_batches", "process_cpu_seconds_total", "go_goroutines", "citadelfs_gpu_xid_errors_total", "citadelfs_backup_last_check_errors"} {
		if fams[name] == nil {
			t.Errorf("no %s in the exposition", name)
		}
	}
	_, _, goVersion := BuildInfo()
	if value(t, fams, "citadelfs_build_info", "goversion", goVersion) != 1 || goVersion != runtime.Version() {
		t.Errorf("citadelfs_build_info goversion %q, want %q", goVersion, runtime.Version())
	}
	promtoolCheck(t, body)
}
