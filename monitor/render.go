package monitor

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"citadelfs/index"
)

// Status file names under status/.
const (
	FileAlerts      = "alerts"
	FileAlertsJSON  = "alerts.json"
	FileMetrics     = "metrics"
	FileMetricsJSON = "metrics.json"
	FileHealth      = "health"
	FileGPUs        = "gpus"
	FileModels      = "models"
	FileBackup      = "backup"
)

var statusFiles = []string{FileAlerts, FileAlertsJSON, FileMetrics, FileMetricsJSON, FileHealth, FileGPUs, FileModels, FileBackup}

// StatusFiles lists the status files the monitor renders. With Render it
// makes Monitor an fs.StatusSource (by shape; monitor does not import fs).
func (m *Monitor) StatusFiles() []string { return append([]string(nil), statusFiles...) }

// Render produces one whole status document from the latest sample and
// alert state. It does no collection and no I/O, so it is fast enough for
// every open() of a status file, except backup: that one asks the
// BackupSource afresh (it reads the repository's records, as status/repo
// does), so a snapshot just committed shows at once. An unknown name
// wraps fs.ErrNotExist.
func (m *Monitor) Render(ctx context.Context, name string) ([]byte, error) {
	if name == FileBackup {
		st, err := m.backup.collect(ctx)
		if err != nil {
			return nil, fmt.Errorf("monitor: backup state: %w", err)
		}
		var b bytes.Buffer
		WriteBackup(&b, st, "", "", nil)
		return b.Bytes(), nil
	}
	s, alerts := m.snapshot()
	switch name {
	case FileAlerts:
		return renderAlerts(alerts), nil
	case FileAlertsJSON:
		m.mu.RLock()
		recent := m.recent // never modified in place: replaced whole
		m.mu.RUnlock()
		return renderAlertsJSON(s, alerts, recent)
	case FileMetrics:
		return gatherText(m.registry)
	case FileMetricsJSON:
		return marshalDoc(s)
	case FileHealth:
		return renderHealth(s, alerts), nil
	case FileGPUs:
		return renderGPUs(s), nil
	case FileModels:
		return renderModels(s), nil
	}
	return nil, fmt.Errorf("monitor: no status file %q: %w", name, fs.ErrNotExist)
}

func marshalDoc(v any) ([]byte, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("monitor: render: %w", err)
	}
	return append(b, '\n'), nil
}

// FormatAlert renders one alert as a status/alerts line:
//
//	time SEVERITY name subject message since <time>
//
// where the first time is when it fired (when it became pending, for a
// pending alert) and since is when its condition started.
func FormatAlert(a Alert) string {
	at := a.FiredAt
	if at.IsZero() {
		at = a.ActiveSince
	}
	return fmt.Sprintf("%s %-8s %-20s %s %s since %s",
		stamp(at), strings.ToUpper(a.Severity), a.Rule, a.Subject, a.Message, stamp(a.ActiveSince))
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// renderAlerts lists the firing alerts, one a line, most severe first. No
// firing alert: an empty file.
func renderAlerts(alerts []Alert) []byte {
	var b bytes.Buffer
	for _, a := range alerts {
		if a.State == StateFiring {
			b.WriteString(FormatAlert(a))
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}

// alertsJSONWindow is how far back status/alerts.json lists resolved
// alerts, as status shows the last day's transitions.
const alertsJSONWindow = 24 * time.Hour

// renderAlertsJSON writes the seed's shape: one JSON array of alerts,
// oldest first, so that its operations guide's `jq '.[-5:]'` shows the
// five latest. It holds the pending and firing alerts and those resolved
// in the last alertsJSONWindow (from the recent events, oldest first),
// each ordered by its last change: resolved_at, fired_at, or active_since
// for a pending one. The health word is the health file's.
func renderAlertsJSON(s *Sample, active []Alert, recent []Event) ([]byte, error) {
	list := []Alert{}
	fired := map[alertKey]time.Time{}
	for _, ev := range recent {
		k := alertKey{ev.Rule, ev.Subject}
		if ev.To == StateFiring {
			fired[k] = ev.Time
		}
		if ev.To != StateResolved || s != nil && s.Time.Sub(ev.Time) > alertsJSONWindow {
			continue
		}
		a := Alert{Rule: ev.Rule, Severity: ev.Severity, Subject: ev.Subject, State: StateResolved, Message: ev.Message,
			ActiveSince: ev.ActiveSince, FiredAt: fired[k], ResolvedAt: ev.Time}
		if ev.Value != nil {
			v := *ev.Value
			a.Value = &v
		}
		list = append(list, a)
	}
	list = append(list, active...)
	changed := func(a Alert) time.Time {
		switch {
		case !a.ResolvedAt.IsZero():
			return a.ResolvedAt
		case !a.FiredAt.IsZero():
			return a.FiredAt
		}
		return a.ActiveSince
	}
	sort.SliceStable(list, func(i, j int) bool { return changed(list[i]).Before(changed(list[j])) })
	return marshalDoc(list)
}

// renderHealth writes one word (OK, WARNING, CRITICAL, UNKNOWN) on the
// first line and one reason per firing alert after it.
func renderHealth(s *Sample, alerts []Alert) []byte {
	var b bytes.Buffer
	if s == nil {
		b.WriteString(HealthUnknown + "\nno sample collected yet\n")
		return b.Bytes()
	}
	b.WriteString(HealthOf(alerts, false))
	b.WriteByte('\n')
	for _, a := range alerts {
		if a.State == StateFiring {
			fmt.Fprintf(&b, "%s %s %s: %s\n", a.Severity, a.Rule, a.Subject, a.Message)
		}
	}
	return b.Bytes()
}

func renderGPUs(s *Sample) []byte {
	var b bytes.Buffer
	switch {
	case s == nil:
		b.WriteString("no sample collected yet\n")
		return b.Bytes()
	case s.GPUs == nil:
		b.WriteString("GPU state unknown: the collector failed (see metrics.json)\n")
		return b.Bytes()
	case s.GPUs.NoGPUs():
		b.WriteString("no GPUs found")
		if s.GPUs.Reason != "" {
			b.WriteString(" (" + s.GPUs.Reason + ")")
		}
		b.WriteByte('\n')
		return b.Bytes()
	}
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "GPU\tNAME\tUTIL\tMEMORY\tTEMP\tPOWER\tECC\tXID\tPROCS\tTHROTTLE")
	for _, g := range s.GPUs.Devices {
		c := GPUCellsOf(g)
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", g.Index, g.Name,
			c.Util, c.Memory, c.Temp, c.Power,
			optCount(g.ECCUncorrected), optCount(g.XIDErrors), len(g.Processes), orDash(strings.Join(g.Throttle, ",")))
	}
	tw.Flush()
	if s.GPUs.Driver != "" {
		fmt.Fprintf(&b, "driver %s\n", s.GPUs.Driver)
	}
	return b.Bytes()
}

func renderModels(s *Sample) []byte {
	var b bytes.Buffer
	if s == nil {
		b.WriteString("no sample collected yet\n")
		return b.Bytes()
	}
	if len(s.Models) == 0 {
		if s.collectorOK(CollectorModels) {
			b.WriteString("no model services configured\n")
		} else {
			b.WriteString("model state unknown: the collector failed (see metrics.json)\n")
		}
		return b.Bytes()
	}
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MODEL\tPORT\tSTATE\tHTTP\tLATENCY\tMETRICS\tERROR")
	for _, m := range s.Models {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\n", m.Name, m.Port, m.State, httpCode(m.HTTPStatus),
			FormatLatency(m), metricsWord(m.Metrics), orDash(m.Error))
	}
	tw.Flush()
	return b.Bytes()
}

// FormatLatency prints a probe's latency, or "-" where there was none.
func FormatLatency(m ModelStatus) string {
	if m.State == ModelDown || m.State == ModelError {
		return "-"
	}
	return time.Duration(m.LatencySeconds * float64(time.Second)).Round(100 * time.Microsecond).String()
}

func httpCode(c int) string {
	if c == 0 {
		return "-"
	}
	return fmt.Sprint(c)
}

func metricsWord(p *bool) string {
	switch {
	case p == nil:
		return "-"
	case *p:
		return "yes"
	}
	return "no"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func optUnit(p *float64, format string) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprintf(format, *p)
}

func optCount(p *uint64) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprint(*p)
}

// GPUCells is one GPU's numbers as text, the one formatting of them:
// status/gpus and `citadelfs status` both print these. A value the
// driver did not give is "-".
type GPUCells struct {
	Util   string // "87%"
	Memory string // "70.0GiB/80.0GiB (88%)"
	Temp   string // "85C", as nvidia-smi writes it
	Power  string // "310/400W", or "310W" without a limit
}

// GPUCellsOf formats g.
func GPUCellsOf(g GPU) GPUCells {
	c := GPUCells{Util: optUnit(g.UtilizationPercent, "%.0f%%"), Memory: "-", Temp: optUnit(g.TemperatureC, "%.0fC"), Power: "-"}
	if pct, ok := g.MemoryPercent(); ok {
		c.Memory = fmt.Sprintf("%s/%s (%.0f%%)", FormatBytes(*g.MemoryUsed), FormatBytes(*g.MemoryTotal), pct)
	}
	switch {
	case g.PowerWatts == nil:
	case g.PowerLimitWatts == nil:
		c.Power = fmt.Sprintf("%.0fW", *g.PowerWatts)
	default:
		c.Power = fmt.Sprintf("%.0f/%.0fW", *g.PowerWatts, *g.PowerLimitWatts)
	}
	return c
}

// WriteBackup renders the backup state, the one text form of it:
// status/backup is these lines, and `citadelfs status` prints them as its
// BACKUPS section with indent "  " and word colouring result words (nil:
// none). b nil means the collector failed, with collectorErr saying why.
func WriteBackup(w io.Writer, b *BackupStatus, indent, collectorErr string, word func(string) string) {
	if word == nil {
		word = func(s string) string { return s }
	}
	switch {
	case b == nil:
		fmt.Fprintf(w, "%sbackup state unknown: the collector failed: %s\n", indent, collectorErr)
		return
	case !b.Configured:
		fmt.Fprintf(w, "%s%s\n", indent, b.Reason)
		return
	}
	line := indent + "repository " + b.Repo
	if b.RepoBytes != nil {
		line += ", " + FormatBytes(*b.RepoBytes)
	}
	if b.FS != nil {
		line += fmt.Sprintf(", file system %.1f%% used (%s free)", b.FS.UsedPercent, FormatBytes(b.FS.Avail))
	} else if b.FSError != "" {
		line += ", " + b.FSError
	}
	fmt.Fprintln(w, line)
	if len(b.Sources) == 0 {
		fmt.Fprintf(w, "%sno sources configured or snapshotted\n", indent)
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	// RESULT through word, as the column's cells are, so that a coloured
	// column's escape bytes do not push the heading out of line.
	fmt.Fprintf(tw, "%sSOURCE\t%s\tLAST ATTEMPT\tSNAPSHOT\tLAST SUCCESS\tERROR\n", indent, word("RESULT"))
	for _, src := range b.Sources {
		result := src.LastResult
		if result == "" {
			result = "never"
		}
		when := "-"
		if !src.LastTime.IsZero() {
			when = src.LastTime.Local().Format("2006-01-02 15:04") + fmt.Sprintf(" (took %s)", time.Duration(src.LastDurationSeconds*float64(time.Second)).Round(time.Second))
		}
		snap := src.LastSnapshot
		if len(snap) > 8 {
			snap = snap[:8]
		}
		age := "never"
		if src.AgeSeconds != nil {
			age = time.Duration(*src.AgeSeconds*float64(time.Second)).Round(time.Minute).String() + " ago"
		}
		fmt.Fprintf(tw, "%s%s\t%s\t%s\t%s\t%s\t%s\n", indent, src.Label, word(result), when, orDash(snap), age, orDash(src.LastError))
	}
	tw.Flush()
	writeTestRestore(w, b.TestRestore, indent, word)
}

// writeTestRestore is the test restore's line of the backup state.
func writeTestRestore(w io.Writer, tr *TestRestoreStatus, indent string, word func(string) string) {
	if tr == nil {
		return
	}
	switch c := tr.Last; {
	case c == nil:
		fmt.Fprintf(w, "%stest restore: none yet (monthly expected)\n", indent)
	case c.Result == index.CheckOK:
		fmt.Fprintf(w, "%stest restore: %s %s, %d files (%s) verified\n", indent, word(c.Result), c.Time.Local().Format("2006-01-02 15:04"), c.Files, FormatBytes(uint64(c.Bytes)))
	default:
		fmt.Fprintf(w, "%stest restore: %s %s: %s\n", indent, word(c.Result), c.Time.Local().Format("2006-01-02 15:04"), c.FirstError)
	}
}

// FormatBytes prints n in binary units: 512B, 1.5KiB, 37.2GiB.
func FormatBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	div, exp := uint64(unit), 0
	for v := n / unit; v >= unit; v /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f%ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
