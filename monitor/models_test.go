package monitor

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"
	"time"
)

// portOf returns the port an httptest server listens on.
func portOf(t testing.TB, srv *httptest.Server) int {
	t.Helper()
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// closedPort returns a port on 127.0.0.1 that nothing listens on: it was
// bound and released, so the kernel refuses connections to it.
func closedPort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return p
}

// modelServer serves /health with status and /metrics when metrics is set.
func modelServer(t testing.TB, status int, metrics bool) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(status)
		w.Write([]byte(`{"status":"ok"}`))
	})
	if metrics {
		mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte("# TYPE vllm_requests counter\nvllm_requests 3\n"))
		})
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestModelProbes(t *testing.T) {
	healthy := modelServer(t, 200, true)
	noMetrics := modelServer(t, 204, false)
	failing := modelServer(t, 500, true)
	release := make(chan struct{})
	hanging := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select { // answers nothing until the test ends
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(hanging.Close)
	t.Cleanup(func() { close(release) })

	timeout := 300 * time.Millisecond
	src := NewHTTPModels(HTTPModelOptions{
		Models: map[string]int{
			"healthy": portOf(t, healthy), "nometrics": portOf(t, noMetrics), "failing": portOf(t, failing),
			"hanging": portOf(t, hanging), "absent": closedPort(t),
		},
		Timeout: timeout,
	})
	start := time.Now()
	ms, err := src.Models(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 10*timeout {
		t.Fatalf("probing took %v: the hanging service was not cut off by the %v timeout", took, timeout)
	}
	got := map[string]ModelStatus{}
	names := []string{}
	for _, m := range ms {
		got[m.Name] = m
		names = append(names, m.Name)
	}
	if !sameStrings(names, []string{"absent", "failing", "hanging", "healthy", "nometrics"}) {
		t.Fatalf("models in order %v", names)
	}
	yes, no := true, false
	for _, c := range []struct {
		name    string
		state   string
		code    int
		metrics *bool
	}{
		{"healthy", ModelHealthy, 200, &yes},
		{"nometrics", ModelHealthy, 204, &no},
		{"failing", ModelUnhealthy, 500, &yes},
		{"hanging", ModelTimeout, 0, nil},
		{"absent", ModelDown, 0, nil},
	} {
		m := got[c.name]
		if m.State != c.state || m.HTTPStatus != c.code {
			t.Errorf("%s: state %s http %d (%s), want %s %d", c.name, m.State, m.HTTPStatus, m.Error, c.state, c.code)
		}
		if (m.Metrics == nil) != (c.metrics == nil) || m.Metrics != nil && *m.Metrics != *c.metrics {
			t.Errorf("%s: metrics endpoint %v, want %v", c.name, m.Metrics, c.metrics)
		}
		if (m.State == ModelHealthy) != (m.Error == "") {
			t.Errorf("%s: error %q with state %s", c.name, m.Error, m.State)
		}
	}
	if l := got["healthy"].LatencySeconds; l <= 0 || l > 5 {
		t.Errorf("healthy latency %v s", l)
	}
	if l := got["hanging"].LatencySeconds; l < timeout.Seconds() {
		t.Errorf("hanging latency %v s, want at least the %v timeout", l, timeout)
	}
}

// The seed's behaviour end to end: a model failing /health is pending, then
// critical after `for`, and the status files say so.
func TestModelUnhealthyThroughMonitor(t *testing.T) {
	failing := modelServer(t, 500, false)
	healthy := modelServer(t, 200, true)
	clock, sys := newFakeClock(), &fakeSystem{}
	sys.set(cpuAt(5), nil)
	o := testOptions(clock, sys)
	o.Models = nil // the real HTTP prober
	o.Config.Models = map[string]int{"mixtral": portOf(t, failing), "hermes": portOf(t, healthy)}
	o.Config.HTTPTimeout = 2 * time.Second
	m := mustNew(t, o)

	r := collect(t, m)
	a := findAlert(r.Alerts, RuleModelUnhealthy, "mixtral")
	if a == nil || a.State != StatePending || HealthOf(r.Alerts, true) != HealthCritical || r.Health != HealthOK {
		t.Fatalf("first sample: alert %+v, health %s", a, r.Health)
	}
	clock.Advance(2 * time.Minute)
	r = collect(t, m)
	if a = findAlert(r.Alerts, RuleModelUnhealthy, "mixtral"); a == nil || a.State != StateFiring {
		t.Fatalf("after 2m: alert %+v, want firing", a)
	}
	if findAlert(r.Alerts, RuleModelUnhealthy, "hermes") != nil {
		t.Fatalf("healthy hermes alerted")
	}
	body, err := m.Render(context.Background(), FileHealth)
	if err != nil {
		t.Fatal(err)
	}
	want := "CRITICAL\ncritical model_unhealthy mixtral: (port " + strconv.Itoa(portOf(t, failing)) + ") /health answered HTTP 500\n"
	if string(body) != want {
		t.Fatalf("health:\n%s\nwant:\n%s", body, want)
	}
}
