package monitor

import (
	"strconv"

	"citadelfs/index"
)

// renderMetrics turns s and the active alerts into const metrics for the
// registry (see prometheus.go). Every series is citadelfs_*: the host
// series keep node_exporter's label names and units (with snake_case
// names), so a dashboard ports by changing the prefix, but never its
// names, which would collide with a real node_exporter on the same host.
// Rates are left to rate() over the counters; ratios are 0-1, times
// seconds, sizes bytes.
func renderMetrics(s *Sample, alerts []Alert) *promWriter {
	w := newPromWriter()
	if s == nil {
		return w
	}
	w.gauge("citadelfs_monitor_last_sample_timestamp_seconds", "Time of the latest collection cycle.", float64(s.Time.UnixNano())/1e9)
	for _, c := range s.Collectors {
		w.gauge("citadelfs_monitor_collector_up", "Whether the collector succeeded in the latest cycle.", b2f(c.OK), "collector", c.Name)
		w.gauge("citadelfs_monitor_collector_duration_seconds", "How long the collector took in the latest cycle.", c.Seconds, "collector", c.Name)
	}
	if s.System != nil {
		systemMetrics(w, s.System)
	}
	if s.GPUs != nil {
		gpuMetrics(w, s.GPUs)
	}
	for _, m := range s.Models {
		port := strconv.Itoa(m.Port)
		w.gauge("citadelfs_model_up", "Whether the model service's /health answered 2xx.", b2f(m.State == ModelHealthy), "model", m.Name, "port", port)
		if m.State != ModelDown {
			w.gauge("citadelfs_model_health_latency_seconds", "How long /health took to answer (or to time out).", m.LatencySeconds, "model", m.Name, "port", port)
		}
		if m.HTTPStatus != 0 {
			w.gauge("citadelfs_model_health_http_status", "HTTP status code of /health.", float64(m.HTTPStatus), "model", m.Name, "port", port)
		}
		if m.Metrics != nil {
			w.gauge("citadelfs_model_metrics_endpoint_up", "Whether the model service's /metrics answered 2xx.", b2f(*m.Metrics), "model", m.Name, "port", port)
		}
	}
	for _, u := range s.Units {
		if u.State == UnitUnknown {
			continue // absent series: the state is not known
		}
		for _, state := range []string{"activating", "active", "deactivating", "failed", "inactive"} {
			w.gauge("citadelfs_systemd_unit_state", "Systemd unit state (1 for the current one).", b2f(u.State == state), "name", u.Name, "state", state)
		}
	}
	if s.Backup != nil {
		backupMetrics(w, s.Backup)
	}
	// Counts only: one series per alert would be Prometheus's own ALERTS
	// under another name, and the alerts themselves go to Alertmanager.
	counts := map[[2]string]int{}
	for _, a := range alerts {
		counts[[2]string{a.Severity, a.State}]++
	}
	for _, sev := range []string{SeverityCritical, SeverityWarning} {
		for _, state := range []string{StateFiring, StatePending} {
			w.gauge("citadelfs_alerts", "Number of active alerts by severity and state.", float64(counts[[2]string{sev, state}]), "severity", sev, "state", state)
		}
	}
	return w
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func systemMetrics(w *promWriter, st *SystemStats) {
	if c := st.CPU; c != nil {
		// Busy share is rate() of these; the monitor's own per-core and
		// total percentages stay in metrics.json. A cpu="all" series next
		// to the per-CPU ones would make sum() count every core twice.
		for i, t := range c.Seconds {
			cpu := strconv.Itoa(i)
			for _, m := range []struct {
				mode string
				v    float64
			}{{"user", t.User}, {"nice", t.Nice}, {"system", t.System}, {"idle", t.Idle}, {"iowait", t.Iowait}, {"irq", t.IRQ}, {"softirq", t.SoftIRQ}, {"steal", t.Steal}} {
				w.counter("citadelfs_cpu_seconds_total", "Seconds the CPUs spent in each mode.", m.v, "cpu", cpu, "mode", m.mode)
			}
		}
	}
	if l := st.Load; l != nil {
		w.gauge("citadelfs_load1", "1m load average.", l.Load1)
		w.gauge("citadelfs_load5", "5m load average.", l.Load5)
		w.gauge("citadelfs_load15", "15m load average.", l.Load15)
	}
	if m := st.Memory; m != nil {
		w.gauge("citadelfs_memory_total_bytes", "Physical memory (MemTotal).", float64(m.Total))
		w.gauge("citadelfs_memory_available_bytes", "Memory available for new work without swapping (MemAvailable).", float64(m.Available))
		w.gauge("citadelfs_memory_free_bytes", "Unused memory (MemFree).", float64(m.Free))
		w.gauge("citadelfs_memory_cached_bytes", "Page cache (Cached).", float64(m.Cached))
		w.gauge("citadelfs_memory_buffers_bytes", "Block device buffers (Buffers).", float64(m.Buffers))
	}
	if sw := st.Swap; sw != nil {
		w.gauge("citadelfs_swap_total_bytes", "Swap space (SwapTotal).", float64(sw.Total))
		w.gauge("citadelfs_swap_free_bytes", "Unused swap space (SwapFree).", float64(sw.Free))
	}
	for _, m := range st.Mounts {
		l := []string{"device", m.Device, "fstype", m.FSType, "mountpoint", m.Mountpoint}
		w.gauge("citadelfs_filesystem_device_error", "Whether an error occurred while getting statistics for the given device.", b2f(m.Usage == nil), l...)
		w.gauge("citadelfs_filesystem_readonly", "Filesystem read-only status.", b2f(m.ReadOnly), l...)
		if u := m.Usage; u != nil {
			w.gauge("citadelfs_filesystem_size_bytes", "Filesystem size in bytes.", float64(u.Total), l...)
			w.gauge("citadelfs_filesystem_free_bytes", "Filesystem free space in bytes.", float64(u.Free), l...)
			w.gauge("citadelfs_filesystem_avail_bytes", "Filesystem space available to non-root users in bytes.", float64(u.Avail), l...)
			w.gauge("citadelfs_filesystem_files", "Filesystem total file nodes.", float64(u.Files), l...)
			w.gauge("citadelfs_filesystem_files_free", "Filesystem total free file nodes.", float64(u.FilesFree), l...)
		}
	}
	for _, p := range st.Paths {
		w.gauge("citadelfs_path_present", "Whether the watched path exists.", b2f(!p.Absent), "path", p.Path)
		if u := p.Usage; u != nil {
			l := []string{"path", p.Path, "mountpoint", p.Mountpoint}
			w.gauge("citadelfs_path_filesystem_size_bytes", "Size of the file system holding the watched path.", float64(u.Total), l...)
			w.gauge("citadelfs_path_filesystem_avail_bytes", "Space available to non-root users on the watched path's file system.", float64(u.Avail), l...)
			w.gauge("citadelfs_path_filesystem_used_ratio", "Used share of the watched path's file system, as df counts it.", u.UsedPercent/100, l...)
		}
	}
	for _, d := range st.Disks {
		w.counter("citadelfs_disk_read_bytes_total", "The total number of bytes read successfully.", float64(d.ReadBytes), "device", d.Device)
		w.counter("citadelfs_disk_written_bytes_total", "The total number of bytes written successfully.", float64(d.WrittenBytes), "device", d.Device)
		w.counter("citadelfs_disk_reads_completed_total", "The total number of reads completed successfully.", float64(d.Reads), "device", d.Device)
		w.counter("citadelfs_disk_writes_completed_total", "The total number of writes completed successfully.", float64(d.Writes), "device", d.Device)
		w.counter("citadelfs_disk_io_time_seconds_total", "Total seconds spent doing I/Os.", d.IOTimeSeconds, "device", d.Device)
	}
	for _, n := range st.Network {
		w.counter("citadelfs_network_receive_bytes_total", "Bytes received by the network device.", float64(n.RxBytes), "device", n.Interface)
		w.counter("citadelfs_network_transmit_bytes_total", "Bytes sent by the network device.", float64(n.TxBytes), "device", n.Interface)
		w.counter("citadelfs_network_receive_packets_total", "Packets received by the network device.", float64(n.RxPackets), "device", n.Interface)
		w.counter("citadelfs_network_transmit_packets_total", "Packets sent by the network device.", float64(n.TxPackets), "device", n.Interface)
		w.counter("citadelfs_network_receive_errs_total", "Receive errors of the network device.", float64(n.RxErrors), "device", n.Interface)
		w.counter("citadelfs_network_transmit_errs_total", "Transmit errors of the network device.", float64(n.TxErrors), "device", n.Interface)
		w.counter("citadelfs_network_receive_drop_total", "Received packets the network device dropped.", float64(n.RxDrops), "device", n.Interface)
		w.counter("citadelfs_network_transmit_drop_total", "Outgoing packets the network device dropped.", float64(n.TxDrops), "device", n.Interface)
	}
}

func gpuMetrics(w *promWriter, g *GPUStats) {
	w.gauge("citadelfs_gpus", "Number of NVIDIA GPUs NVML reports (0 without driver or GPU).", float64(len(g.Devices)))
	for _, d := range g.Devices {
		id := []string{"gpu", strconv.Itoa(d.Index), "uuid", d.UUID}
		w.gauge("citadelfs_gpu_info", "GPU identity (always 1).", 1, "gpu", strconv.Itoa(d.Index), "uuid", d.UUID, "name", d.Name, "driver_version", g.Driver)
		if d.UtilizationPercent != nil {
			w.gauge("citadelfs_gpu_utilization_ratio", "Share of time a kernel was running over the driver's sample period.", *d.UtilizationPercent/100, id...)
		}
		if d.MemoryUtilizationPercent != nil {
			w.gauge("citadelfs_gpu_memory_utilization_ratio", "Share of time device memory was read or written.", *d.MemoryUtilizationPercent/100, id...)
		}
		if d.MemoryUsed != nil {
			w.gauge("citadelfs_gpu_memory_used_bytes", "Device memory in use.", float64(*d.MemoryUsed), id...)
		}
		if d.MemoryTotal != nil {
			w.gauge("citadelfs_gpu_memory_total_bytes", "Device memory size.", float64(*d.MemoryTotal), id...)
		}
		if d.TemperatureC != nil {
			w.gauge("citadelfs_gpu_temperature_celsius", "GPU core temperature.", *d.TemperatureC, id...)
		}
		if d.PowerWatts != nil {
			w.gauge("citadelfs_gpu_power_watts", "Power draw.", *d.PowerWatts, id...)
		}
		if d.PowerLimitWatts != nil {
			w.gauge("citadelfs_gpu_power_limit_watts", "Enforced power limit.", *d.PowerLimitWatts, id...)
		}
		if d.ECCUncorrected != nil {
			w.counter("citadelfs_gpu_ecc_uncorrected_errors_total", "Uncorrected ECC errors since the driver loaded.", float64(*d.ECCUncorrected), id...)
		}
		if d.XIDErrors != nil {
			w.counter("citadelfs_gpu_xid_errors_total", "Critical XID events seen since the monitor started.", float64(*d.XIDErrors), id...)
		}
		if d.LastXID != nil {
			w.gauge("citadelfs_gpu_last_xid", "Code of the latest critical XID event (dcgm-exporter's DCGM_FI_DEV_XID_ERRORS).", float64(*d.LastXID), id...)
			w.gauge("citadelfs_gpu_last_xid_timestamp_seconds", "When the monitor read the latest critical XID event.", float64(d.LastXIDTime.UnixNano())/1e9, id...)
		}
		if d.RetiredPagesPending != nil {
			w.gauge("citadelfs_gpu_retired_pages_pending", "Whether memory pages wait to be retired at the next driver reload.", b2f(*d.RetiredPagesPending), id...)
		}
		if d.RowRemapPending != nil {
			w.gauge("citadelfs_gpu_row_remap_pending", "Whether memory rows wait to be remapped at the next GPU reset.", b2f(*d.RowRemapPending), id...)
			w.gauge("citadelfs_gpu_row_remap_failed", "Whether a memory row remap failed.", b2f(*d.RowRemapFailed), id...)
			w.gauge("citadelfs_gpu_remapped_rows", "Memory rows remapped, by the kind of error that caused it.", float64(*d.RemappedRowsCorrectable), append(id, "cause", "correctable")...)
			w.gauge("citadelfs_gpu_remapped_rows", "", float64(*d.RemappedRowsUncorrectable), append(id, "cause", "uncorrectable")...)
		}
		for _, r := range d.Throttle {
			w.gauge("citadelfs_gpu_throttle_reason", "Active clock throttle reasons (1 each).", 1, "gpu", strconv.Itoa(d.Index), "uuid", d.UUID, "reason", r)
		}
		w.gauge("citadelfs_gpu_processes", "Compute processes running on the GPU.", float64(len(d.Processes)), id...)
	}
}

func backupMetrics(w *promWriter, b *BackupStatus) {
	w.gauge("citadelfs_backup_configured", "Whether a repository is configured and readable.", b2f(b.Configured))
	if !b.Configured {
		return
	}
	if b.RepoBytes != nil {
		w.gauge("citadelfs_repository_size_bytes", "Repository size on disk.", float64(*b.RepoBytes), "repo", b.Repo)
	}
	if u := b.FS; u != nil {
		w.gauge("citadelfs_backup_filesystem_size_bytes", "Size of the file system holding the repository.", float64(u.Total), "repo", b.Repo)
		w.gauge("citadelfs_backup_filesystem_avail_bytes", "Space available on the repository's file system.", float64(u.Avail), "repo", b.Repo)
		w.gauge("citadelfs_backup_filesystem_used_ratio", "Used share of the repository's file system, as df counts it.", u.UsedPercent/100, "repo", b.Repo)
	}
	for _, s := range b.Sources {
		if !s.LastTime.IsZero() {
			w.gauge("citadelfs_backup_last_snapshot_timestamp_seconds", "Start time of the source's last snapshot attempt.", float64(s.LastTime.UnixNano())/1e9, "source", s.Label)
			w.gauge("citadelfs_backup_last_duration_seconds", "Duration of the source's last snapshot attempt.", s.LastDurationSeconds, "source", s.Label)
		}
		for _, r := range []string{index.AttemptOK, index.AttemptPartial, index.AttemptFailed} {
			if s.LastResult != "" {
				w.gauge("citadelfs_backup_last_result", "Result of the source's last snapshot attempt (1 for the current one).", b2f(s.LastResult == r), "source", s.Label, "result", r)
			}
		}
		if !s.LastSuccess.IsZero() {
			w.gauge("citadelfs_backup_last_success_timestamp_seconds", "Time of the source's last committed snapshot.", float64(s.LastSuccess.UnixNano())/1e9, "source", s.Label)
		}
		if s.AgeSeconds != nil {
			w.gauge("citadelfs_backup_age_seconds", "Age of the source's last committed snapshot.", *s.AgeSeconds, "source", s.Label)
		}
		w.gauge("citadelfs_backup_max_age_seconds", "Age the source's schedule allows.", s.MaxAgeSeconds, "source", s.Label)
	}
	if in := b.Integrity; in != nil {
		// A counter: it carries over a daemon restart and falls to 0 when
		// a full check passes, which rate() and increase() take as a
		// counter reset.
		w.counter("citadelfs_backup_corrupt_reads_total", "Reads through the mount answered with EIO because repository data failed its hash check, since the last full check --read-data that passed.", float64(in.CorruptReads), "repo", b.Repo)
		w.gauge("citadelfs_backup_corrupt_files", "Distinct paths in the mount whose reads found corrupt data, since the last full check --read-data that passed (counted up to a bound per daemon run).", float64(in.CorruptFiles), "repo", b.Repo)
		if !in.LastTime.IsZero() {
			w.gauge("citadelfs_backup_last_corrupt_read_timestamp_seconds", "Time of the latest read that found corrupt repository data.", float64(in.LastTime.UnixNano())/1e9, "repo", b.Repo)
		}
	}
	if !b.Created.IsZero() {
		w.gauge("citadelfs_repository_created_timestamp_seconds", "When the repository was made.", float64(b.Created.UnixNano())/1e9, "repo", b.Repo)
	}
	for _, m := range b.Maintenance {
		w.gauge("citadelfs_backup_maintenance_last_run_timestamp_seconds", "Start time of the last run of forget or prune.", float64(m.Time.UnixNano())/1e9, "repo", b.Repo, "op", m.Op)
		for _, r := range []string{index.MaintenanceOK, index.MaintenanceFailed} {
			w.gauge("citadelfs_backup_maintenance_last_result", "Result of the last run of forget or prune (1 for the current one).", b2f(m.Result == r), "repo", b.Repo, "op", m.Op, "result", r)
		}
	}
	if c := b.LastCheck; c != nil {
		w.gauge("citadelfs_backup_last_check_timestamp_seconds", "Start time of the repository's last check run.", float64(c.Ran().UnixNano())/1e9, "repo", b.Repo)
		w.gauge("citadelfs_backup_last_check_errors", "Problems (corrupt or missing data) the repository's last check run found.", float64(c.Errors), "repo", b.Repo)
	}
	if tr := b.TestRestore; tr != nil && tr.Last != nil {
		w.gauge("citadelfs_backup_last_test_restore_timestamp_seconds", "Start time of the repository's last test restore (citadelfs test-restore).", float64(tr.Last.Time.UnixNano())/1e9, "repo", b.Repo)
		w.gauge("citadelfs_backup_last_test_restore_errors", "Files the last test restore found damaged (0 when it passed; 1 with the result failed when it could not run).", float64(testRestoreErrors(tr.Last)), "repo", b.Repo)
	}
}

// testRestoreErrors is the errors gauge of a test restore: a run that
// could not run counts as one, so that the gauge alone tells a failure.
func testRestoreErrors(c *TestRestoreState) int {
	if c.Result == index.CheckFailed && c.Errors == 0 {
		return 1
	}
	return c.Errors
}
