package monitor

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// The model servers of the cycle benchmark run in a child process (this
// test binary re-executed), so that the CPU time measured with getrusage
// is the monitor's alone, not the servers' answering it.
const helperEnv = "CITADELFS_MONITOR_MODEL_SERVERS"

func TestHelperModelServers(t *testing.T) {
	n, err := strconv.Atoi(os.Getenv(helperEnv))
	if err != nil {
		t.Skip("helper process for BenchmarkCollectCycle")
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `{"status":"ok"}`) })
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "# TYPE vllm_num_requests_running gauge\nvllm_num_requests_running 0\n")
	})
	var ports []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports = append(ports, strconv.Itoa(l.Addr().(*net.TCPAddr).Port))
		go http.Serve(l, mux)
	}
	fmt.Println(strings.Join(ports, " "))
	io.Copy(io.Discard, os.Stdin) // until the parent closes our stdin
}

func startModelServers(b *testing.B, n int) map[string]int {
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperModelServers$")
	cmd.Env = append(os.Environ(), helperEnv+"="+strconv.Itoa(n))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { stdin.Close(); cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatal(err)
	}
	names := []string{"mixtral", "hermes", "openchat", "phi3", "yi34b", "coder", "vision"}
	models := map[string]int{}
	for i, p := range strings.Fields(line) {
		port, _ := strconv.Atoi(p)
		models[names[i%len(names)]+strconv.Itoa(i/len(names)+1)] = port
	}
	if len(models) != n {
		b.Fatalf("helper said %q", line)
	}
	return models
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkCollectCycle is one daemon cycle: gopsutil over the whole host,
// 7 model services probed over HTTP (/health and /metrics), no GPU, rules,
// and the history write into Pebble. cpu_ms/op is the process's CPU time
// per cycle (target: under 50 ms). keepalive reuses connections between
// cycles; fresh-connections is a model server that closes idle
// connections before the next cycle (uvicorn does after 5s), so every probe
// pays for a TCP handshake.
func BenchmarkCollectCycle(b *testing.B) {
	for _, c := range []struct {
		name   string
		client *http.Client
	}{
		{"keepalive", nil},
		{"fresh-connections", &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}},
	} {
		b.Run(c.name, func(b *testing.B) {
			kv := openKV(b, b.TempDir())
			defer kv.Close()
			m := mustNew(b, Options{
				Config:     Config{Models: startModelServers(b, 7), Paths: []string{b.TempDir(), "/", "/opt/citadel"}},
				GPUs:       noGPUs{},
				KV:         kv,
				HTTPClient: c.client,
				Logger:     quietLogger(),
			})
			ctx := context.Background()
			if _, err := m.CollectOnce(ctx); err != nil { // primes the rate window
				b.Fatal(err)
			}
			start := cpuTime()
			n := 0
			for b.Loop() {
				r, err := m.CollectOnce(ctx)
				if err != nil {
					b.Fatal(err)
				}
				for _, mo := range r.Models {
					if mo.State != ModelHealthy {
						b.Fatalf("model %+v", mo)
					}
				}
				n++
			}
			b.ReportMetric(float64(cpuTime()-start)/float64(time.Millisecond)/float64(n), "cpu_ms/op")
		})
	}
}

// renderMonitor is a monitor after a cycle on an 8-GPU DGX A100 (mock),
// with 7 models and 20 firing alerts: a busy status/ directory.
func renderMonitor(b *testing.B) *Monitor {
	srv, _ := dgx(b, func(i int) gpuReading {
		return gpuReading{util: 99, temp: 85, powerMW: 390000, limitMW: 400000, usedMiB: 39000, ecc: nvml.SUCCESS}
	})
	clock := newFakeClock()
	models := &fakeModels{}
	var ms []ModelStatus
	for i, name := range []string{"mixtral", "hermes", "openchat", "phi3", "yi34b", "coder", "vision"} {
		ms = append(ms, ModelStatus{Name: name, Port: 11400 + i, State: ModelUnhealthy, HTTPStatus: 503, Error: "/health answered HTTP 503", LatencySeconds: 0.01})
	}
	models.set(ms...)
	o := Options{
		Config: Config{Paths: []string{b.TempDir()}, Thresholds: Thresholds{
			GPUMemory: Rule{For: dur(0)}, GPUTemperature: Rule{For: dur(0)}, ModelUnhealthy: Rule{For: dur(0)}}},
		Clock: clock.Now, GPUs: NewNVMLSource(NVMLOptions{Lib: srv}), Models: models, Logger: quietLogger(), RateWindow: 10 * time.Millisecond,
	}
	m := mustNew(b, o)
	r, err := m.CollectOnce(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	if n := len(r.Alerts); n < 23 {
		b.Fatalf("%d alerts, want at least 8+8+7", n)
	}
	return m
}

func BenchmarkRenderAlerts(b *testing.B) {
	m := renderMonitor(b)
	ctx := context.Background()
	var size int
	for b.Loop() {
		out, err := m.Render(ctx, FileAlerts)
		if err != nil {
			b.Fatal(err)
		}
		size = len(out)
	}
	b.ReportMetric(float64(size), "bytes")
}

func BenchmarkRenderMetrics(b *testing.B) {
	m := renderMonitor(b)
	ctx := context.Background()
	var size int
	for b.Loop() {
		out, err := m.Render(ctx, FileMetrics)
		if err != nil {
			b.Fatal(err)
		}
		size = len(out)
	}
	b.ReportMetric(float64(size), "bytes")
}
