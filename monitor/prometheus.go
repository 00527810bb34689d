package monitor

import (
	"bytes"
	"fmt"
	"net/http"
	"runtime/debug"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"
)

// The Prometheus exposition goes through client_golang's registry, not
// hand-written text. The sample's series still come from one pass over the
// latest Sample (renderMetrics, a custom collector that builds const
// metrics), but the registry adds what a hand-written writer could not
// give for free: the process and Go collectors, the exposition formats
// promhttp negotiates (text, OpenMetrics, gzip), and Gather's consistency
// checks (one help and one label set per family, no duplicate series),
// which the tests run with a pedantic registry. The alternative, keeping
// the hand-written text and appending promhttp's collectors' text to it,
// would have meant two writers and no checks across them.

// promWriter collects one sample's series as const metrics. Families are
// described on first use (name, help, label names); a later sample of the
// same family reuses that description, so the help text is given once.
type promWriter struct {
	descs   map[string]*promDesc
	metrics []prometheus.Metric
	// err is the first inconsistent use of a family (a bug), reported by
	// Collect as an invalid metric so that Gather names it.
	err error
}

type promDesc struct {
	desc   *prometheus.Desc
	labels []string
}

func newPromWriter() *promWriter { return &promWriter{descs: map[string]*promDesc{}} }

// gauge and counter add one sample. labels alternate name, value.
func (w *promWriter) gauge(name, help string, v float64, labels ...string) {
	w.add(name, help, prometheus.GaugeValue, v, labels)
}

func (w *promWriter) counter(name, help string, v float64, labels ...string) {
	w.add(name, help, prometheus.CounterValue, v, labels)
}

func (w *promWriter) add(name, help string, t prometheus.ValueType, v float64, labels []string) {
	names := make([]string, 0, len(labels)/2)
	values := make([]string, 0, len(labels)/2)
	for i := 0; i+1 < len(labels); i += 2 {
		names = append(names, labels[i])
		values = append(values, labels[i+1])
	}
	d := w.descs[name]
	if d == nil {
		d = &promDesc{desc: prometheus.NewDesc(name, help, names, nil), labels: names}
		w.descs[name] = d
	} else if !slices.Equal(d.labels, names) {
		if w.err == nil {
			w.err = fmt.Errorf("monitor: metric %s used with labels %v and %v", name, d.labels, names)
		}
		return
	}
	m, err := prometheus.NewConstMetric(d.desc, t, v, values...)
	if err != nil {
		if w.err == nil {
			w.err = fmt.Errorf("monitor: metric %s: %w", name, err)
		}
		return
	}
	w.metrics = append(w.metrics, m)
}

// sampleCollector exposes the latest published sample and alerts. It is
// unchecked (Describe sends nothing): which series exist depends on the
// host and changes from sample to sample.
type sampleCollector struct {
	snapshot func() (*Sample, []Alert)
	// delivery is the running alert notifier, if any (nil func: none).
	delivery func() *notifier
}

func (sampleCollector) Describe(chan<- *prometheus.Desc) {}

func (c sampleCollector) Collect(ch chan<- prometheus.Metric) {
	s, alerts := c.snapshot()
	w := renderMetrics(s, alerts)
	if c.delivery != nil {
		if n := c.delivery(); n != nil {
			for _, t := range n.targets {
				t.metrics(w)
			}
		}
	}
	for _, m := range w.metrics {
		ch <- m
	}
	if w.err != nil {
		ch <- prometheus.NewInvalidMetric(prometheus.NewDesc("citadelfs_invalid", "", nil, nil), w.err)
	}
}

// BuildInfo is what citadelfs_build_info reports, from the binary's
// embedded build information: the main module's version ("(devel)" for a
// build from a source tree), the VCS revision when the build recorded one
// ("unknown" otherwise, e.g. with -buildvcs=false), and the Go version.
func BuildInfo() (version, revision, goVersion string) {
	version, revision, goVersion = "unknown", "unknown", "unknown"
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return
	}
	if bi.Main.Version != "" {
		version = bi.Main.Version
	}
	if bi.GoVersion != "" {
		goVersion = bi.GoVersion
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && s.Value != "" {
			revision = s.Value
		}
	}
	return
}

// newRegistry is the monitor's registry: its sample, the build info, and
// the process and Go runtime collectors (process_*, go_*). Those two are
// the ecosystem's standard names; they describe the citadelfs process
// itself, not the host, so they cannot collide with node_exporter's.
func newRegistry(snapshot func() (*Sample, []Alert), delivery func() *notifier) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	version, revision, goVersion := BuildInfo()
	reg.MustRegister(
		sampleCollector{snapshot, delivery},
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "citadelfs_build_info",
			Help:        "The citadelfs binary's version, VCS revision and Go version (always 1).",
			ConstLabels: prometheus.Labels{"version": version, "revision": revision, "goversion": goVersion},
		}, func() float64 { return 1 }),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewGoCollector(),
	)
	return reg
}

// gatherText renders g in the Prometheus text format (0.0.4). A gather
// error (a collector's inconsistent series) leaves out what failed; the
// rest is still rendered, as promhttp's ContinueOnError does for scrapes.
func gatherText(g prometheus.Gatherer) ([]byte, error) {
	fams, gerr := g.Gather()
	var b bytes.Buffer
	enc := expfmt.NewEncoder(&b, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, f := range fams {
		if err := enc.Encode(f); err != nil {
			return nil, fmt.Errorf("monitor: metrics: %w", err)
		}
	}
	if gerr != nil && len(fams) == 0 {
		return nil, fmt.Errorf("monitor: metrics: %w", gerr)
	}
	return b.Bytes(), nil
}

// Handler serves GET /metrics for --metrics-listen, through promhttp: the
// format the scraper asks for (text or OpenMetrics), gzip when accepted,
// and a partial answer rather than none when a series is inconsistent.
func (m *Monitor) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError,
		ErrorLog:      slogPrinter{m},
	}))
	return mux
}

// slogPrinter is promhttp's error log on the monitor's logger.
type slogPrinter struct{ m *Monitor }

func (p slogPrinter) Println(v ...any) { p.m.o.Logger.Warn("monitor: /metrics: " + fmt.Sprint(v...)) }
