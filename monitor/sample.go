package monitor

import (
	"time"

	"citadelfs/index"
)

// Sample is what one collection cycle saw. A part whose collector failed or
// has nothing to report is nil or empty, never zero-filled: a zero in a
// Sample is a measured zero. Samples are immutable once published.
type Sample struct {
	Time time.Time `json:"time"`
	Host string    `json:"host"`
	// System is CPU, memory, load, disks and network (nil if the collector failed).
	System *SystemStats `json:"system,omitempty"`
	// GPUs is nil only if the collector failed; "no GPUs" is a GPUStats
	// with Available false or no Devices.
	GPUs *GPUStats `json:"gpus,omitempty"`
	// Models is one entry per configured model service, in name order.
	Models []ModelStatus `json:"models"`
	// Units is one entry per configured systemd unit.
	Units []UnitStatus `json:"systemd_units"`
	// Backup is the repository's backup state.
	Backup *BackupStatus `json:"backup,omitempty"`
	// Collectors says how each collector fared this cycle.
	Collectors []CollectorResult `json:"collectors"`
}

// CollectorResult is one collector's outcome in one cycle.
type CollectorResult struct {
	Name string `json:"name"`
	OK   bool   `json:"ok"`
	// Error is why the collector failed (empty when OK).
	Error string `json:"error,omitempty"`
	// Seconds is how long the collector took (wall clock).
	Seconds float64 `json:"seconds"`
}

// collector reports whether the named collector succeeded in s.
func (s *Sample) collectorOK(name string) bool {
	for _, c := range s.Collectors {
		if c.Name == name {
			return c.OK
		}
	}
	return false
}

// SystemStats is the host's CPU, memory, load, disks and network. A part
// that could not be read is nil (or empty) and named in Errors.
type SystemStats struct {
	CPU     *CPUStats    `json:"cpu,omitempty"`
	Load    *LoadStats   `json:"load,omitempty"`
	Memory  *MemoryStats `json:"memory,omitempty"`
	Swap    *SwapStats   `json:"swap,omitempty"`
	Paths   []PathUsage  `json:"paths"`
	Mounts  []MountUsage `json:"mounts"`
	Disks   []DiskIO     `json:"disks"`
	Network []NetworkIO  `json:"network"`
	Errors  []string     `json:"errors,omitempty"`
	// RateSeconds is the window the I/O rates and CPU percentages cover.
	RateSeconds float64 `json:"rate_seconds"`
}

// CPUStats is CPU usage over the last rate window.
type CPUStats struct {
	Cores int `json:"cores"`
	// TotalPercent is the busy share of all cores, 0-100.
	TotalPercent float64 `json:"total_percent"`
	// PerCore is each core's busy percent, by core number.
	PerCore []float64 `json:"per_core_percent"`
	// Seconds are the cumulative per-core times by mode, as the kernel
	// counts them (node_cpu_seconds_total).
	Seconds []CPUSeconds `json:"seconds,omitempty"`
}

// CPUSeconds are one core's cumulative times in seconds.
type CPUSeconds struct {
	User    float64 `json:"user"`
	Nice    float64 `json:"nice"`
	System  float64 `json:"system"`
	Idle    float64 `json:"idle"`
	Iowait  float64 `json:"iowait"`
	IRQ     float64 `json:"irq"`
	SoftIRQ float64 `json:"softirq"`
	Steal   float64 `json:"steal"`
}

// LoadStats are the load averages.
type LoadStats struct {
	Load1  float64 `json:"load1"`
	Load5  float64 `json:"load5"`
	Load15 float64 `json:"load15"`
}

// MemoryStats is RAM usage in bytes. UsedPercent counts what is not
// available to new work: (Total-Available)/Total.
type MemoryStats struct {
	Total       uint64  `json:"total_bytes"`
	Available   uint64  `json:"available_bytes"`
	Free        uint64  `json:"free_bytes"`
	Cached      uint64  `json:"cached_bytes"`
	Buffers     uint64  `json:"buffers_bytes"`
	UsedPercent float64 `json:"used_percent"`
}

// SwapStats is swap usage in bytes.
type SwapStats struct {
	Total       uint64  `json:"total_bytes"`
	Free        uint64  `json:"free_bytes"`
	UsedPercent float64 `json:"used_percent"`
}

// FSUsage is one file system's size as statfs reports it. Used counts
// blocks in use; Avail is what unprivileged users may still write, so
// UsedPercent = Used/(Used+Avail), as df prints it.
type FSUsage struct {
	Total       uint64  `json:"total_bytes"`
	Used        uint64  `json:"used_bytes"`
	Free        uint64  `json:"free_bytes"`
	Avail       uint64  `json:"avail_bytes"`
	Files       uint64  `json:"files"`
	FilesFree   uint64  `json:"files_free"`
	UsedPercent float64 `json:"used_percent"`
}

// PathUsage is a configured path's file system usage.
type PathUsage struct {
	Path string `json:"path"`
	// Mountpoint is the mount the path lives on, when known.
	Mountpoint string `json:"mountpoint,omitempty"`
	// Absent is true when the path does not exist (no alert).
	Absent bool `json:"absent,omitempty"`
	// Error is why the path could not be measured.
	Error string   `json:"error,omitempty"`
	Usage *FSUsage `json:"usage,omitempty"`
}

// MountUsage is one mounted file system's usage.
type MountUsage struct {
	Device     string   `json:"device"`
	Mountpoint string   `json:"mountpoint"`
	FSType     string   `json:"fstype"`
	ReadOnly   bool     `json:"read_only,omitempty"`
	Error      string   `json:"error,omitempty"`
	Usage      *FSUsage `json:"usage,omitempty"`
}

// DiskIO is one block device's cumulative counters and their rates over
// the last window (rates are absent on the first sample).
type DiskIO struct {
	Device          string   `json:"device"`
	ReadBytes       uint64   `json:"read_bytes_total"`
	WrittenBytes    uint64   `json:"written_bytes_total"`
	Reads           uint64   `json:"reads_total"`
	Writes          uint64   `json:"writes_total"`
	IOTimeSeconds   float64  `json:"io_time_seconds_total"`
	ReadBytesRate   *float64 `json:"read_bytes_per_second,omitempty"`
	WriteBytesRate  *float64 `json:"write_bytes_per_second,omitempty"`
	ReadsRate       *float64 `json:"reads_per_second,omitempty"`
	WritesRate      *float64 `json:"writes_per_second,omitempty"`
	BusyPercentRate *float64 `json:"busy_percent,omitempty"`
}

// NetworkIO is one interface's cumulative counters and their rates.
type NetworkIO struct {
	Interface   string   `json:"interface"`
	RxBytes     uint64   `json:"receive_bytes_total"`
	TxBytes     uint64   `json:"transmit_bytes_total"`
	RxPackets   uint64   `json:"receive_packets_total"`
	TxPackets   uint64   `json:"transmit_packets_total"`
	RxErrors    uint64   `json:"receive_errs_total"`
	TxErrors    uint64   `json:"transmit_errs_total"`
	RxDrops     uint64   `json:"receive_drop_total"`
	TxDrops     uint64   `json:"transmit_drop_total"`
	RxBytesRate *float64 `json:"receive_bytes_per_second,omitempty"`
	TxBytesRate *float64 `json:"transmit_bytes_per_second,omitempty"`
}

// GPUStats is what NVML reports. Available is false when there is no
// driver or library; that is a normal state, explained by Reason.
type GPUStats struct {
	Available bool   `json:"available"`
	Reason    string `json:"reason,omitempty"`
	Driver    string `json:"driver_version,omitempty"`
	Devices   []GPU  `json:"devices"`
}

// NoGPUs reports whether the machine has no usable GPU.
func (g *GPUStats) NoGPUs() bool { return g == nil || !g.Available || len(g.Devices) == 0 }

// GPU is one device. Each measurement is nil where the device or driver
// does not support it.
type GPU struct {
	Index int    `json:"index"`
	Name  string `json:"name"`
	UUID  string `json:"uuid"`
	// UtilizationPercent is the share of time a kernel ran, 0-100.
	UtilizationPercent *float64 `json:"utilization_percent,omitempty"`
	// MemoryUtilizationPercent is the share of time memory was read or written.
	MemoryUtilizationPercent *float64 `json:"memory_utilization_percent,omitempty"`
	MemoryUsed               *uint64  `json:"memory_used_bytes,omitempty"`
	MemoryTotal              *uint64  `json:"memory_total_bytes,omitempty"`
	TemperatureC             *float64 `json:"temperature_celsius,omitempty"`
	PowerWatts               *float64 `json:"power_watts,omitempty"`
	PowerLimitWatts          *float64 `json:"power_limit_watts,omitempty"`
	// ECCUncorrected counts uncorrected (double-bit) ECC errors since the
	// driver loaded: NVML's volatile uncorrected total, dcgm-exporter's
	// DCGM_FI_DEV_ECC_DBE_VOL_TOTAL.
	ECCUncorrected *uint64 `json:"ecc_uncorrected_errors,omitempty"`
	// XIDErrors counts critical XID events this monitor has seen since it
	// started; LastXID is the most recent XID code and LastXIDTime when
	// the monitor read it.
	XIDErrors   *uint64   `json:"xid_errors,omitempty"`
	LastXID     *uint64   `json:"last_xid,omitempty"`
	LastXIDTime time.Time `json:"last_xid_time,omitzero"`
	// RetiredPagesPending says memory pages wait to be retired at the next
	// driver reload (dcgm-exporter's DCGM_FI_DEV_RETIRED_PENDING); nil
	// where the GPU has no page retirement (Hopper remaps rows instead).
	RetiredPagesPending *bool `json:"retired_pages_pending,omitempty"`
	// RowRemapPending says memory rows wait to be remapped at the next GPU
	// reset (DCGM_FI_DEV_ROW_REMAP_PENDING); RowRemapFailed that a remap
	// failed (DCGM_FI_DEV_ROW_REMAP_FAILURE); the counts are the rows
	// remapped for correctable and uncorrectable errors. nil where the GPU
	// has no row remapping.
	RowRemapPending           *bool `json:"row_remap_pending,omitempty"`
	RowRemapFailed            *bool `json:"row_remap_failed,omitempty"`
	RemappedRowsCorrectable   *int  `json:"remapped_rows_correctable,omitempty"`
	RemappedRowsUncorrectable *int  `json:"remapped_rows_uncorrectable,omitempty"`
	// Throttle names the active clock throttle reasons.
	Throttle  []string     `json:"throttle_reasons,omitempty"`
	Processes []GPUProcess `json:"processes,omitempty"`
	// Errors names the fields that failed for a reason other than "not supported".
	Errors []string `json:"errors,omitempty"`
}

// MemoryPercent is the used share of GPU memory, when known.
func (g *GPU) MemoryPercent() (float64, bool) {
	if g.MemoryUsed == nil || g.MemoryTotal == nil || *g.MemoryTotal == 0 {
		return 0, false
	}
	return float64(*g.MemoryUsed) / float64(*g.MemoryTotal) * 100, true
}

// GPUProcess is a compute process on a GPU.
type GPUProcess struct {
	PID        uint32 `json:"pid"`
	Name       string `json:"name,omitempty"`
	MemoryUsed uint64 `json:"memory_used_bytes"`
}

// Model service states.
const (
	ModelHealthy   = "healthy"   // /health answered 2xx
	ModelUnhealthy = "unhealthy" // /health answered another status
	ModelDown      = "down"      // connection refused: nothing listens
	ModelTimeout   = "timeout"   // no answer within http_timeout
	ModelError     = "error"     // any other transport failure
)

// ModelStatus is one model service's probe result.
type ModelStatus struct {
	Name  string `json:"name"`
	Port  int    `json:"port"`
	URL   string `json:"url"`
	State string `json:"state"`
	// HTTPStatus is /health's status code (0 when there was no answer).
	HTTPStatus int `json:"http_status,omitempty"`
	// LatencySeconds is how long /health took to answer.
	LatencySeconds float64 `json:"latency_seconds"`
	// Error explains a state other than healthy.
	Error string `json:"error,omitempty"`
	// Metrics says whether /metrics answered 2xx (nil: not probed because
	// /health got no answer).
	Metrics *bool `json:"metrics_endpoint,omitempty"`
}

// Unit states as systemctl is-active prints them, plus UnitUnknown.
const (
	UnitActive  = "active"
	UnitFailed  = "failed"
	UnitUnknown = "unknown" // no systemd, or systemctl could not say
)

// UnitStatus is one systemd unit's state.
type UnitStatus struct {
	Name  string `json:"name"`
	State string `json:"state"`
	// Reason explains an unknown state.
	Reason string `json:"reason,omitempty"`
}

// BackupStatus is the backup state as the monitor saw it.
type BackupStatus struct {
	// Configured is false when no repository is configured or open.
	Configured bool   `json:"configured"`
	Reason     string `json:"reason,omitempty"`
	Repo       string `json:"repo,omitempty"`
	// RepoBytes is the repository's size on disk.
	RepoBytes *uint64 `json:"repo_bytes,omitempty"`
	// FS is the usage of the file system holding the repository.
	FS      *FSUsage       `json:"filesystem,omitempty"`
	FSError string         `json:"filesystem_error,omitempty"`
	Sources []SourceStatus `json:"sources"`
	// Integrity is what reads of the repository's data found (nil: not
	// watched in this process).
	Integrity *IntegrityStatus `json:"integrity,omitempty"`
	// LastCheck is the repository's last check run (nil: none recorded).
	LastCheck *CheckStatus `json:"last_check,omitempty"`
	// IndexProblem is the index's last background failure (nil: none).
	IndexProblem *IndexProblemState `json:"index_problem,omitempty"`
	// TestRestore is the last test restore (nil: none recorded and none
	// expected).
	TestRestore *TestRestoreStatus `json:"test_restore,omitempty"`
	// Created is when the repository was made (zero: unknown).
	Created time.Time `json:"created,omitzero"`
	// Maintenance is the last run of forget and of prune.
	Maintenance []MaintenanceState `json:"maintenance,omitempty"`
}

// TestRestoreStatus is the last test restore as the monitor saw it.
type TestRestoreStatus struct {
	// Last is the record (nil: none yet).
	Last *TestRestoreState `json:"last,omitempty"`
	// AgeSeconds is the time since it started.
	AgeSeconds *float64 `json:"age_seconds,omitempty"`
	// Expected: the config asks for a monthly test restore; MaxAgeSeconds
	// is test_restore_max_age.
	Expected      bool    `json:"expected"`
	MaxAgeSeconds float64 `json:"max_age_seconds"`
}

// CheckStatus is derived from the last check's record (index.CheckRecord,
// as stored) for a sample: the same facts, with the duration in seconds and
// the record's age when the sample was taken.
type CheckStatus struct {
	// Time is when the check started.
	Time time.Time `json:"time"`
	// Result is index.CheckOK, CheckErrors, CheckFailed or CheckUnknown.
	Result string `json:"result"`
	// Errors is how many problems it found.
	Errors int `json:"errors"`
	// FirstError is the first problem (CheckErrors) or why the check did
	// not finish (CheckFailed), one line.
	FirstError string `json:"first_error,omitempty"`
	// ReadData says chunks were read back and hashed; Subset is the
	// fraction of packs read (0: all).
	ReadData bool    `json:"read_data"`
	Subset   float64 `json:"subset,omitempty"`
	// LastRun is when the latest check started, if a later check ran
	// without replacing this record's finding (zero: Time).
	LastRun time.Time `json:"last_run,omitzero"`
	// DurationSeconds is how long the check ran.
	DurationSeconds float64 `json:"duration_seconds"`
	// AgeSeconds is the time since the check started.
	AgeSeconds *float64 `json:"age_seconds,omitempty"`
}

// Ran is when the latest check started (index.CheckRecord.Ran).
func (c *CheckStatus) Ran() time.Time {
	r := index.CheckRecord{Time: c.Time, LastRun: c.LastRun}
	return r.Ran()
}

// IntegrityStatus is derived from the corrupt-read record
// (index.CorruptReads, as stored) for a sample, under the names
// metrics.json shows, with the age of the latest corrupt read and the
// window backup_corrupt fires in.
type IntegrityStatus struct {
	// CorruptReads is how many reads were answered with an I/O error
	// because the data was corrupt.
	CorruptReads uint64 `json:"corrupt_reads"`
	// CorruptFiles is how many distinct paths those reads were of, counted
	// up to a bound; CorruptFilesCapped says the bound was reached and the
	// real number is higher. One file seen under latest/, a day folder and
	// snapshots/ counts once per path.
	CorruptFiles       int  `json:"corrupt_files"`
	CorruptFilesCapped bool `json:"corrupt_files_capped,omitempty"`
	// LastTime, LastPath and LastError describe the latest corrupt read:
	// when, the path inside the mount, and the one-line error.
	LastTime  time.Time `json:"last_time,omitzero"`
	LastPath  string    `json:"last_path,omitempty"`
	LastError string    `json:"last_error,omitempty"`
	// AgeSeconds is the time since the latest corrupt read (nil: none).
	AgeSeconds *float64 `json:"age_seconds,omitempty"`
	// WindowSeconds is backup_corrupt_window: backup_corrupt fires while
	// AgeSeconds is below it.
	WindowSeconds float64 `json:"window_seconds"`
}

// SourceStatus is one backup source's last snapshot.
type SourceStatus struct {
	SourceState
	// LastDurationSeconds is how long the last attempt took.
	LastDurationSeconds float64 `json:"last_duration_seconds,omitempty"`
	// AgeSeconds is the time since the last successful snapshot (nil: never).
	AgeSeconds *float64 `json:"age_seconds,omitempty"`
	// MaxAgeSeconds is the age limit applied (the source's own, or the
	// config's backup_max_age).
	MaxAgeSeconds float64 `json:"max_age_seconds"`
}
