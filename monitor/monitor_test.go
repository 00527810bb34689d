package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Monitor has the shape fs.StatusSource asks for (fs is not imported here,
// as monitor may not import it).
var _ interface {
	StatusFiles() []string
	Render(ctx context.Context, name string) ([]byte, error)
} = (*Monitor)(nil)

func TestStatusFiles(t *testing.T) {
	clock, sys := newFakeClock(), &fakeSystem{}
	models := &fakeModels{}
	o := testOptions(clock, sys)
	o.Models = models
	m := mustNew(t, o)
	ctx := context.Background()

	if got := m.StatusFiles(); !sameStrings(got, []string{"alerts", "alerts.json", "metrics", "metrics.json", "health", "gpus", "models", "backup"}) {
		t.Fatalf("status files %v", got)
	}
	// Before the first cycle every file still renders.
	for _, name := range m.StatusFiles() {
		if _, err := m.Render(ctx, name); err != nil {
			t.Fatalf("%s before any sample: %v", name, err)
		}
	}
	if b, _ := m.Render(ctx, FileHealth); !strings.HasPrefix(string(b), "UNKNOWN\n") {
		t.Fatalf("health before any sample: %q", b)
	}
	if _, err := m.Render(ctx, "passwd"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("unknown status file: %v", err)
	}

	sys.set(cpuAt(97), nil)
	models.set(
		ModelStatus{Name: "hermes", Port: 11401, State: ModelHealthy, HTTPStatus: 200, LatencySeconds: 0.0123, Metrics: new(bool)},
		ModelStatus{Name: "mixtral", Port: 11400, State: ModelDown, Error: "connection refused (nothing listens on the port)"},
	)
	collect(t, m)
	clock.Advance(5 * time.Minute)
	collect(t, m)
	render := func(name string) string {
		b, err := m.Render(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}

	// Both conditions started at 04:00 and fired at the second cycle, 04:05
	// (model_unhealthy's `for` is 2m, cpu_high's 5m); critical first.
	wantAlerts := "" +
		"2026-11-27T04:05:00Z CRITICAL model_unhealthy      mixtral (port 11400) connection refused (nothing listens on the port) since 2026-11-27T04:00:00Z\n" +
		"2026-11-27T04:05:00Z WARNING  cpu_high             cpu 97.0% busy (threshold 90%) since 2026-11-27T04:00:00Z\n"
	if got := render(FileAlerts); got != wantAlerts {
		t.Errorf("alerts:\n%s\nwant:\n%s", got, wantAlerts)
	}
	if got, want := render(FileHealth), "CRITICAL\ncritical model_unhealthy mixtral: (port 11400) connection refused (nothing listens on the port)\nwarning cpu_high cpu: 97.0% busy (threshold 90%)\n"; got != want {
		t.Errorf("health:\n%s\nwant:\n%s", got, want)
	}
	// alerts.json is the seed's array: both fired at 04:05.
	var doc []Alert
	if err := json.Unmarshal([]byte(render(FileAlertsJSON)), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc) != 2 || findAlert(doc, RuleModelUnhealthy, "mixtral") == nil || doc[0].State != StateFiring || !doc[1].FiredAt.Equal(clock.Now()) {
		t.Errorf("alerts.json %+v", doc)
	}
	modelsDoc := render(FileModels)
	for _, want := range []string{"MODEL", "hermes   11401  healthy  200   12.3ms   no", "mixtral  11400  down     -     -        -        connection refused"} {
		if !strings.Contains(modelsDoc, want) {
			t.Errorf("models file lacks %q:\n%s", want, modelsDoc)
		}
	}
	if got := render(FileGPUs); got != "no GPUs found (NVML library not found (no NVIDIA driver installed))\n" {
		t.Errorf("gpus: %q", got)
	}
	var s Sample
	if err := json.Unmarshal([]byte(render(FileMetricsJSON)), &s); err != nil || s.System.CPU.TotalPercent != 97 || len(s.Models) != 2 {
		t.Errorf("metrics.json: %v %+v", err, s)
	}
	if got := render(FileMetrics); !strings.Contains(got, `citadelfs_model_up{model="mixtral",port="11400"} 0`) {
		t.Errorf("metrics lacks mixtral's state:\n%s", got)
	}
}

// Status files are read (cat) while cycles change the values: every read
// is one whole, consistent document. Run with -race.
func TestRenderWhileCollecting(t *testing.T) {
	clock, sys := newFakeClock(), &fakeSystem{}
	o := testOptions(clock, sys)
	o.Config.Thresholds.CPU = Rule{For: dur(0)}
	m := mustNew(t, o)
	sys.set(cpuAt(10), nil)
	collect(t, m)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var reads atomic.Int64
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				for _, name := range m.StatusFiles() {
					b, err := m.Render(context.Background(), name)
					if err != nil {
						t.Error(err)
						return
					}
					switch name {
					case FileMetricsJSON:
						var s Sample
						if err := json.Unmarshal(b, &s); err != nil {
							t.Errorf("torn metrics.json: %v", err)
							return
						}
					case FileMetrics:
						parseProm(t, b)
					case FileHealth:
						h := strings.SplitN(string(b), "\n", 2)[0]
						if h != HealthOK && h != HealthWarning {
							t.Errorf("health %q", h)
							return
						}
					}
				}
				reads.Add(1)
			}
		}()
	}
	for i := range 50 {
		clock.Advance(time.Minute)
		sys.set(cpuAt(float64(50+i%2*49)), nil) // 50, 99, 50, ...: fires and resolves
		collect(t, m)
	}
	close(stop)
	wg.Wait()
	if reads.Load() == 0 {
		t.Fatal("no reads ran")
	}
}

// A collector stuck in a call that ignores its context (a wedged driver)
// is abandoned after CollectTimeout and skipped until it returns.
func TestStuckCollectorIsAbandoned(t *testing.T) {
	clock, sys := newFakeClock(), &fakeSystem{}
	sys.set(cpuAt(10), nil)
	g := &stuckGPUs{release: make(chan struct{})}
	o := testOptions(clock, sys)
	o.GPUs = g
	o.CollectTimeout = 50 * time.Millisecond
	m := mustNew(t, o)
	for i := range 3 {
		start := time.Now()
		r := collect(t, m)
		if time.Since(start) > 2*time.Second {
			t.Fatalf("cycle %d waited for the stuck collector", i)
		}
		if r.collectorOK(CollectorGPU) || !r.collectorOK(CollectorSystem) {
			t.Fatalf("cycle %d: collectors %+v", i, r.Collectors)
		}
	}
	if n := g.calls.Load(); n != 1 {
		t.Fatalf("stuck source called %d times, want once", n)
	}
	close(g.release)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if r := collect(t, m); r.collectorOK(CollectorGPU) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("collector never recovered")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type stuckGPUs struct {
	release chan struct{}
	calls   atomic.Int32
}

func (s *stuckGPUs) GPUs(context.Context) (*GPUStats, error) {
	if s.calls.Add(1) == 1 {
		<-s.release // ignores ctx, as a call into the driver would
	}
	return &GPUStats{Available: false, Reason: "none", Devices: []GPU{}}, nil
}
func (s *stuckGPUs) Close() error { return nil }

func TestRunLoopAndMetricsHandler(t *testing.T) {
	sys := &fakeSystem{}
	sys.set(cpuAt(10), nil)
	o := testOptions(newFakeClock(), sys)
	o.Clock = time.Now // Run ticks on real time
	o.Config.Interval = time.Second
	m := mustNew(t, o)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()

	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	deadline := time.Now().Add(10 * time.Second)
	var first time.Time
	for {
		if s := m.Latest(); s != nil {
			if first.IsZero() {
				first = s.Time
			} else if s.Time.After(first) {
				break // a second cycle ran on the ticker
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("Run did not collect twice within 10s at a 1s interval")
		}
		time.Sleep(20 * time.Millisecond)
	}
	resp, err := srv.Client().Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("GET /metrics: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if value(t, parseProm(t, body), "citadelfs_monitor_collector_up", "collector", "system") != 1 {
		t.Fatalf("served metrics:\n%s", body)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run returned %v on cancel, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not stop on cancel")
	}
}
