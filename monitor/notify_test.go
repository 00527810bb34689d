package monitor

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// receiver is a real HTTP server on 127.0.0.1 that records what it is
// sent, answering each request with the next status of codes (then 200).
type receiver struct {
	srv   *httptest.Server
	mu    sync.Mutex
	codes []int
	got   []received
	ch    chan received
}

type received struct {
	path, contentType string
	code              int
	alerts            []AlertmanagerAlert
}

func newReceiver(t *testing.T, codes ...int) *receiver {
	r := &receiver{codes: codes, ch: make(chan received, 100)}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		rec := received{path: req.URL.Path, contentType: req.Header.Get("Content-Type"), code: 200}
		if err := json.Unmarshal(body, &rec.alerts); err != nil {
			t.Errorf("body is not a JSON array of alerts: %v\n%s", err, body)
		}
		r.mu.Lock()
		if len(r.codes) > 0 {
			rec.code, r.codes = r.codes[0], r.codes[1:]
		}
		r.got = append(r.got, rec)
		r.mu.Unlock()
		w.WriteHeader(rec.code)
		r.ch <- rec
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// next waits for the next request (a generous bound: it only catches a
// hang, never times the code).
func (r *receiver) next(t *testing.T) received {
	t.Helper()
	select {
	case rec := <-r.ch:
		return rec
	case <-time.After(20 * time.Second):
		t.Fatal("no request within 20s")
		return received{}
	}
}

// alertingMonitor is a monitor whose cpu_high fires on the first sample
// above 90% and whose alerts go to the given targets.
func alertingMonitor(t *testing.T, clock *fakeClock, sys *fakeSystem, a AlertingConfig) (*Monitor, *syncWriter) {
	o := testOptions(clock, sys)
	o.Config.Thresholds.CPU = Rule{For: dur(0)}
	o.Config.Alerting = a
	o.AlertingRetry = time.Millisecond
	o.Hostname = "gpu-1"
	logs := &syncWriter{}
	o.Logger = slog.New(slog.NewTextHandler(logs, nil))
	m := mustNew(t, o)
	ctx, cancel := context.WithCancel(context.Background())
	wait := m.startAlerting(ctx)
	t.Cleanup(func() { cancel(); wait() })
	return m, logs
}

// syncWriter is a log buffer the delivery goroutines write while the test
// reads it.
type syncWriter struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A webhook gets each transition once, as a JSON array, in order: the
// firing alert (after two failed deliveries, retried), nothing while it
// keeps firing, then its resolution with endsAt.
func TestWebhookGetsTransitionsWithRetry(t *testing.T) {
	hook := newReceiver(t, 503, 503)
	clock := newFakeClock()
	sys := &fakeSystem{}
	sys.set(cpuAt(95), nil)
	m, logs := alertingMonitor(t, clock, sys, AlertingConfig{Webhook: []string{hook.srv.URL + "/hook"}})

	start := clock.Now()
	collect(t, m)
	for i := 0; i < 3; i++ {
		rec := hook.next(t)
		if len(rec.alerts) != 1 || rec.path != "/hook" || rec.contentType != "application/json" {
			t.Fatalf("request %d: %+v", i, rec)
		}
		a := rec.alerts[0]
		if a.Status != StateFiring || a.Labels["alertname"] != RuleCPUHigh || a.Labels["severity"] != SeverityWarning ||
			a.Labels["instance"] != "gpu-1" || a.Labels["subject"] != "cpu" || !a.StartsAt.Equal(start) || !a.EndsAt.IsZero() ||
			!strings.Contains(a.Annotations["description"], "95.0% busy") || a.Annotations["summary"] == "" {
			t.Fatalf("firing alert %+v", a)
		}
	}
	if !strings.Contains(logs.String(), "delivery failed") || !strings.Contains(logs.String(), "503") {
		t.Errorf("failed deliveries not logged:\n%s", logs)
	}
	b, err := m.Render(context.Background(), FileMetrics)
	if err != nil {
		t.Fatal(err)
	}
	fams := parseProm(t, b)
	waitSent := time.Now().Add(20 * time.Second) // the 200 is counted just after the server answers it
	for value(t, fams, "citadelfs_alert_deliveries_total", "target", "webhook", "result", "sent") != 1 && time.Now().Before(waitSent) {
		time.Sleep(10 * time.Millisecond)
		b, _ = m.Render(context.Background(), FileMetrics)
		fams = parseProm(t, b)
	}
	if value(t, fams, "citadelfs_alert_deliveries_total", "target", "webhook", "result", "failed") != 2 ||
		value(t, fams, "citadelfs_alert_deliveries_total", "target", "webhook", "result", "sent") != 1 {
		t.Errorf("delivery counters:\n%s", b)
	}

	clock.Advance(time.Minute)
	collect(t, m) // still firing: nothing new for the webhook
	clock.Advance(time.Minute)
	sys.set(cpuAt(10), nil)
	collect(t, m)
	rec := hook.next(t)
	if len(rec.alerts) != 1 || rec.alerts[0].Status != StateResolved || !rec.alerts[0].EndsAt.Equal(clock.Now()) {
		t.Fatalf("after the resolve: %+v", rec)
	}
	select {
	case extra := <-hook.ch:
		t.Fatalf("a batch while the alert kept firing or after the resolve: %+v", extra)
	default:
	}
}

// A 4xx is the batch's fault: it is logged and dropped, not retried, and
// later batches still go out.
func TestWebhookRefusedBatchIsDropped(t *testing.T) {
	hook := newReceiver(t, 400)
	clock := newFakeClock()
	sys := &fakeSystem{}
	sys.set(cpuAt(95), nil)
	m, logs := alertingMonitor(t, clock, sys, AlertingConfig{Webhook: []string{hook.srv.URL}})
	collect(t, m)
	if rec := hook.next(t); rec.code != 400 || rec.alerts[0].Status != StateFiring {
		t.Fatalf("first %+v", rec)
	}
	clock.Advance(time.Minute)
	sys.set(cpuAt(10), nil)
	collect(t, m)
	if rec := hook.next(t); rec.code != 200 || rec.alerts[0].Status != StateResolved {
		t.Fatalf("second %+v: the refused batch was retried", rec)
	}
	if !strings.Contains(logs.String(), "refused") {
		t.Errorf("refused batch not logged:\n%s", logs)
	}
}

// A receiver that never answers blocks neither the cycle nor the queue's
// bound: cycles go on, the queue holds at most queue_size batches, and the
// drops are logged.
func TestAlertingNeverBlocksTheLoop(t *testing.T) {
	release := make(chan struct{})
	var requests sync.WaitGroup
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		defer requests.Done()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer hung.Close()
	defer close(release)
	clock := newFakeClock()
	sys := &fakeSystem{}
	m, logs := alertingMonitor(t, clock, sys, AlertingConfig{Webhook: []string{hung.URL}, Alertmanager: []string{hung.URL}, QueueSize: 3, Timeout: time.Hour})
	for i := 0; i < 40; i++ { // 40 transitions: fire, resolve, fire, ...
		sys.set(cpuAt(float64(10+85*((i+1)%2))), nil)
		collect(t, m)
		clock.Advance(time.Minute)
	}
	m.collectMu.Lock()
	n := m.notifier
	m.collectMu.Unlock()
	for _, tg := range n.targets {
		if p := tg.pending(); p > tg.max {
			t.Errorf("%s queue holds %d batches, bound %d", tg.kind, p, tg.max)
		}
	}
	if !strings.Contains(logs.String(), "queue full") {
		t.Errorf("drops not logged:\n%s", logs)
	}
}

// Alertmanager gets the whole state: firing alerts with endsAt ahead (so
// they expire if the monitor stops), re-sent on the resend tick, and a
// resolved alert with its real endsAt, still sent for a while after.
func TestAlertmanagerGetsStateAndResends(t *testing.T) {
	am := newReceiver(t)
	clock := newFakeClock()
	sys := &fakeSystem{}
	sys.set(cpuAt(95), nil)
	m, _ := alertingMonitor(t, clock, sys, AlertingConfig{Alertmanager: []string{am.srv.URL + "/prefix/"}, ResendInterval: time.Hour})
	collect(t, m)
	rec := am.next(t)
	if rec.path != "/prefix/api/v2/alerts" || len(rec.alerts) != 1 {
		t.Fatalf("first push %+v", rec)
	}
	a := rec.alerts[0]
	if a.Status != "" || a.Labels["alertname"] != RuleCPUHigh || !a.EndsAt.Equal(clock.Now().Add(4*time.Hour)) {
		t.Fatalf("firing alert %+v (endsAt want 4 resend intervals ahead)", a)
	}

	m.collectMu.Lock()
	n := m.notifier
	m.collectMu.Unlock()
	n.resend() // what the ticker does every resend_interval
	if rec := am.next(t); len(rec.alerts) != 1 || rec.alerts[0].Labels["alertname"] != RuleCPUHigh {
		t.Fatalf("resend %+v", rec)
	}

	clock.Advance(time.Minute)
	sys.set(cpuAt(10), nil)
	collect(t, m)
	rec = am.next(t)
	if len(rec.alerts) != 1 || !rec.alerts[0].EndsAt.Equal(clock.Now()) {
		t.Fatalf("resolve %+v", rec)
	}
	n.resend()
	if rec := am.next(t); len(rec.alerts) != 1 || !rec.alerts[0].EndsAt.Equal(clock.Now()) {
		t.Fatalf("resolved alert not re-sent within %s: %+v", resolvedKeep, rec)
	}
	clock.Advance(resolvedKeep + time.Minute)
	collect(t, m)
	n.resend() // nothing left: no request
	select {
	case extra := <-am.ch:
		t.Fatalf("request with nothing to say: %+v", extra)
	default:
	}
}

func TestAlertingConfigValidate(t *testing.T) {
	for _, c := range []struct {
		a    AlertingConfig
		want string
	}{
		{AlertingConfig{Alertmanager: []string{"127.0.0.1:9093"}}, `alertmanager[0] "127.0.0.1:9093" is not an http:// or https:// URL`},
		{AlertingConfig{Webhook: []string{"http://ok/", "ftp://x/"}}, `webhook[1]`},
		{AlertingConfig{ResendInterval: time.Millisecond}, "resend_interval"},
		{AlertingConfig{GeneratorURL: "/relative"}, "generator_url"},
	} {
		err := c.a.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.a, err, c.want)
		}
	}
	if err := (AlertingConfig{Alertmanager: []string{"https://am.example:9093/am"}, Webhook: []string{"http://127.0.0.1:8080/hook"}}).Validate(); err != nil {
		t.Errorf("valid config: %v", err)
	}
}
