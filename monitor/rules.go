package monitor

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"citadelfs/index"
)

// Rule (alert) names.
const (
	RuleCPUHigh            = "cpu_high"
	RuleMemoryHigh         = "memory_high"
	RuleStorageHigh        = "storage_high"
	RuleBackupStorage      = "backup_storage"
	RuleGPUMemoryHigh      = "gpu_memory_high"
	RuleGPUTemperatureHigh = "gpu_temperature_high"
	RuleModelUnhealthy     = "model_unhealthy"
	RuleUnitFailed         = "unit_failed"
	RuleBackupFailed       = "backup_failed"
	RuleBackupStale        = "backup_stale"
	RuleBackupCorrupt      = "backup_corrupt"
	RuleTestRestore        = "test_restore"
	RuleCollectorError     = "collector_error"
	RuleGPUXID             = "gpu_xid"
	RuleGPUECCDBE          = "gpu_ecc_dbe"
	RuleGPUPagesPending    = "gpu_pages_pending"
	RuleCheckStale         = "check_stale"
	RuleRetentionFailed    = "retention_failed"
)

// SubjectRepository is the subject of backup_corrupt: the repository as a
// whole (the message names the file).
const SubjectRepository = "repository"

// Collector names, as they appear in Sample.Collectors.
const (
	CollectorSystem  = "system"
	CollectorGPU     = "gpu"
	CollectorModels  = "models"
	CollectorSystemd = "systemd"
	CollectorBackup  = "backup"
)

// check is one subject's reading for a rule in one sample.
type check struct {
	subject string
	// value is compared with threshold (to fire) and clear (to end).
	value, threshold, clear float64
	// state marks a yes/no condition: value is 1 (bad) or 0, and the
	// numbers are not shown.
	state bool
	// unknown means the subject exists but could not be read this cycle:
	// its alert keeps its state instead of resolving.
	unknown bool
	message string
}

// ruleDef is one alert rule: its tuning and how it reads a sample.
type ruleDef struct {
	name string
	// collector is the collector the rule reads; when it failed this
	// cycle the rule is skipped, so no alert resolves for lack of data.
	// Empty: always evaluated.
	collector string
	cfg       Rule
	checks    func(s *Sample) []check
}

func (r *ruleDef) pendingFor() time.Duration {
	if r.cfg.For == nil {
		return 0
	}
	return *r.cfg.For
}

func stateCheck(subject string, bad bool, message string) check {
	v := 0.0
	if bad {
		v = 1
	}
	return check{subject: subject, value: v, threshold: 0.5, clear: 0.5, state: true, message: message}
}

// buildRules returns the enabled rules for c (defaults applied).
func buildRules(c Config) []*ruleDef {
	t := c.Thresholds
	// pct reads "87.2% used (threshold 85%)", after an optional prefix.
	pct := func(subject string, v float64, r Rule, prefix, word string) check {
		return check{subject: subject, value: v, threshold: r.Threshold, clear: r.Clear,
			message: fmt.Sprintf("%s%.1f%% %s (threshold %g%%)", prefix, v, word, r.Threshold)}
	}
	all := []*ruleDef{
		{name: RuleCPUHigh, collector: CollectorSystem, cfg: t.CPU, checks: func(s *Sample) []check {
			if s.System == nil || s.System.CPU == nil {
				return []check{{subject: "cpu", unknown: true}}
			}
			return []check{pct("cpu", s.System.CPU.TotalPercent, t.CPU, "", "busy")}
		}},
		{name: RuleMemoryHigh, collector: CollectorSystem, cfg: t.Memory, checks: func(s *Sample) []check {
			if s.System == nil || s.System.Memory == nil {
				return []check{{subject: "memory", unknown: true}}
			}
			return []check{pct("memory", s.System.Memory.UsedPercent, t.Memory, "", "used")}
		}},
		{name: RuleStorageHigh, collector: CollectorSystem, cfg: t.Storage, checks: func(s *Sample) []check {
			var out []check
			covered := map[string]bool{}
			for _, p := range s.System.Paths {
				switch {
				case p.Usage != nil:
					out = append(out, pct(p.Path, p.Usage.UsedPercent, t.Storage, "", "used"))
				case p.Error != "":
					out = append(out, check{subject: p.Path, unknown: true})
				}
				if p.Mountpoint != "" && !p.Absent {
					covered[p.Mountpoint] = true
				}
			}
			// Mounts not already watched through a configured path; a
			// read-only file system cannot fill up.
			for _, m := range s.System.Mounts {
				if covered[m.Mountpoint] || m.ReadOnly {
					continue
				}
				switch {
				case m.Usage != nil:
					out = append(out, pct(m.Mountpoint, m.Usage.UsedPercent, t.Storage, "", "used"))
				case m.Error != "":
					out = append(out, check{subject: m.Mountpoint, unknown: true})
				}
			}
			return out
		}},
		{name: RuleBackupStorage, collector: CollectorBackup, cfg: t.BackupStorage, checks: func(s *Sample) []check {
			b := s.Backup
			switch {
			case b == nil || !b.Configured || b.Repo == "":
				return nil
			case b.FS == nil:
				return []check{{subject: b.Repo, unknown: true}}
			}
			return []check{pct(b.Repo, b.FS.UsedPercent, t.BackupStorage, "", "used")}
		}},
		{name: RuleGPUMemoryHigh, collector: CollectorGPU, cfg: t.GPUMemory, checks: func(s *Sample) []check {
			var out []check
			for _, g := range s.GPUs.Devices {
				subject := "gpu" + strconv.Itoa(g.Index)
				if v, ok := g.MemoryPercent(); ok {
					out = append(out, pct(subject, v, t.GPUMemory, g.Name+" memory ", "used"))
				} else {
					out = append(out, check{subject: subject, unknown: true})
				}
			}
			return out
		}},
		{name: RuleGPUTemperatureHigh, collector: CollectorGPU, cfg: t.GPUTemperature, checks: func(s *Sample) []check {
			var out []check
			for _, g := range s.GPUs.Devices {
				subject := "gpu" + strconv.Itoa(g.Index)
				if g.TemperatureC == nil {
					out = append(out, check{subject: subject, unknown: true})
					continue
				}
				v := *g.TemperatureC
				out = append(out, check{subject: subject, value: v, threshold: t.GPUTemperature.Threshold, clear: t.GPUTemperature.Clear,
					message: fmt.Sprintf("%s at %.0f°C (threshold %g°C)", g.Name, v, t.GPUTemperature.Threshold)})
			}
			return out
		}},
		// GPU faults with dcgm-exporter's meaning: any critical XID,
		// double-bit (uncorrectable) ECC errors, retired pages or
		// remapped rows pending. A GPU that cannot report one (no XID
		// events, ECC off, no page retirement) has no subject here.
		{name: RuleGPUXID, collector: CollectorGPU, cfg: t.GPUXID, checks: func(s *Sample) []check {
			var out []check
			for _, g := range s.GPUs.Devices {
				if g.XIDErrors == nil {
					continue
				}
				subject := "gpu" + strconv.Itoa(g.Index)
				recent := g.LastXID != nil && !g.LastXIDTime.IsZero() && s.Time.Sub(g.LastXIDTime) < c.GPUXIDWindow
				msg := fmt.Sprintf("%s: no critical XID event in the last %s", g.Name, shortDuration(c.GPUXIDWindow))
				if recent {
					msg = fmt.Sprintf("%s: XID %d at %s (%d critical XID events since the monitor started); see NVIDIA's XID catalog, drain and reset the GPU",
						g.Name, *g.LastXID, g.LastXIDTime.UTC().Format(time.RFC3339), *g.XIDErrors)
				}
				out = append(out, stateCheck(subject, recent, msg))
			}
			return out
		}},
		{name: RuleGPUECCDBE, collector: CollectorGPU, cfg: t.GPUECC, checks: func(s *Sample) []check {
			var out []check
			for _, g := range s.GPUs.Devices {
				if g.ECCUncorrected == nil {
					continue
				}
				n := float64(*g.ECCUncorrected)
				out = append(out, check{subject: "gpu" + strconv.Itoa(g.Index), value: n, threshold: t.GPUECC.Threshold, clear: t.GPUECC.Clear,
					message: fmt.Sprintf("%s: %d uncorrectable (double-bit) ECC errors since the driver loaded; drain the GPU and reset it", g.Name, *g.ECCUncorrected)})
			}
			return out
		}},
		{name: RuleGPUPagesPending, collector: CollectorGPU, cfg: t.GPUPagesPending, checks: func(s *Sample) []check {
			var out []check
			for _, g := range s.GPUs.Devices {
				if g.RetiredPagesPending == nil && g.RowRemapPending == nil {
					continue
				}
				var why []string
				if g.RetiredPagesPending != nil && *g.RetiredPagesPending {
					why = append(why, "retired pages pending (applied at the next driver reload)")
				}
				if g.RowRemapPending != nil && *g.RowRemapPending {
					why = append(why, "remapped rows pending (applied at the next GPU reset)")
				}
				if g.RowRemapFailed != nil && *g.RowRemapFailed {
					why = append(why, "a row remap failed (the GPU needs service)")
				}
				msg := g.Name + ": no retired pages or remapped rows pending"
				if len(why) > 0 {
					msg = g.Name + ": " + strings.Join(why, "; ")
				}
				out = append(out, stateCheck("gpu"+strconv.Itoa(g.Index), len(why) > 0, msg))
			}
			return out
		}},
		{name: RuleModelUnhealthy, collector: CollectorModels, cfg: t.ModelUnhealthy, checks: func(s *Sample) []check {
			out := make([]check, 0, len(s.Models))
			for _, m := range s.Models {
				msg := fmt.Sprintf("(port %d) %s", m.Port, m.Error)
				out = append(out, stateCheck(m.Name, m.State != ModelHealthy, msg))
			}
			return out
		}},
		{name: RuleUnitFailed, collector: CollectorSystemd, cfg: t.UnitFailed, checks: func(s *Sample) []check {
			out := make([]check, 0, len(s.Units))
			for _, u := range s.Units {
				if u.State == UnitUnknown {
					// No systemd or no answer: never an alert, and an
					// alert already firing keeps its state.
					out = append(out, check{subject: u.Name, unknown: true})
					continue
				}
				out = append(out, stateCheck(u.Name, u.State == UnitFailed, "unit is "+u.State))
			}
			return out
		}},
		{name: RuleBackupFailed, collector: CollectorBackup, cfg: t.BackupFailed, checks: func(s *Sample) []check {
			if s.Backup == nil || !s.Backup.Configured {
				return nil
			}
			var out []check
			for _, src := range s.Backup.Sources {
				if src.LastResult == "" {
					continue
				}
				msg := fmt.Sprintf("last snapshot %s failed: %s", src.LastTime.UTC().Format(time.RFC3339), src.LastError)
				out = append(out, stateCheck(src.Label, src.LastResult == index.AttemptFailed, msg))
			}
			return out
		}},
		{name: RuleBackupStale, collector: CollectorBackup, cfg: t.BackupStale, checks: func(s *Sample) []check {
			if s.Backup == nil || !s.Backup.Configured {
				return nil
			}
			var out []check
			for _, src := range s.Backup.Sources {
				limit := time.Duration(src.MaxAgeSeconds * float64(time.Second))
				if src.AgeSeconds == nil {
					out = append(out, stateCheck(src.Label, true, fmt.Sprintf("no successful snapshot yet (schedule allows %s)", shortDuration(limit))))
					continue
				}
				age := *src.AgeSeconds
				out = append(out, check{subject: src.Label, value: age, threshold: src.MaxAgeSeconds, clear: src.MaxAgeSeconds,
					message: fmt.Sprintf("last successful snapshot %s ago (schedule allows %s)", shortDuration(time.Duration(age*float64(time.Second))), shortDuration(limit))})
			}
			return out
		}},
		{name: RuleBackupCorrupt, collector: CollectorBackup, cfg: t.BackupCorrupt, checks: func(s *Sample) []check {
			if s.Backup == nil || !s.Backup.Configured {
				return nil
			}
			in, lc, ip := s.Backup.Integrity, s.Backup.LastCheck, s.Backup.IndexProblem
			if in == nil && lc == nil && ip == nil {
				return nil
			}
			var firing []string
			var quiet []string
			if ip != nil {
				remedy := "run `citadelfs check`, which verifies every table"
				if ip.Corrupt {
					remedy = "run `citadelfs repair index`"
				}
				firing = append(firing, fmt.Sprintf("index background failure at %s: %s; %s", ip.Time.UTC().Format(time.RFC3339), ip.Error, remedy))
			}
			if in != nil {
				window := time.Duration(in.WindowSeconds * float64(time.Second))
				switch {
				case in.AgeSeconds == nil:
					quiet = append(quiet, "no corrupt data read")
				case *in.AgeSeconds < in.WindowSeconds:
					reads, files := strconv.FormatUint(in.CorruptReads, 10)+" corrupt read", strconv.Itoa(in.CorruptFiles)+" file"
					if in.CorruptReads != 1 {
						reads += "s"
					}
					if in.CorruptFiles != 1 {
						files += "s"
					}
					if in.CorruptFilesCapped {
						files = "over " + files
					}
					firing = append(firing, fmt.Sprintf("corrupt data read from %s at %s: %s (%s of %s in this mount)",
						in.LastPath, in.LastTime.UTC().Format(time.RFC3339), in.LastError, reads, files))
				default:
					quiet = append(quiet, fmt.Sprintf("no corrupt data read in the last %s (last: %s at %s)",
						shortDuration(window), in.LastPath, in.LastTime.UTC().Format(time.RFC3339)))
				}
			}
			if lc != nil {
				at := lc.Time.UTC().Format(time.RFC3339)
				switch lc.Result {
				case index.CheckErrors:
					n := strconv.Itoa(lc.Errors) + " error"
					if lc.Errors != 1 {
						n += "s"
					}
					firing = append(firing, fmt.Sprintf("check at %s found %s: %s", at, n, lc.FirstError))
				case index.CheckUnknown:
					firing = append(firing, "integrity unknown: "+lc.FirstError)
				case index.CheckOK:
					quiet = append(quiet, "last check at "+at+" found no errors")
				default:
					quiet = append(quiet, fmt.Sprintf("last check at %s did not finish: %s", at, lc.FirstError))
				}
			}
			if len(firing) > 0 {
				return []check{stateCheck(SubjectRepository, true, strings.Join(firing, "; "))}
			}
			return []check{stateCheck(SubjectRepository, false, strings.Join(quiet, "; "))}
		}},
		{name: RuleTestRestore, collector: CollectorBackup, cfg: t.TestRestore, checks: func(s *Sample) []check {
			if s.Backup == nil || !s.Backup.Configured || s.Backup.TestRestore == nil {
				return nil
			}
			tr := s.Backup.TestRestore
			limit := time.Duration(tr.MaxAgeSeconds * float64(time.Second))
			c := tr.Last
			if c == nil {
				return []check{stateCheck(SubjectRepository, false, "no test restore recorded yet")}
			}
			at := c.Time.UTC().Format(time.RFC3339)
			switch c.Result {
			case index.CheckErrors:
				return []check{stateCheck(SubjectRepository, true, fmt.Sprintf("test restore at %s found %d damaged of %d files: %s",
					at, c.Errors, c.Errors+c.Files, c.FirstError))}
			case index.CheckOK:
			default:
				return []check{stateCheck(SubjectRepository, true, fmt.Sprintf("test restore at %s could not run: %s", at, c.FirstError))}
			}
			if tr.Expected && tr.AgeSeconds != nil && *tr.AgeSeconds > tr.MaxAgeSeconds {
				return []check{stateCheck(SubjectRepository, true, fmt.Sprintf("last test restore %s ago (validation.test_restore_monthly allows %s): is its timer running?",
					shortDuration(time.Duration(*tr.AgeSeconds*float64(time.Second))), shortDuration(limit)))}
			}
			return []check{stateCheck(SubjectRepository, false, fmt.Sprintf("last test restore at %s: %d files verified", at, c.Files))}
		}},
		// The weekly check timer that stopped running: the last check
		// (of any result: a failing one is backup_corrupt's or its own
		// unit's business) is older than check_max_age, or none ran since
		// the repository was made that long ago.
		{name: RuleCheckStale, collector: CollectorBackup, cfg: t.CheckStale, checks: func(s *Sample) []check {
			b := s.Backup
			if b == nil || !b.Configured {
				return nil
			}
			limit := c.CheckMaxAge.Seconds()
			var age float64
			var msg string
			switch {
			case b.LastCheck != nil:
				ran := b.LastCheck.Ran()
				age = max(s.Time.Sub(ran).Seconds(), 0)
				msg = fmt.Sprintf("last check %s ago, at %s (check_max_age %s): is citadelfs-check.timer running?",
					shortDuration(time.Duration(age*float64(time.Second))), ran.UTC().Format(time.RFC3339), shortDuration(c.CheckMaxAge))
			case !b.Created.IsZero():
				age = max(s.Time.Sub(b.Created).Seconds(), 0)
				msg = fmt.Sprintf("no check since the repository was made %s ago (check_max_age %s): is citadelfs-check.timer running?",
					shortDuration(time.Duration(age*float64(time.Second))), shortDuration(c.CheckMaxAge))
			default:
				return nil
			}
			return []check{{subject: SubjectRepository, value: age, threshold: limit, clear: limit, message: msg}}
		}},
		{name: RuleRetentionFailed, collector: CollectorBackup, cfg: t.RetentionFailed, checks: func(s *Sample) []check {
			b := s.Backup
			if b == nil || !b.Configured {
				return nil
			}
			var out []check
			for _, m := range b.Maintenance {
				at := m.Time.UTC().Format(time.RFC3339)
				msg := fmt.Sprintf("last %s at %s passed", m.Op, at)
				if m.Result == index.MaintenanceFailed {
					msg = fmt.Sprintf("last %s at %s failed: %s", m.Op, at, m.Error)
				}
				out = append(out, stateCheck(m.Op, m.Result == index.MaintenanceFailed, msg))
			}
			return out
		}},
		{name: RuleCollectorError, cfg: t.CollectorError, checks: func(s *Sample) []check {
			out := make([]check, 0, len(s.Collectors))
			for _, c := range s.Collectors {
				out = append(out, stateCheck(c.Name, !c.OK, c.Error))
			}
			return out
		}},
	}
	var rules []*ruleDef
	for _, r := range all {
		if !r.cfg.Disabled {
			rules = append(rules, r)
		}
	}
	return rules
}

// shortDuration prints d rounded for people: 3m, 2h5m, 26h.
func shortDuration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return d.Round(time.Second).String()
	case d < time.Hour:
		return strconv.Itoa(int(d.Round(time.Minute)/time.Minute)) + "m"
	default:
		d = d.Round(time.Minute)
		h, m := d/time.Hour, (d%time.Hour)/time.Minute
		if m == 0 {
			return strconv.Itoa(int(h)) + "h"
		}
		return fmt.Sprintf("%dh%dm", h, m)
	}
}
