package monitor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Alert delivery: the running monitor (the mount daemon, `citadelfs
// monitor`) pushes its alerts to Prometheus Alertmanager's API v2 and to
// generic JSON webhooks, so that an alert reaches a person instead of
// waiting in status/alerts for someone to look.
//
//   - Alertmanager gets the whole state: every firing alert, with endsAt a
//     few resend intervals ahead, sent when something changes and again
//     every resend_interval (as Prometheus does: Alertmanager ends an
//     alert whose endsAt passes, so one that is no longer re-sent, because
//     the monitor stopped, resolves by itself), and each resolved alert
//     with its real endsAt for resolvedKeep after it resolved. Sends to
//     one Alertmanager coalesce: a newer state replaces one not yet sent.
//   - A webhook gets transitions only: the alerts that fired or resolved
//     in one cycle, as one JSON array, in order. Its queue is bounded; when
//     it is full the oldest batch is dropped, and said so in the log.
//
// Delivery never blocks the monitor loop: a cycle only hands the new state
// to each target's goroutine. A failed delivery (no answer, 5xx, 429) is
// logged and retried with exponential backoff (retryBase doubling up to
// retryMax); any other 4xx is the request's fault, logged and dropped.
// Only firing alerts are sent; pending ones are the monitor's own business,
// as they are Prometheus's.

// AlertingConfig is the configuration file's top-level `alerting:`
// section: where the running monitor sends its alerts. Zero values mean
// the defaults.
type AlertingConfig struct {
	// Alertmanager lists Alertmanager base URLs (http://host:9093, with
	// its path prefix if it has one); alerts go to <url>/api/v2/alerts.
	Alertmanager []string `yaml:"alertmanager"`
	// Webhook lists URLs that get a POST of a JSON array of the alerts
	// that fired or resolved.
	Webhook []string `yaml:"webhook"`
	// ResendInterval is how often Alertmanager is sent the firing alerts
	// again (default 1m). Firing alerts carry endsAt four intervals ahead,
	// so Alertmanager keeps them while they are re-sent and resolves them
	// when the monitor stops sending.
	ResendInterval time.Duration `yaml:"resend_interval"`
	// Timeout bounds one delivery (default 10s).
	Timeout time.Duration `yaml:"timeout"`
	// QueueSize bounds each webhook's queue of undelivered batches
	// (default 100).
	QueueSize int `yaml:"queue_size"`
	// GeneratorURL, if set, is every alert's generatorURL (a link to this
	// host's dashboard, say).
	GeneratorURL string `yaml:"generator_url"`
}

// Enabled reports whether any target is configured.
func (a AlertingConfig) Enabled() bool { return len(a.Alertmanager)+len(a.Webhook) > 0 }

// WithDefaults fills the unset fields.
func (a AlertingConfig) WithDefaults() AlertingConfig {
	if a.ResendInterval == 0 {
		a.ResendInterval = time.Minute
	}
	if a.Timeout == 0 {
		a.Timeout = 10 * time.Second
	}
	if a.QueueSize == 0 {
		a.QueueSize = 100
	}
	return a
}

// Validate reports the first mistake; zero values (defaults) are fine.
func (a AlertingConfig) Validate() error {
	check := func(key string, i int, s string) error {
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("%s[%d] %q is not an http:// or https:// URL", key, i, s)
		}
		return nil
	}
	for i, s := range a.Alertmanager {
		if err := check("alertmanager", i, s); err != nil {
			return err
		}
	}
	for i, s := range a.Webhook {
		if err := check("webhook", i, s); err != nil {
			return err
		}
	}
	if a.GeneratorURL != "" {
		if u, err := url.Parse(a.GeneratorURL); err != nil || !u.IsAbs() {
			return fmt.Errorf("generator_url %q is not an absolute URL", a.GeneratorURL)
		}
	}
	switch {
	case a.ResendInterval < 0 || a.ResendInterval > 0 && a.ResendInterval < time.Second:
		return fmt.Errorf("resend_interval %s is below 1s", a.ResendInterval)
	case a.Timeout < 0:
		return fmt.Errorf("timeout must be positive")
	case a.QueueSize < 0:
		return fmt.Errorf("queue_size must be positive")
	}
	return nil
}

// resolvedKeep is how long a resolved alert is still sent to
// Alertmanager, so that a resolve lost to a failed delivery arrives with a
// later one (Prometheus keeps them 15 minutes too).
const resolvedKeep = 15 * time.Minute

// Delivery retry backoff bounds.
const (
	defaultRetryBase = time.Second
	retryMax         = time.Minute
)

// AlertmanagerAlert is one alert as Alertmanager's API v2 takes it
// (postableAlert), and, with Status, as a webhook gets it.
type AlertmanagerAlert struct {
	// Status is "firing" or "resolved" (webhooks only; Alertmanager tells
	// them apart by endsAt).
	Status       string            `json:"status,omitempty"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt,omitzero"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// notifier keeps what has been sent and feeds the targets.
type notifier struct {
	cfg       AlertingConfig
	client    *http.Client
	logger    *slog.Logger
	retryBase time.Duration
	targets   []*target
	amTargets []*target

	mu       sync.Mutex
	firing   map[alertKey]AlertmanagerAlert // as last sent, endsAt unset
	resolved map[alertKey]AlertmanagerAlert // with their endsAt
	now      time.Time                      // the latest cycle's time
	wg       sync.WaitGroup
}

// target is one URL and its queue of encoded request bodies.
type target struct {
	kind, url string // kind: "alertmanager" or "webhook"
	coalesce  bool   // a new batch replaces the queued one
	max       int

	mu      sync.Mutex
	queue   []*[]byte
	dropped int // batches dropped from a full queue, in all
	sent    int // batches delivered
	refused int // batches the receiver refused (4xx), dropped
	failed  int // failed attempts (each retry counts)
	wake    chan struct{}
}

func newNotifier(cfg AlertingConfig, client *http.Client, logger *slog.Logger, retryBase time.Duration) *notifier {
	cfg = cfg.WithDefaults()
	n := &notifier{cfg: cfg, client: client, logger: logger, retryBase: retryBase,
		firing: map[alertKey]AlertmanagerAlert{}, resolved: map[alertKey]AlertmanagerAlert{}}
	if n.retryBase <= 0 {
		n.retryBase = defaultRetryBase
	}
	for _, u := range cfg.Alertmanager {
		t := &target{kind: "alertmanager", url: strings.TrimRight(u, "/") + "/api/v2/alerts", coalesce: true, max: 1, wake: make(chan struct{}, 1)}
		n.targets = append(n.targets, t)
		n.amTargets = append(n.amTargets, t)
	}
	for _, u := range cfg.Webhook {
		n.targets = append(n.targets, &target{kind: "webhook", url: u, max: cfg.QueueSize, wake: make(chan struct{}, 1)})
	}
	return n
}

// start runs one delivery goroutine per target and the resend ticker
// until ctx ends; wait waits for them.
func (n *notifier) start(ctx context.Context) {
	for _, t := range n.targets {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.deliver(ctx, t)
		}()
	}
	if len(n.amTargets) > 0 {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			tk := time.NewTicker(n.cfg.ResendInterval)
			defer tk.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tk.C:
					n.resend()
				}
			}
		}()
	}
}

func (n *notifier) wait() { n.wg.Wait() }

// wireAlert is a's Alertmanager form, without endsAt.
func (n *notifier) wireAlert(a Alert, host, repo string) AlertmanagerAlert {
	labels := map[string]string{"alertname": a.Rule, "severity": a.Severity}
	for k, v := range map[string]string{"subject": a.Subject, "instance": host, "repo": repo} {
		if v != "" {
			// Alertmanager refuses a whole batch over one label value that
			// is not UTF-8 (a path can be anything).
			labels[k] = strings.ToValidUTF8(v, "\uFFFD")
		}
	}
	summary := a.Rule
	if a.Subject != "" {
		summary += " on " + a.Subject
	}
	if host != "" {
		summary += " (" + host + ")"
	}
	return AlertmanagerAlert{
		Labels:       labels,
		Annotations:  map[string]string{"summary": strings.ToValidUTF8(summary, "\uFFFD"), "description": strings.ToValidUTF8(a.Message, "\uFFFD")},
		StartsAt:     a.ActiveSince.UTC(),
		GeneratorURL: n.cfg.GeneratorURL,
	}
}

// observe takes one cycle's outcome: the alerts active after it and its
// transitions. It only updates maps and queues; it never waits for a
// target.
func (n *notifier) observe(now time.Time, s *Sample, alerts []Alert, events []Event) {
	host, repo := "", ""
	if s != nil {
		host = s.Host
		if s.Backup != nil && s.Backup.Configured {
			repo = s.Backup.Repo
		}
	}
	resolvedAt := map[alertKey]time.Time{}
	for _, ev := range events {
		if ev.To == StateResolved {
			resolvedAt[alertKey{ev.Rule, ev.Subject}] = ev.Time
		}
	}

	n.mu.Lock()
	n.now = now
	var changes []AlertmanagerAlert
	current := map[alertKey]bool{}
	for _, a := range alerts {
		if a.State != StateFiring {
			continue
		}
		k := alertKey{a.Rule, a.Subject}
		current[k] = true
		w := n.wireAlert(a, host, repo)
		old, known := n.firing[k]
		n.firing[k] = w
		delete(n.resolved, k)
		if !known || old.StartsAt != w.StartsAt {
			w.Status = StateFiring
			changes = append(changes, w)
		}
	}
	for k, w := range n.firing {
		if current[k] {
			continue
		}
		delete(n.firing, k)
		end, ok := resolvedAt[k]
		if !ok {
			end = now // gone without an event: a rule switched off
		}
		w.EndsAt = end.UTC()
		n.resolved[k] = w
		w.Status = StateResolved
		changes = append(changes, w)
	}
	for k, w := range n.resolved {
		if now.Sub(w.EndsAt) > resolvedKeep {
			delete(n.resolved, k)
		}
	}
	var amBody []byte
	if len(changes) > 0 && len(n.amTargets) > 0 {
		amBody = n.alertmanagerBodyLocked()
	}
	n.mu.Unlock()

	if amBody != nil {
		for _, t := range n.amTargets {
			n.push(t, amBody)
		}
	}
	if len(changes) > 0 {
		sortWire(changes)
		body, err := json.Marshal(changes)
		if err != nil {
			n.logger.Warn("monitor: alerting: encode", "err", err)
			return
		}
		for _, t := range n.targets {
			if t.kind == "webhook" {
				n.push(t, body)
			}
		}
	}
}

// resend queues the current state for every Alertmanager.
func (n *notifier) resend() {
	n.mu.Lock()
	if len(n.firing)+len(n.resolved) == 0 {
		n.mu.Unlock()
		return
	}
	body := n.alertmanagerBodyLocked()
	n.mu.Unlock()
	for _, t := range n.amTargets {
		n.push(t, body)
	}
}

// alertmanagerBodyLocked encodes every firing alert, endsAt four resend
// intervals ahead of the latest cycle, and the recently resolved ones.
func (n *notifier) alertmanagerBodyLocked() []byte {
	out := make([]AlertmanagerAlert, 0, len(n.firing)+len(n.resolved))
	ends := n.now.Add(4 * n.cfg.ResendInterval).UTC()
	for _, w := range n.firing {
		w.EndsAt = ends
		out = append(out, w)
	}
	for _, w := range n.resolved {
		out = append(out, w)
	}
	sortWire(out)
	b, _ := json.Marshal(out) // maps of strings and times: cannot fail
	return b
}

func sortWire(a []AlertmanagerAlert) {
	key := func(w AlertmanagerAlert) string { return w.Labels["alertname"] + "\x00" + w.Labels["subject"] }
	for i := 1; i < len(a); i++ {
		for j := i; j > 0 && key(a[j]) < key(a[j-1]); j-- {
			a[j], a[j-1] = a[j-1], a[j]
		}
	}
}

// push queues body for t without waiting.
func (n *notifier) push(t *target, body []byte) {
	t.mu.Lock()
	b := &body
	dropped := 0
	switch {
	case t.coalesce:
		t.queue = []*[]byte{b}
	case len(t.queue) >= t.max:
		t.queue = append(t.queue[1:], b)
		t.dropped++
		dropped = t.dropped
	default:
		t.queue = append(t.queue, b)
	}
	t.mu.Unlock()
	if dropped > 0 {
		n.logger.Warn("monitor: alerting: queue full, oldest batch dropped", "target", t.kind, "url", t.url, "dropped", dropped)
	}
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

func (t *target) head() *[]byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.queue) == 0 {
		return nil
	}
	return t.queue[0]
}

// done removes b from the queue's head unless something replaced it,
// and counts the outcome (*counter: sent or refused).
func (t *target) done(b *[]byte, counter *int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	*counter++
	if len(t.queue) > 0 && t.queue[0] == b {
		t.queue = t.queue[1:]
	}
}

// metrics adds t's delivery counters and queue length.
func (t *target) metrics(w *promWriter) {
	t.mu.Lock()
	defer t.mu.Unlock()
	l := []string{"target", t.kind, "url", t.url}
	for _, c := range []struct {
		result string
		n      int
	}{{"sent", t.sent}, {"failed", t.failed}, {"refused", t.refused}, {"dropped", t.dropped}} {
		w.counter("citadelfs_alert_deliveries_total", "Alert batches by outcome: sent, failed (an attempt to be retried), refused (4xx, dropped), dropped (queue full).", float64(c.n), append(l[:4:4], "result", c.result)...)
	}
	w.gauge("citadelfs_alert_queue_batches", "Alert batches waiting for delivery.", float64(len(t.queue)), l...)
}

// pending is how many batches wait for t (for tests).
func (t *target) pending() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.queue)
}

// errPermanent marks a delivery the receiver refused for its content.
var errPermanent = errors.New("refused")

// deliver sends t's queue in order until ctx ends, retrying failures with
// backoff.
func (n *notifier) deliver(ctx context.Context, t *target) {
	var backoff time.Duration
	failing := false
	for {
		b := t.head()
		if b == nil {
			select {
			case <-ctx.Done():
				return
			case <-t.wake:
				continue
			}
		}
		err := n.post(ctx, t.url, *b)
		if ctx.Err() != nil {
			return
		}
		switch {
		case err == nil:
			t.done(b, &t.sent)
			if failing {
				n.logger.Info("monitor: alerting: delivered again", "target", t.kind, "url", t.url)
			}
			backoff, failing = 0, false
			continue
		case errors.Is(err, errPermanent):
			t.done(b, &t.refused)
			n.logger.Error("monitor: alerting: batch refused, dropped", "target", t.kind, "url", t.url, "err", err)
			backoff, failing = 0, false
			continue
		}
		t.mu.Lock()
		t.failed++
		t.mu.Unlock()
		if backoff == 0 {
			backoff = n.retryBase
		} else {
			backoff = min(2*backoff, retryMax)
		}
		failing = true
		n.logger.Warn("monitor: alerting: delivery failed", "target", t.kind, "url", t.url, "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
	}
}

// post sends one body. A 4xx other than 429 is errPermanent.
func (n *notifier) post(ctx context.Context, u string, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%w: %v", errPermanent, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "citadelfs-monitor")
	resp, err := n.client.Do(req)
	if err != nil {
		return err
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	resp.Body.Close()
	switch {
	case resp.StatusCode/100 == 2:
		return nil
	case resp.StatusCode/100 == 4 && resp.StatusCode != http.StatusTooManyRequests:
		return fmt.Errorf("%w: HTTP %s: %s", errPermanent, resp.Status, strings.TrimSpace(string(msg)))
	}
	return fmt.Errorf("HTTP %s: %s", resp.Status, strings.TrimSpace(string(msg)))
}
