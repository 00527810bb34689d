package monitor

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"citadelfs/index"
)

// Options configure a Monitor. Every field is optional; withDefaults fills
// what is left zero. Sources are interfaces so that tests (and other
// platforms) can swap them.
type Options struct {
	// Config is the `monitor:` configuration section; New applies its
	// defaults and validates it.
	Config Config
	// KV stores history: one sample per cycle and every alert transition,
	// trimmed to the configured retention. Pass the repository's index
	// when it is open in this process, or OpenHistoryKV of a directory
	// below Config.HistoryDir
	// otherwise. nil keeps no history (recent events then live in memory
	// only). The monitor never closes it.
	KV *index.KV
	// HistoryReadOnly reads KV (restoring firing alerts, listing recent
	// events) without writing samples, events or trims to it.
	HistoryReadOnly bool
	// Clock is the time source for samples, rules and history (default
	// time.Now). Rules are driven entirely by it: tests step it by hand.
	Clock func() time.Time
	// HTTPClient probes the model services (default: a keep-alive client
	// without proxy, see defaultHTTPClient).
	HTTPClient *http.Client
	// System reads CPU, memory, disks and network (default: gopsutil with
	// RateWindow, watching Config.Paths).
	System SystemSource
	// RateWindow is the first system sample's wait between two counter
	// readings (default 1s). See HostSystemOptions.RateWindow.
	RateWindow time.Duration
	// GPUs reads the GPUs (default: NVML via go-nvml). An injected source
	// belongs to the caller; the default one is closed by Close.
	GPUs GPUSource
	// Models probes the model services (default: HTTP GET on 127.0.0.1).
	Models ModelSource
	// Units reads systemd unit states (default: `systemctl is-active` via
	// Systemctl).
	Units UnitSource
	// Systemctl runs systemctl for the default Units (default ExecSystemctl).
	Systemctl SystemctlRunner
	// Backup reports the repository's backup state; nil means there is no
	// repository and the backup collector says BackupReason.
	Backup BackupSource
	// BackupReason explains a nil Backup (default "no repository configured").
	BackupReason string
	// CollectTimeout bounds each collector in a cycle (default the
	// interval up to 30s, but at least 10s and two HTTP timeouts). A
	// collector that overruns is abandoned for that cycle and skipped while
	// it is still running.
	CollectTimeout time.Duration
	// TrimEvery is how often history is trimmed (default 1h; retention is
	// in days, so trimming every cycle would only add tombstones).
	TrimEvery time.Duration
	// Logger receives alert transitions and collector failures (default
	// slog.Default()).
	Logger *slog.Logger
	// Hostname labels samples (default os.Hostname()).
	Hostname string
	// RecentEvents is how many alert events are kept in memory (default 200).
	RecentEvents int
	// AlertingClient delivers alerts to Config.Alerting's targets
	// (default: an http.Client that honours $HTTPS_PROXY and friends).
	AlertingClient *http.Client
	// AlertingRetry is the first delay before a failed delivery is tried
	// again; it doubles up to a minute (default 1s).
	AlertingRetry time.Duration
}

func (o Options) withDefaults() (Options, error) {
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.HTTPClient == nil {
		o.HTTPClient = defaultHTTPClient()
	}
	if o.System == nil {
		s, err := NewHostSystem(HostSystemOptions{Paths: o.Config.Paths, Clock: o.Clock, RateWindow: o.RateWindow})
		if err != nil {
			return o, err
		}
		o.System = s
	}
	if o.Models == nil {
		o.Models = NewHTTPModels(HTTPModelOptions{Models: o.Config.Models, Client: o.HTTPClient, Timeout: o.Config.HTTPTimeout, Clock: o.Clock})
	}
	if o.Systemctl == nil {
		o.Systemctl = ExecSystemctl
	}
	if o.Units == nil {
		o.Units = NewSystemdUnits(o.Config.SystemdUnits, o.Systemctl)
	}
	if o.BackupReason == "" {
		o.BackupReason = "no repository configured"
	}
	if o.CollectTimeout == 0 {
		// Within the interval, but never so short that the first system
		// sample's rate window or a model's two probes cannot fit.
		o.CollectTimeout = max(min(o.Config.Interval, 30*time.Second), 10*time.Second, 2*o.Config.HTTPTimeout+time.Second)
	}
	if o.TrimEvery == 0 {
		o.TrimEvery = time.Hour
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Hostname == "" {
		o.Hostname, _ = os.Hostname()
	}
	if o.RecentEvents == 0 {
		o.RecentEvents = 200
	}
	if o.AlertingClient == nil {
		o.AlertingClient = &http.Client{}
	}
	return o, nil
}

// Monitor collects samples, evaluates alert rules on them, keeps history
// and renders the status files. Its methods are safe for concurrent use;
// collection cycles run one at a time.
type Monitor struct {
	o       Options
	cfg     Config
	ownGPUs bool
	backup  *backupCollector
	hist    *history

	collectMu sync.Mutex // one cycle at a time; guards engine, lastTrim, notifier
	engine    *engine
	lastTrim  time.Time
	notifier  *notifier // while Run delivers alerts

	// delivery is the notifier too, for /metrics, which must not wait
	// for a cycle to end.
	delivery atomic.Pointer[notifier]

	busyMu sync.Mutex
	busy   map[string]bool // collectors still running past their timeout

	registry *prometheus.Registry // /metrics and status/metrics

	mu     sync.RWMutex // guards the published state below
	latest *Sample
	alerts []Alert
	recent []Event // newest last, at most o.RecentEvents
}

// Report is one cycle's outcome: the sample, the alerts active after it
// and the transitions it caused.
type Report struct {
	// Health is the worst severity among firing alerts.
	Health string `json:"health"`
	// Alerts are the pending and firing alerts, most severe first.
	Alerts []Alert `json:"alerts"`
	// Events are the alert transitions this cycle caused.
	Events []Event `json:"events"`
	*Sample
}

// New builds a Monitor. It starts nothing: call Run for the loop or
// CollectOnce for one cycle, and Close when done.
func New(o Options) (*Monitor, error) {
	o.Config = o.Config.WithDefaults()
	if err := o.Config.Validate(); err != nil {
		return nil, err
	}
	ownGPUs := o.GPUs == nil
	var err error
	if o, err = o.withDefaults(); err != nil {
		return nil, err
	}
	if ownGPUs {
		o.GPUs = NewNVMLSource(NVMLOptions{Clock: o.Clock})
	}
	m := &Monitor{
		o: o, cfg: o.Config, ownGPUs: ownGPUs,
		backup: &backupCollector{src: o.Backup, reason: o.BackupReason, statfs: newStatfser(2 * time.Second),
			clock: o.Clock, maxAge: o.Config.BackupMaxAge, corruptWindow: o.Config.BackupCorruptWindow, testRestoreMaxAge: o.Config.TestRestoreMaxAge},
		engine: newEngine(buildRules(o.Config)),
		busy:   map[string]bool{},
	}
	m.registry = newRegistry(m.snapshot, m.delivery.Load)
	if o.KV != nil {
		m.hist = newHistory(o.KV, o.HistoryReadOnly)
		now := o.Clock()
		var past []Event
		err := m.hist.events(now.Add(-o.Config.AlertRetention), now.Add(time.Nanosecond), false, func(ev Event) error {
			past = append(past, ev)
			return nil
		})
		if err != nil {
			return nil, err
		}
		latest, ok, err := m.hist.latestSample()
		if err != nil {
			return nil, err
		}
		watched := ok && now.Sub(latest) <= 2*o.Config.Interval
		m.engine.restore(past, watched)
		m.alerts = m.engine.alerts()
		m.recent = lastN(past, o.RecentEvents)
	}
	return m, nil
}

func lastN(evs []Event, n int) []Event {
	if len(evs) > n {
		evs = evs[len(evs)-n:]
	}
	return append([]Event(nil), evs...)
}

// Config returns the effective configuration (defaults applied).
func (m *Monitor) Config() Config { return m.cfg }

// Close releases the GPU driver if the monitor opened it. It does not
// close Options.KV.
func (m *Monitor) Close() error {
	if m.ownGPUs {
		return m.o.GPUs.Close()
	}
	return nil
}

// Run collects every Config.Interval until ctx is done, starting at once.
// A failing cycle is logged and the loop goes on; Run returns nil when ctx
// is cancelled.
func (m *Monitor) Run(ctx context.Context) error {
	if m.cfg.Alerting.Enabled() {
		defer m.startAlerting(ctx)()
	}
	t := time.NewTicker(m.cfg.Interval)
	defer t.Stop()
	for {
		if _, err := m.CollectOnce(ctx); err != nil && ctx.Err() == nil {
			m.o.Logger.Warn("monitor: cycle failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// startAlerting starts delivering alerts to the configured targets (see
// notify.go) after every cycle, until ctx ends; the returned function
// waits for the delivery goroutines to stop.
func (m *Monitor) startAlerting(ctx context.Context) (wait func()) {
	n := newNotifier(m.cfg.Alerting, m.o.AlertingClient, m.o.Logger, m.o.AlertingRetry)
	n.start(ctx)
	m.collectMu.Lock()
	m.notifier = n
	m.collectMu.Unlock()
	m.delivery.Store(n)
	return func() {
		m.collectMu.Lock()
		m.notifier = nil
		m.collectMu.Unlock()
		m.delivery.Store(nil)
		n.wait()
	}
}

// collector is one source's part of a cycle. run returns a function that
// stores its result in the sample, called only if run finished in time.
type collector struct {
	name string
	run  func(ctx context.Context) (func(*Sample), error)
}

func (m *Monitor) collectors() []collector {
	return []collector{
		{CollectorSystem, func(ctx context.Context) (func(*Sample), error) {
			st, err := m.o.System.System(ctx)
			return func(s *Sample) { s.System = st }, err
		}},
		{CollectorGPU, func(ctx context.Context) (func(*Sample), error) {
			st, err := m.o.GPUs.GPUs(ctx)
			return func(s *Sample) { s.GPUs = st }, err
		}},
		{CollectorModels, func(ctx context.Context) (func(*Sample), error) {
			st, err := m.o.Models.Models(ctx)
			return func(s *Sample) { s.Models = st }, err
		}},
		{CollectorSystemd, func(ctx context.Context) (func(*Sample), error) {
			st, err := m.o.Units.Units(ctx)
			return func(s *Sample) { s.Units = st }, err
		}},
		{CollectorBackup, func(ctx context.Context) (func(*Sample), error) {
			st, err := m.backup.collect(ctx)
			return func(s *Sample) { s.Backup = st }, err
		}},
	}
}

// CollectOnce runs one cycle: every collector at once (each failure
// isolated), then the rules, then history. It returns an error only when
// ctx ends; collector and history failures are in the Report.
func (m *Monitor) CollectOnce(ctx context.Context) (*Report, error) {
	m.collectMu.Lock()
	defer m.collectMu.Unlock()
	now := m.o.Clock()
	s := &Sample{Time: now.UTC(), Host: m.o.Hostname, Models: []ModelStatus{}, Units: []UnitStatus{}}

	cs := m.collectors()
	results := make([]CollectorResult, len(cs))
	applies := make([]func(*Sample), len(cs))
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], applies[i] = m.runCollector(ctx, c)
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("monitor: collect: %w", err)
	}
	for i, apply := range applies {
		if apply != nil && results[i].OK {
			apply(s)
		}
		if !results[i].OK {
			m.o.Logger.Debug("monitor: collector failed", "collector", results[i].Name, "err", results[i].Error)
		}
	}
	s.Collectors = results

	events := m.engine.evaluate(now, s)
	alerts := m.engine.alerts()
	for _, ev := range events {
		m.logEvent(ctx, ev)
	}
	if err := m.hist.record(s, events); err != nil {
		m.o.Logger.Warn("monitor: history write failed", "err", err)
	}
	if now.Sub(m.lastTrim) >= m.o.TrimEvery {
		if err := m.hist.trim(now, m.cfg.MetricsRetention, m.cfg.AlertRetention); err != nil {
			m.o.Logger.Warn("monitor: history trim failed", "err", err)
		} else {
			m.lastTrim = now
		}
	}

	m.mu.Lock()
	m.latest, m.alerts = s, alerts
	m.recent = lastN(append(m.recent, events...), m.o.RecentEvents)
	m.mu.Unlock()
	if m.notifier != nil {
		m.notifier.observe(now, s, alerts, events)
	}
	return &Report{Health: HealthOf(alerts, false), Alerts: alerts, Events: events, Sample: s}, nil
}

// runCollector runs c with the collect timeout. A collector that panics
// fails alone; one that overruns (a driver call that ignores ctx) is
// abandoned and marked busy, so later cycles skip it instead of piling up
// goroutines behind it.
func (m *Monitor) runCollector(ctx context.Context, c collector) (CollectorResult, func(*Sample)) {
	res := CollectorResult{Name: c.name}
	m.busyMu.Lock()
	if m.busy[c.name] {
		m.busyMu.Unlock()
		res.Error = fmt.Sprintf("monitor: %s: previous run still blocked", c.name)
		return res, nil
	}
	m.busy[c.name] = true
	m.busyMu.Unlock()

	ctx, cancel := context.WithTimeout(ctx, m.o.CollectTimeout)
	defer cancel()
	type outcome struct {
		apply func(*Sample)
		err   error
	}
	done := make(chan outcome, 1)
	start := m.o.Clock()
	go func() {
		var o outcome
		defer func() {
			if r := recover(); r != nil {
				o = outcome{err: fmt.Errorf("monitor: %s collector panicked: %v", c.name, r)}
			}
			m.busyMu.Lock()
			delete(m.busy, c.name)
			m.busyMu.Unlock()
			done <- o
		}()
		o.apply, o.err = c.run(ctx)
	}()
	var o outcome
	select {
	case o = <-done:
	case <-ctx.Done():
		o.err = fmt.Errorf("monitor: %s: no result within %s", c.name, m.o.CollectTimeout)
	}
	res.Seconds = m.o.Clock().Sub(start).Seconds()
	if o.err != nil {
		res.Error = o.err.Error()
		return res, nil
	}
	res.OK = true
	return res, o.apply
}

func (m *Monitor) logEvent(ctx context.Context, ev Event) {
	level := slog.LevelInfo
	if ev.To == StateFiring {
		level = slog.LevelWarn
		if ev.Severity == SeverityCritical {
			level = slog.LevelError
		}
	}
	m.o.Logger.Log(ctx, level, "monitor: alert "+ev.To, "rule", ev.Rule, "subject", ev.Subject,
		"severity", ev.Severity, "from", ev.From, "message", ev.Message)
}

// snapshot returns the published sample and alerts.
func (m *Monitor) snapshot() (*Sample, []Alert) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.latest, m.alerts
}

// Latest returns the latest sample (nil before the first cycle). It must
// not be modified.
func (m *Monitor) Latest() *Sample {
	s, _ := m.snapshot()
	return s
}

// Alerts returns the active (pending and firing) alerts.
func (m *Monitor) Alerts() []Alert {
	_, a := m.snapshot()
	return append([]Alert(nil), a...)
}

// RecentEvents returns up to n alert transitions of the last `within`,
// newest first: from history when the monitor writes one, else from memory
// (which holds the events history had at New, then this process's own).
func (m *Monitor) RecentEvents(n int, within time.Duration) ([]Event, error) {
	now := m.o.Clock()
	if m.hist != nil && !m.hist.readOnly {
		return m.hist.recentEvents(now.Add(-within), now.Add(time.Nanosecond), n)
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []Event
	for i := len(m.recent) - 1; i >= 0 && len(out) < n; i-- {
		if ev := m.recent[i]; !ev.Time.Before(now.Add(-within)) {
			out = append(out, ev)
		}
	}
	return out, nil
}

// Samples calls fn for each stored sample taken in [from, to), oldest
// first. Without history it calls nothing.
func (m *Monitor) Samples(from, to time.Time, fn func(*Sample) error) error {
	if m.hist == nil {
		return nil
	}
	return m.hist.samples(from, to, fn)
}
