package monitor

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Config is the `monitor:` section of the configuration file. Every field's
// zero value means "the default" (listed on each field and in
// docs/monitor.md); WithDefaults fills them in. Maps and lists distinguish
// "not set" (nil: defaults) from "set to nothing" (`models: {}`: none).
type Config struct {
	// BackupStorageThreshold is the backup file system usage percent that
	// raises backup_storage (default 85, the seed's storage_threshold).
	BackupStorageThreshold float64 `yaml:"backup_storage_threshold"`

	// Interval between collection cycles in the daemon (default 60s).
	Interval time.Duration `yaml:"interval"`
	// HistoryDir is where a monitor with no repository index shared with
	// it keeps history: the CLI opens one Pebble directory per repository
	// below it, HistoryDir/<repository id> (default
	// /var/lib/citadelfs/monitor; the CLI's is $CITADELFS_STATE_DIR/monitor).
	HistoryDir string `yaml:"history_dir"`
	// MetricsRetention is how long metric samples are kept (default 30 days).
	MetricsRetention time.Duration `yaml:"metrics_retention"`
	// AlertRetention is how long alert events are kept (default 7 days).
	AlertRetention time.Duration `yaml:"alert_retention"`
	// HTTPTimeout bounds each model service request (default 5s).
	HTTPTimeout time.Duration `yaml:"http_timeout"`
	// Models maps a model service name to its port on 127.0.0.1, probed at
	// /health and /metrics (default: the seed's seven services, see
	// DefaultModels).
	Models map[string]int `yaml:"models"`
	// Paths are directories whose file system usage is watched (default
	// /opt/citadel, /mnt/citadel-models, /mnt/citadel-backup). A path that
	// does not exist is reported as absent, not alerted on.
	Paths []string `yaml:"paths"`
	// SystemdUnits are units whose state is watched with `systemctl
	// is-active` (default none).
	SystemdUnits []string `yaml:"systemd_units"`
	// BackupMaxAge is the age after which a source's last successful
	// snapshot is stale, for sources whose schedule does not say (default
	// 26h: a daily schedule plus slack).
	BackupMaxAge time.Duration `yaml:"backup_max_age"`
	// BackupCorruptWindow is how long backup_corrupt keeps firing after the
	// latest read of repository data that failed its hash check (default
	// 24h: long enough that a nightly look at the alerts sees it).
	BackupCorruptWindow time.Duration `yaml:"backup_corrupt_window"`
	// CheckMaxAge is the age of the repository's last check after which
	// check_stale fires: the weekly check timer plus a day (default 192h).
	CheckMaxAge time.Duration `yaml:"check_max_age"`
	// GPUXIDWindow is how long gpu_xid keeps firing after the latest
	// critical XID event (default 24h, as backup_corrupt_window).
	GPUXIDWindow time.Duration `yaml:"gpu_xid_window"`
	// TestRestoreMaxAge is the age of the last test restore at which
	// test_restore fires, when validation.test_restore_monthly asks for
	// one (default 840h, 35 days: a monthly timer plus slack).
	TestRestoreMaxAge time.Duration `yaml:"test_restore_max_age"`
	// Thresholds tunes each alert rule; see Rule.
	Thresholds Thresholds `yaml:"thresholds"`
	// Alerting is where the running monitor sends its alerts: the
	// configuration file's top-level `alerting:` section, which the CLI
	// copies here (it is about delivery, not sampling).
	Alerting AlertingConfig `yaml:"-"`
}

// Thresholds holds one Rule per alert rule. Fields left zero take the
// seed's defaults (DefaultThresholds).
type Thresholds struct {
	CPU            Rule `yaml:"cpu"`             // cpu_high: total CPU percent
	Memory         Rule `yaml:"memory"`          // memory_high: RAM used percent
	Storage        Rule `yaml:"storage"`         // storage_high: per path and mount, used percent
	BackupStorage  Rule `yaml:"backup_storage"`  // backup_storage: backup file system used percent
	GPUMemory      Rule `yaml:"gpu_memory"`      // gpu_memory_high: per GPU, memory used percent
	GPUTemperature Rule `yaml:"gpu_temperature"` // gpu_temperature_high: per GPU, °C
	ModelUnhealthy Rule `yaml:"model_unhealthy"` // model_unhealthy: per model, /health not 2xx
	UnitFailed     Rule `yaml:"unit_failed"`     // unit_failed: per unit, state "failed"
	BackupFailed   Rule `yaml:"backup_failed"`   // backup_failed: per source, last snapshot failed
	BackupStale    Rule `yaml:"backup_stale"`    // backup_stale: per source, last success too old
	BackupCorrupt  Rule `yaml:"backup_corrupt"`  // backup_corrupt: repository data failed its hash check on a read, within backup_corrupt_window, or the last check found errors
	TestRestore    Rule `yaml:"test_restore"`    // test_restore: the last test restore found damage or could not run, or (monthly expected) is older than test_restore_max_age
	CollectorError Rule `yaml:"collector_error"` // collector_error: per collector, it keeps failing
	// GPU health with dcgm-exporter's meaning (docs/monitor.md).
	GPUXID          Rule `yaml:"gpu_xid"`           // gpu_xid: per GPU, a critical XID event within gpu_xid_window
	GPUECC          Rule `yaml:"gpu_ecc"`           // gpu_ecc_dbe: per GPU, uncorrectable (double-bit) ECC errors since the driver loaded, above threshold (default 0)
	GPUPagesPending Rule `yaml:"gpu_pages_pending"` // gpu_pages_pending: per GPU, retired pages or remapped rows pending (or a remap failed)
	CheckStale      Rule `yaml:"check_stale"`       // check_stale: the repository's last check is older than check_max_age
	RetentionFailed Rule `yaml:"retention_failed"`  // retention_failed: per operation (forget, prune), its last run failed
}

// Rule tunes one alert rule.
//
// A threshold rule fires when its value goes above Threshold and, once
// pending or firing, stays so until the value drops to Clear or below
// (hysteresis), so a value hovering at the threshold does not flap. For
// rules about a state (model unhealthy, unit failed, backup failed) the
// threshold and clear values are not used.
type Rule struct {
	// Threshold is the fire threshold (rule-specific unit: percent or °C).
	Threshold float64 `yaml:"threshold"`
	// Clear is the value at or below which an active alert ends (default:
	// a few points below Threshold, per rule).
	Clear float64 `yaml:"clear"`
	// For is how long the condition must hold before the alert fires; until
	// then it is pending. `for: 0s` fires on the first bad sample.
	For *time.Duration `yaml:"for"`
	// ClearFor is how long the condition must stay cleared before a firing
	// alert resolves (default 0).
	ClearFor time.Duration `yaml:"clear_for"`
	// Severity is "warning" or "critical" (default per rule).
	Severity string `yaml:"severity"`
	// Disabled turns the rule off.
	Disabled bool `yaml:"disabled"`
}

// Severities.
const (
	SeverityWarning  = "warning"
	SeverityCritical = "critical"
)

// DefaultModels are the seed's model services and their ports.
func DefaultModels() map[string]int {
	return map[string]int{
		"mixtral":  11400,
		"hermes":   11401,
		"openchat": 11402,
		"phi3":     11403,
		"yi34b":    11404,
		"coder":    11405,
		"vision":   11500,
	}
}

// DefaultPaths are the seed's watched directories.
func DefaultPaths() []string {
	return []string{"/opt/citadel", "/mnt/citadel-models", "/mnt/citadel-backup"}
}

func dur(d time.Duration) *time.Duration { return &d }

// DefaultTestRestoreMaxAge is test_restore_max_age's default: 35 days.
const DefaultTestRestoreMaxAge = 35 * 24 * time.Hour

// DefaultThresholds are the seed's alert thresholds: CPU > 90% warning,
// memory > 85% warning, storage > 85% warning, GPU memory > 90% warning,
// GPU temperature > 80 °C critical, model unhealthy critical, unit failed
// critical, backup failed critical, backup stale warning, backup corrupt
// critical; beyond the seed, for its GPUs, XID and double-bit ECC critical,
// pages pending warning; check stale and retention failed warning. The pending
// durations keep a single busy minute from paging anyone; state rules about
// things that do not recover by themselves fire at once.
func DefaultThresholds() Thresholds {
	return Thresholds{
		CPU:            Rule{Threshold: 90, Clear: 85, For: dur(5 * time.Minute), Severity: SeverityWarning},
		Memory:         Rule{Threshold: 85, Clear: 80, For: dur(5 * time.Minute), Severity: SeverityWarning},
		Storage:        Rule{Threshold: 85, Clear: 82, For: dur(0), Severity: SeverityWarning},
		BackupStorage:  Rule{Threshold: 85, Clear: 82, For: dur(0), Severity: SeverityWarning},
		GPUMemory:      Rule{Threshold: 90, Clear: 85, For: dur(5 * time.Minute), Severity: SeverityWarning},
		GPUTemperature: Rule{Threshold: 80, Clear: 75, For: dur(time.Minute), Severity: SeverityCritical},
		ModelUnhealthy: Rule{For: dur(2 * time.Minute), Severity: SeverityCritical},
		UnitFailed:     Rule{For: dur(0), Severity: SeverityCritical},
		BackupFailed:   Rule{For: dur(0), Severity: SeverityCritical},
		BackupStale:    Rule{For: dur(0), Severity: SeverityWarning},
		BackupCorrupt:  Rule{For: dur(0), Severity: SeverityCritical},
		TestRestore:    Rule{For: dur(0), Severity: SeverityCritical},
		CollectorError: Rule{For: dur(10 * time.Minute), Severity: SeverityWarning},
		// A GPU's own report of a fault does not recover by itself.
		GPUXID:          Rule{For: dur(0), Severity: SeverityCritical},
		GPUECC:          Rule{For: dur(0), Severity: SeverityCritical},
		GPUPagesPending: Rule{For: dur(0), Severity: SeverityWarning},
		CheckStale:      Rule{For: dur(0), Severity: SeverityWarning},
		RetentionFailed: Rule{For: dur(0), Severity: SeverityWarning},
	}
}

// WithDefaults returns c with every unset field filled in.
func (c Config) WithDefaults() Config {
	if c.BackupStorageThreshold == 0 {
		c.BackupStorageThreshold = 85
	}
	if c.Interval == 0 {
		c.Interval = time.Minute
	}
	if c.HistoryDir == "" {
		c.HistoryDir = "/var/lib/citadelfs/monitor"
	}
	if c.MetricsRetention == 0 {
		c.MetricsRetention = 30 * 24 * time.Hour
	}
	if c.AlertRetention == 0 {
		c.AlertRetention = 7 * 24 * time.Hour
	}
	if c.HTTPTimeout == 0 {
		c.HTTPTimeout = 5 * time.Second
	}
	if c.Models == nil {
		c.Models = DefaultModels()
	}
	if c.Paths == nil {
		c.Paths = DefaultPaths()
	}
	if c.BackupMaxAge == 0 {
		c.BackupMaxAge = 26 * time.Hour
	}
	if c.BackupCorruptWindow == 0 {
		c.BackupCorruptWindow = 24 * time.Hour
	}
	if c.CheckMaxAge == 0 {
		c.CheckMaxAge = 8 * 24 * time.Hour
	}
	if c.GPUXIDWindow == 0 {
		c.GPUXIDWindow = 24 * time.Hour
	}
	c.Alerting = c.Alerting.WithDefaults()
	if c.TestRestoreMaxAge == 0 {
		c.TestRestoreMaxAge = DefaultTestRestoreMaxAge
	}
	d := DefaultThresholds()
	if c.Thresholds.BackupStorage.Threshold == 0 {
		// The seed's storage_threshold key sets it; the clear point keeps
		// the default's distance below it.
		c.Thresholds.BackupStorage.Threshold = c.BackupStorageThreshold
	}
	for _, p := range c.Thresholds.pairs(&d) {
		p.rule.fill(*p.def)
	}
	return c
}

// fill sets r's unset fields from def. A clear point left unset keeps the
// default's distance below a user-chosen threshold.
func (r *Rule) fill(def Rule) {
	if r.Threshold == 0 {
		r.Threshold = def.Threshold
	}
	if r.Clear == 0 {
		r.Clear = r.Threshold - (def.Threshold - def.Clear)
	}
	if r.For == nil {
		r.For = def.For
	}
	if r.Severity == "" {
		r.Severity = def.Severity
	}
}

type rulePair struct {
	key  string // the yaml key under thresholds:
	name string // the rule (alert) name
	rule *Rule
	def  *Rule
}

// pairs lists the rules in a fixed order next to their defaults.
func (t *Thresholds) pairs(d *Thresholds) []rulePair {
	return []rulePair{
		{"cpu", RuleCPUHigh, &t.CPU, &d.CPU},
		{"memory", RuleMemoryHigh, &t.Memory, &d.Memory},
		{"storage", RuleStorageHigh, &t.Storage, &d.Storage},
		{"backup_storage", RuleBackupStorage, &t.BackupStorage, &d.BackupStorage},
		{"gpu_memory", RuleGPUMemoryHigh, &t.GPUMemory, &d.GPUMemory},
		{"gpu_temperature", RuleGPUTemperatureHigh, &t.GPUTemperature, &d.GPUTemperature},
		{"model_unhealthy", RuleModelUnhealthy, &t.ModelUnhealthy, &d.ModelUnhealthy},
		{"unit_failed", RuleUnitFailed, &t.UnitFailed, &d.UnitFailed},
		{"backup_failed", RuleBackupFailed, &t.BackupFailed, &d.BackupFailed},
		{"backup_stale", RuleBackupStale, &t.BackupStale, &d.BackupStale},
		{"backup_corrupt", RuleBackupCorrupt, &t.BackupCorrupt, &d.BackupCorrupt},
		{"test_restore", RuleTestRestore, &t.TestRestore, &d.TestRestore},
		{"collector_error", RuleCollectorError, &t.CollectorError, &d.CollectorError},
		{"gpu_xid", RuleGPUXID, &t.GPUXID, &d.GPUXID},
		{"gpu_ecc", RuleGPUECCDBE, &t.GPUECC, &d.GPUECC},
		{"gpu_pages_pending", RuleGPUPagesPending, &t.GPUPagesPending, &d.GPUPagesPending},
		{"check_stale", RuleCheckStale, &t.CheckStale, &d.CheckStale},
		{"retention_failed", RuleRetentionFailed, &t.RetentionFailed, &d.RetentionFailed},
	}
}

// Validate reports the first mistake in c, which must already have had
// WithDefaults applied.
func (c Config) Validate() error {
	if c.Interval < time.Second {
		return fmt.Errorf("monitor: config: interval %s is below 1s", c.Interval)
	}
	if c.HTTPTimeout <= 0 {
		return fmt.Errorf("monitor: config: http_timeout must be positive")
	}
	if c.MetricsRetention < c.Interval || c.AlertRetention < c.Interval {
		return fmt.Errorf("monitor: config: retention shorter than the interval")
	}
	if err := c.Alerting.Validate(); err != nil {
		return fmt.Errorf("monitor: config: alerting: %w", err)
	}
	if c.CheckMaxAge < 0 {
		return fmt.Errorf("monitor: config: check_max_age must be positive")
	}
	if c.GPUXIDWindow < 0 {
		return fmt.Errorf("monitor: config: gpu_xid_window must be positive")
	}
	if c.TestRestoreMaxAge < 0 {
		return fmt.Errorf("monitor: config: test_restore_max_age must be positive")
	}
	if c.BackupCorruptWindow < 0 {
		return fmt.Errorf("monitor: config: backup_corrupt_window must be positive")
	}
	names := make([]string, 0, len(c.Models))
	for n := range c.Models {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if n == "" || strings.ContainsAny(n, " \t\n/") {
			return fmt.Errorf("monitor: config: model name %q: use letters, digits, '-' or '_'", n)
		}
		if p := c.Models[n]; p < 1 || p > 65535 {
			return fmt.Errorf("monitor: config: model %s: port %d out of range", n, p)
		}
	}
	for _, p := range c.Paths {
		if !strings.HasPrefix(p, "/") {
			return fmt.Errorf("monitor: config: path %q is not absolute", p)
		}
	}
	for _, u := range c.SystemdUnits {
		if u == "" || strings.HasPrefix(u, "-") || strings.ContainsAny(u, " \t\n") {
			return fmt.Errorf("monitor: config: systemd unit %q is not a unit name", u)
		}
	}
	var d Thresholds
	for _, p := range c.Thresholds.pairs(&d) {
		r := p.rule
		if r.Severity != SeverityWarning && r.Severity != SeverityCritical {
			return fmt.Errorf("monitor: config: thresholds.%s: severity %q (want warning or critical)", p.key, r.Severity)
		}
		if r.For != nil && *r.For < 0 || r.ClearFor < 0 {
			return fmt.Errorf("monitor: config: thresholds.%s: negative duration", p.key)
		}
		if r.Clear > r.Threshold {
			return fmt.Errorf("monitor: config: thresholds.%s: clear %g is above threshold %g", p.key, r.Clear, r.Threshold)
		}
	}
	return nil
}
