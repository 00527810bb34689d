package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	"citadelfs/monitor"
)

func init() {
	register(&command{
		name:      "status",
		summary:   "show system, GPUs, model services, alerts and backups",
		usage:     "[--watch] [--interval D]",
		delegable: true,
		staleOK:   true,
		flags: func(fs *pflag.FlagSet) {
			fs.Bool("watch", false, "a full-screen dashboard on a terminal (q quits), else a plain frame every --interval")
			fs.Duration("interval", 2*time.Second, "how often --watch redraws")
		},
		run: runStatus,
	})
}

func runStatus(ctx context.Context, env *cmdEnv, args []string) error {
	if len(args) > 0 {
		return usagef("status takes no arguments")
	}
	watch, _ := env.flags.GetBool("watch")
	interval, _ := env.flags.GetDuration("interval")
	if interval < 500*time.Millisecond {
		return usagef("--interval %s is below 500ms", interval)
	}
	if wantsDashboard(env) {
		return runDashboard(ctx, env, interval)
	}
	// Inside the mount daemon (for a client) status reads the running
	// monitor; elsewhere, or while the daemon's monitor is not running,
	// it takes a sample of its own.
	var live *monitor.Monitor
	if env.daemon != nil {
		live = env.daemon.monitor
	}
	m, historyErr := live, ""
	if m == nil {
		cm, err := newCLIMonitor(ctx, env, cliMonitorMode{})
		if err != nil {
			return err
		}
		defer cm.close()
		m, historyErr = cm.m, cm.historyErr
	}
	// On a terminal --watch is the dashboard (above); here it prints
	// plain frames, one after another, for a pipe or a log.
	color := useColor(env.stdout)
	for {
		v, err := statusSample(ctx, m, live != nil)
		if err != nil {
			if ctx.Err() != nil {
				if watch {
					return nil
				}
				return errInterrupted
			}
			return err
		}
		if v.HistoryErr == "" {
			v.HistoryErr = historyErr
		}
		if env.global.json {
			if err := writeStatusJSON(env.stdout, v); err != nil {
				return err
			}
		} else {
			writeStatusText(env.stdout, v, color)
		}
		if !watch {
			if v.Health == monitor.HealthCritical {
				return withExit(exitCritical, errSilent)
			}
			return nil
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// statusSample reads the daemon's latest state, or takes a sample. A fresh
// sample cannot wait out a rule's `for`, so its pending conditions count
// towards health; the daemon's state is judged on firing alerts.
func statusSample(ctx context.Context, m *monitor.Monitor, live bool) (statusView, error) {
	var v statusView
	if live {
		v.Sample, v.Alerts = m.Latest(), m.Alerts()
		v.Health = monitor.HealthOf(v.Alerts, false)
		if v.Sample == nil {
			v.Health = monitor.HealthUnknown
		}
	} else {
		r, err := m.CollectOnce(ctx)
		if err != nil {
			return v, err
		}
		v.Sample, v.Alerts, v.Health = r.Sample, r.Alerts, monitor.HealthOf(r.Alerts, true)
	}
	recent, err := m.RecentEvents(10, 24*time.Hour)
	if err != nil {
		v.HistoryErr = err.Error()
	}
	v.Recent = recent
	return v, nil
}

func isTerminalWriter(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && isTerminal(f)
}

// useColor says whether w gets ANSI colours: a terminal, and NO_COLOR unset.
func useColor(w io.Writer) bool { return isTerminalWriter(w) && os.Getenv("NO_COLOR") == "" }

// painter colours words by meaning when colours are on.
type painter bool

const (
	ansiRed    = "\x1b[31m"
	ansiYellow = "\x1b[33m"
	ansiGreen  = "\x1b[32m"
	ansiBold   = "\x1b[1m"
	ansiDim    = "\x1b[2m"
	// ansiDefault is the default foreground; as long as ansiRed.
	ansiDefault = "\x1b[39m"
)

func (p painter) c(code, s string) string {
	if !p {
		return s
	}
	return code + s + "\x1b[0m"
}

// word colours a state or severity word: bad red, doubtful yellow, good green.
func (p painter) word(s string) string {
	switch strings.ToLower(s) {
	case "critical", "failed", "down", "unhealthy", "timeout", "error", "firing":
		return p.c(ansiRed, s)
	case "warning", "pending", "partial", "unknown", "activating", "deactivating", "inactive":
		return p.c(ansiYellow, s)
	case "ok", "healthy", "active", "resolved":
		return p.c(ansiGreen, s)
	}
	// The default colour, so that every word of a column (headings too)
	// carries as many escape bytes as a coloured one: tabwriter aligns
	// bytes, not what the terminal shows.
	return p.c(ansiDefault, s)
}

// writeStatusText prints the seed dashboard's sections: system, GPUs,
// model services, (systemd units,) alerts, backups.
func writeStatusText(w io.Writer, v statusView, color bool) {
	header, sections := statusSections(v, color)
	io.WriteString(w, header)
	for _, sec := range sections {
		fmt.Fprintf(w, "\n%s\n%s", sec.heading, sec.body)
	}
}

// Section titles, as status prints them; the dashboard orders by them.
const (
	secSystem  = "SYSTEM"
	secGPUs    = "GPUS"
	secModels  = "MODEL SERVICES"
	secUnits   = "SYSTEMD UNITS"
	secAlerts  = "ALERTS"
	secBackups = "BACKUPS"
)

// statusSection is one titled part of status' text: heading is the title
// as printed (bold when coloured), body its lines, each ending in "\n".
type statusSection struct {
	title, heading, body string
}

// statusSections renders status' text once, as a header line and its
// sections in the order `status` prints them: the one renderer of both
// `status` and the `status --watch` dashboard, which orders the sections
// by urgency and fits them to the terminal (status_dashboard.go).
func statusSections(v statusView, color bool) (header string, sections []statusSection) {
	p := painter(color)
	var hb strings.Builder
	var w io.Writer = &hb
	var cur *strings.Builder
	flush := func() {
		if cur != nil {
			sections[len(sections)-1].body = cur.String()
		}
	}
	defer func() { flush(); header = hb.String() }()
	s := v.Sample
	if s == nil {
		fmt.Fprintf(w, "citadelfs status  health %s\nno sample collected yet\n", p.word(v.Health))
		return
	}
	fmt.Fprintf(w, "citadelfs status  %s  %s  health %s\n", s.Host, s.Time.Local().Format("2006-01-02 15:04:05 MST"), p.c(ansiBold, p.word(v.Health)))
	failed := map[string]string{}
	for _, c := range s.Collectors {
		if !c.OK {
			failed[c.Name] = c.Error
		}
	}
	// Each section writes to a buffer of its own (tw's writers follow w).
	section := func(title string) {
		flush()
		cur = &strings.Builder{}
		w = cur
		sections = append(sections, statusSection{title: title, heading: p.c(ansiBold, title)})
	}
	tw := func() *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0) }

	section(secSystem)
	if e, ok := failed[monitor.CollectorSystem]; ok {
		fmt.Fprintf(w, "  %s\n", p.c(ansiRed, "collector failed: "+e))
	}
	if st := s.System; st != nil {
		if c := st.CPU; c != nil {
			line := fmt.Sprintf("  cpu      %.1f%% of %d cores", c.TotalPercent, c.Cores)
			if l := st.Load; l != nil {
				line += fmt.Sprintf(", load %.2f %.2f %.2f", l.Load1, l.Load5, l.Load15)
			}
			fmt.Fprintln(w, line)
		}
		if mem := st.Memory; mem != nil {
			line := fmt.Sprintf("  memory   %.1f%% used, %s available of %s", mem.UsedPercent, monitor.FormatBytes(mem.Available), monitor.FormatBytes(mem.Total))
			if sw := st.Swap; sw != nil && sw.Total > 0 {
				line += fmt.Sprintf(", swap %.1f%% of %s", sw.UsedPercent, monitor.FormatBytes(sw.Total))
			}
			fmt.Fprintln(w, line)
		}
		t := tw()
		for _, pu := range st.Paths {
			switch {
			case pu.Absent:
				fmt.Fprintf(t, "  path\t%s\t%s\n", pu.Path, p.c(ansiDim, "absent"))
			case pu.Usage == nil:
				fmt.Fprintf(t, "  path\t%s\t%s\n", pu.Path, p.c(ansiRed, pu.Error))
			default:
				fmt.Fprintf(t, "  path\t%s\t%.1f%% used, %s free (on %s)\n", pu.Path, pu.Usage.UsedPercent, monitor.FormatBytes(pu.Usage.Avail), pu.Mountpoint)
			}
		}
		for _, mu := range st.Mounts {
			if mu.Usage == nil {
				fmt.Fprintf(t, "  mount\t%s\t%s\n", mu.Mountpoint, p.c(ansiRed, mu.Error))
				continue
			}
			fmt.Fprintf(t, "  mount\t%s\t%.1f%% used, %s free (%s)\n", mu.Mountpoint, mu.Usage.UsedPercent, monitor.FormatBytes(mu.Usage.Avail), mu.FSType)
		}
		for _, d := range st.Disks {
			if d.ReadBytesRate != nil && d.WriteBytesRate != nil {
				fmt.Fprintf(t, "  disk io\t%s\tread %s/s, write %s/s\n", d.Device, monitor.FormatBytes(uint64(*d.ReadBytesRate)), monitor.FormatBytes(uint64(*d.WriteBytesRate)))
			}
		}
		for _, n := range st.Network {
			if n.RxBytesRate != nil && n.TxBytesRate != nil {
				fmt.Fprintf(t, "  network\t%s\trx %s/s, tx %s/s\n", n.Interface, monitor.FormatBytes(uint64(*n.RxBytesRate)), monitor.FormatBytes(uint64(*n.TxBytesRate)))
			}
		}
		t.Flush()
		for _, e := range st.Errors {
			fmt.Fprintf(w, "  %s\n", p.c(ansiYellow, e))
		}
	}

	section(secGPUs)
	switch g := s.GPUs; {
	case g == nil:
		fmt.Fprintf(w, "  %s\n", p.c(ansiRed, "collector failed: "+failed[monitor.CollectorGPU]))
	case g.NoGPUs():
		msg := "no GPUs found"
		if g.Reason != "" {
			msg += " (" + g.Reason + ")"
		}
		fmt.Fprintf(w, "  %s\n", msg)
	default:
		t := tw()
		for _, d := range g.Devices {
			c := monitor.GPUCellsOf(d)
			fmt.Fprintf(t, "  %d\t%s\tutil %s\tmem %s\t%s\t%s\n", d.Index, d.Name, c.Util, c.Memory, c.Temp, c.Power)
		}
		t.Flush()
	}

	section(secModels)
	if e, ok := failed[monitor.CollectorModels]; ok {
		fmt.Fprintf(w, "  %s\n", p.c(ansiRed, "collector failed: "+e))
	} else if len(s.Models) == 0 {
		fmt.Fprintln(w, "  none configured")
	}
	t := tw()
	for _, m := range s.Models {
		detail := m.Error
		if m.State == monitor.ModelHealthy {
			detail = "/metrics " + map[bool]string{true: "yes", false: "no"}[m.Metrics != nil && *m.Metrics]
		}
		fmt.Fprintf(t, "  %s\t%d\t%s\t%s\t%s\n", m.Name, m.Port, p.word(m.State), monitor.FormatLatency(m), detail)
	}
	t.Flush()

	if len(s.Units) > 0 || failed[monitor.CollectorSystemd] != "" {
		section(secUnits)
		if e, ok := failed[monitor.CollectorSystemd]; ok {
			fmt.Fprintf(w, "  %s\n", p.c(ansiRed, "collector failed: "+e))
		}
		t := tw()
		for _, u := range s.Units {
			fmt.Fprintf(t, "  %s\t%s\t%s\n", u.Name, p.word(u.State), u.Reason)
		}
		t.Flush()
	}

	section(secAlerts)
	if len(v.Alerts) == 0 {
		fmt.Fprintf(w, "  %s\n", p.c(ansiGreen, "none"))
	}
	for _, a := range firingFirst(v.Alerts) {
		fmt.Fprintf(w, "  %s %s %s %s  [%s since %s]\n", p.word(strings.ToUpper(a.Severity)), a.Rule, a.Subject, a.Message,
			p.word(a.State), a.ActiveSince.UTC().Format(time.RFC3339))
	}
	if len(v.Recent) > 0 {
		fmt.Fprintln(w, "  recent (24h):")
		for _, e := range v.Recent {
			fmt.Fprintf(w, "    %s %s %s %s: %s\n", e.Time.UTC().Format(time.RFC3339), p.word(e.To), e.Rule, e.Subject, e.Message)
		}
	} else if v.HistoryErr != "" {
		fmt.Fprintf(w, "  %s\n", p.c(ansiDim, "no alert history: "+v.HistoryErr))
	}

	section(secBackups)
	// The same lines as status/backup in the mount.
	monitor.WriteBackup(w, s.Backup, "  ", failed[monitor.CollectorBackup], p.word)
	return
}

// firingFirst orders alerts for reading: firing before pending, critical
// before warning, otherwise as the monitor listed them.
func firingFirst(alerts []monitor.Alert) []monitor.Alert {
	out := append([]monitor.Alert(nil), alerts...)
	rank := func(a monitor.Alert) int {
		r := 0
		if a.State != monitor.StateFiring {
			r += 2
		}
		if a.Severity != monitor.SeverityCritical {
			r++
		}
		return r
	}
	sort.SliceStable(out, func(i, j int) bool { return rank(out[i]) < rank(out[j]) })
	return out
}
