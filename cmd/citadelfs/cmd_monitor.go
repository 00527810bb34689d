package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"

	"github.com/spf13/pflag"

	"citadelfs/index"
	"citadelfs/monitor"
)

func init() {
	register(&command{
		name:    "monitor",
		summary: "sample system, GPUs, model services, units and backups and evaluate alert rules",
		usage:   "[--once] [--metrics-listen ADDR]",
		flags: func(fs *pflag.FlagSet) {
			fs.Bool("once", false, "take one sample, report every violated condition and exit (5 if one is critical)")
			fs.String("metrics-listen", "", "while running, serve Prometheus /metrics on ADDR (e.g. 127.0.0.1:9473)")
		},
		run: runMonitor,
	})
}

func runMonitor(ctx context.Context, env *cmdEnv, args []string) error {
	if len(args) > 0 {
		return usagef("monitor takes no arguments")
	}
	once, _ := env.flags.GetBool("once")
	listen, _ := env.flags.GetString("metrics-listen")
	if once && listen != "" {
		return usagef("--metrics-listen serves the running monitor; it has no use with --once")
	}
	if err := checkListen(listen); err != nil {
		return err
	}
	cm, err := newCLIMonitor(ctx, env, cliMonitorMode{writeHistory: true, logTransitions: !once})
	if err != nil {
		return err
	}
	defer cm.close()
	for _, w := range cm.warnings {
		fmt.Fprintf(env.stderr, "citadelfs monitor: %s\n", w)
	}

	if once {
		r, err := cm.m.CollectOnce(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return errInterrupted
			}
			return err
		}
		// One sample cannot wait out a rule's `for`: a pending condition
		// counts, so a timer running --once sees every problem at once.
		v := statusView{Sample: r.Sample, Alerts: r.Alerts, Health: monitor.HealthOf(r.Alerts, true)}
		if env.global.json {
			if err := writeStatusJSON(env.stdout, v); err != nil {
				return err
			}
		} else {
			writeStatusText(env.stdout, v, useColor(env.stdout))
		}
		if v.Health == monitor.HealthCritical {
			return withExit(exitCritical, errSilent)
		}
		return nil
	}

	if listen != "" {
		addr, stop, err := serveMetrics("monitor", listen, cm.m.Handler())
		if err != nil {
			return err
		}
		defer stop()
		fmt.Fprintf(env.stderr, "citadelfs monitor: serving http://%s/metrics\n", addr)
	}
	fmt.Fprintf(env.stderr, "citadelfs monitor: collecting every %s\n", cm.m.Config().Interval)
	return cm.m.Run(ctx)
}

// cliMonitorMode says how a command uses the monitor.
type cliMonitorMode struct {
	// writeHistory opens the history read-write (monitor); otherwise it is
	// opened read-only if it exists (status).
	writeHistory bool
	// logTransitions logs alert transitions to stderr (the foreground loop).
	logTransitions bool
	// kv, when set, holds the history instead of the monitor's own
	// directory: the mount daemon passes the repository's index (DESIGN:
	// history lives in the repository's Pebble). It is not closed here.
	kv *index.KV
}

// cliMonitor is a Monitor built from the configuration file for a command
// run outside the mount daemon, with what it opened.
type cliMonitor struct {
	m        *monitor.Monitor
	kv       *index.KV
	release  func()
	warnings []string
	// historyErr says why there is no alert history, if there is none.
	historyErr string
}

func (c *cliMonitor) close() {
	c.m.Close()
	if c.kv != nil {
		c.kv.Close()
	}
	if c.release != nil {
		c.release()
	}
}

// newCLIMonitor builds the monitor a command runs: the config file's
// monitor section, the repository's backup state when there is one, and
// history in the monitor's own Pebble directory for that repository (see
// historyDirFor; the repository's index belongs to the mount daemon while
// it runs). History is best-effort: a
// monitor that cannot keep it still monitors.
func newCLIMonitor(ctx context.Context, env *cmdEnv, mode cliMonitorMode) (*cliMonitor, error) {
	cfg, err := env.config()
	if err != nil {
		return nil, err
	}
	repo, repoErr := env.repoPath()
	if repoErr != nil {
		repo = ""
	}
	mc, err := monitorConfigFor(env, cfg, repo)
	if err != nil {
		return nil, err
	}

	c := &cliMonitor{}
	opts := monitor.Options{Config: mc, Logger: slog.New(slog.DiscardHandler)}
	if mode.logTransitions {
		opts.Logger = env.logger()
	}
	switch {
	case repoErr != nil:
		opts.BackupReason = "no repository configured"
	default:
		src, release, err := backupSourceFor(ctx, env)
		if err != nil {
			// A configured repository that cannot be read is a collector
			// failure (collector_error), not "no repository".
			src = failingBackup{err}
		}
		opts.Backup, c.release = src, release
	}

	var kv *index.KV
	if mode.kv != nil {
		opts.KV = mode.kv
	} else {
		var dir string
		if dir, err = historyDirFor(mc.HistoryDir, repo, repoErr); err == nil {
			kv, err = monitor.OpenHistoryKV(dir, !mode.writeHistory)
		}
	}
	switch {
	case mode.kv != nil:
	case err == nil:
		c.kv, opts.KV, opts.HistoryReadOnly = kv, kv, !mode.writeHistory
	case mode.writeHistory:
		c.warnings = append(c.warnings, fmt.Sprintf("no history kept: %v (set monitor.history_dir or $%s)", err, stateDirEnv))
		c.historyErr = err.Error()
	default:
		c.historyErr = err.Error()
	}
	m, err := monitor.New(opts)
	if err != nil {
		if c.kv != nil {
			c.kv.Close()
		}
		if c.release != nil {
			c.release()
		}
		return nil, err
	}
	c.m = m
	return c, nil
}

// stateDirEnv names the host-wide state directory (default
// defaultStateDir); the monitor keeps its history in its monitor/ unless
// monitor.history_dir says otherwise. Tests point it into their temp dir.
const (
	stateDirEnv     = "CITADELFS_STATE_DIR"
	defaultStateDir = "/var/lib/citadelfs"
)

// hostHistoryKey is the history of a monitor with no repository
// configured: only host alerts (CPU, GPUs, models, units) go there.
const hostHistoryKey = "host"

var repoIDRe = regexp.MustCompile(`^[0-9a-f]{8,64}$`)

// historyDirFor is where a monitor outside the mount daemon keeps its
// history: base/<repository id>, so two repositories on one host never
// see each other's alerts, and base/host without a repository. It lives
// outside the repository so that `monitor --once` never waits for the
// repository lock a running snapshot holds; citadel.json is read without
// the lock. A configured repository whose id cannot be read gets no
// history (the error says why) rather than a share of another's.
func historyDirFor(base, repo string, repoErr error) (string, error) {
	if repoErr != nil {
		return filepath.Join(base, hostHistoryKey), nil
	}
	rc, err := index.ReadConfig(repo)
	if err != nil {
		return "", fmt.Errorf("monitor: history: repository id unknown: %w", err)
	}
	if !repoIDRe.MatchString(rc.ID) {
		return "", fmt.Errorf("monitor: history: repository %s has id %q, not a hex id", repo, rc.ID)
	}
	return filepath.Join(base, rc.ID), nil
}

// monitorConfigFor is the effective monitor configuration (defaults
// applied, validated; a mistake is a usage error). When monitor.paths is
// not set it watches, besides the seed's paths, the configured sources and
// the repository (repo, if not ""). The mount daemon builds its monitor
// from this too.
func monitorConfigFor(env *cmdEnv, cfg *config, repo string) (monitor.Config, error) {
	mc := cfg.Monitor
	mc.Alerting = cfg.Alerting
	if mc.Paths == nil {
		mc.Paths = monitor.DefaultPaths()
		for _, l := range cfg.sourceLabels() {
			for _, d := range cfg.Sources[l].watchDirs() {
				mc.Paths = appendWatchPath(mc.Paths, d)
			}
		}
		mc.Paths = appendWatchPath(mc.Paths, repo)
	}
	if mc.HistoryDir == "" {
		sd := os.Getenv(stateDirEnv)
		if sd == "" {
			sd = defaultStateDir
		} else if !filepath.IsAbs(sd) {
			return mc, usagef("$%s=%q is not an absolute path", stateDirEnv, sd)
		}
		mc.HistoryDir = filepath.Join(sd, "monitor")
	}
	mc = mc.WithDefaults()
	if err := mc.Validate(); err != nil {
		return mc, usagef("config %s: %v", env.global.configPath, err)
	}
	return mc, nil
}

func appendWatchPath(ps []string, p string) []string {
	if p == "" || !filepath.IsAbs(p) {
		return ps
	}
	p = filepath.Clean(p)
	for _, q := range ps {
		if q == p {
			return ps
		}
	}
	return append(ps, p)
}

// failingBackup reports why the repository could not be opened, every cycle.
type failingBackup struct{ err error }

func (f failingBackup) BackupState(context.Context) (*monitor.BackupState, error) { return nil, f.err }

// statusView is what `status` and `monitor --once` show.
type statusView struct {
	*monitor.Sample
	Alerts []monitor.Alert
	// Health is the judgement shown (and used for the exit code).
	Health string
	// Recent are alert transitions from history, newest first.
	Recent     []monitor.Event
	HistoryErr string
}

// statusJSON is the --json form: the sample's fields at the top level,
// with health, alerts and (for status) recent events.
type statusJSON struct {
	Health string          `json:"health"`
	Alerts []monitor.Alert `json:"alerts"`
	Recent []monitor.Event `json:"recent_events,omitempty"`
	*monitor.Sample
}

func writeStatusJSON(w io.Writer, v statusView) error {
	doc := statusJSON{Health: v.Health, Alerts: v.Alerts, Recent: v.Recent, Sample: v.Sample}
	if doc.Alerts == nil {
		doc.Alerts = []monitor.Alert{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("monitor: encode: %w", err)
	}
	return nil
}
