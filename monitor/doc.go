// Package monitor is citadelfs's embedded monitor: it samples the host,
// its GPUs, its model services, systemd units and the backup state,
// evaluates alert rules on each sample, keeps history in Pebble and renders
// the status files that the mount serves under status/.
//
// It runs inside the `citadelfs mount` daemon (Monitor.Run on an interval)
// and once per `citadelfs monitor --once` or `citadelfs status`
// (Monitor.CollectOnce). It needs no repository and no FUSE; it imports
// only the index package, for its key-value store.
//
// # Collectors
//
// Each source sits behind a small interface, so tests and other platforms
// can swap it through Options:
//
//   - SystemSource (gopsutil): CPU per core and total, load, memory and
//     swap, usage of the configured paths and of every real mount, disk
//     I/O and network counters with their rates. The first reading waits
//     Options.RateWindow so that rates exist from the first sample.
//   - GPUSource (NVML via go-nvml): per GPU utilisation, memory,
//     temperature, power and limit, uncorrected ECC errors, critical XID
//     events, throttle reasons and compute processes. No driver or no GPU
//     is the normal "no GPUs found" state, with no alert and no error.
//   - ModelSource (HTTP): GET /health and /metrics on 127.0.0.1:<port> for
//     each configured model, with a timeout and the latency recorded.
//   - UnitSource (`systemctl is-active`): a machine without systemd reports
//     every unit "unknown", which never alerts.
//   - BackupSource: implemented by cmd/citadelfs from the repository (last
//     snapshot time, result and duration per source, repository size);
//     the monitor measures the repository's file system itself. Without a
//     repository the backup part says so and raises nothing.
//
// # Alert rules
//
// Rules and their defaults (the seed's thresholds) are listed in
// DefaultThresholds and docs/monitor.md. A threshold rule's condition
// starts above Rule.Threshold and, once started, holds until the value is
// at or below Rule.Clear: that gap is the hysteresis that keeps a value
// hovering at the threshold from flapping. A condition is pending until it
// has held for Rule.For, then firing; a firing alert resolves when its
// condition has stayed clear for Rule.ClearFor. Every transition is logged
// through Options.Logger and stored as an Event.
//
// Rules are driven by Options.Clock only, never by the wall clock, so
// tests step time by hand.
//
// # Alert delivery
//
// While Run runs, every cycle's firing and resolved alerts go to the
// Alertmanagers (API v2, the whole state, re-sent every resend_interval
// with endsAt ahead) and webhooks (a JSON array of the transitions) of
// Config.Alerting, from one goroutine and bounded queue per target, with
// retries and backoff; a cycle never waits for a delivery. See notify.go.
//
// # History
//
// Samples ("m/" keys) and alert events ("a/" keys) go into an index.KV —
// the repository's index when the daemon has it open, or the monitor's own
// Pebble directory (OpenHistoryKV) — under keys that begin with a
// big-endian timestamp. Retention (30 days of samples, 7 days of events by
// default) is one DeleteRange per prefix, run hourly: trimming never
// rewrites what is kept. On start, firing alerts are restored from the
// events, so a restarted daemon keeps an alert's original times; pending
// ones too when the history has a sample from the last two intervals, so
// that `monitor --once` run by a timer carries a condition through its
// `for` from one run to the next.
//
// # Status files
//
// Monitor has StatusFiles and Render, the shape of fs.StatusSource:
// alerts, alerts.json, metrics (Prometheus text format: citadelfs_*
// series only, through client_golang's registry with the process and Go
// collectors; see prometheus.go for why), metrics.json, health, gpus,
// models and backup. Render reads only the latest published sample and
// alert list, both immutable once published, so every open renders a
// consistent document without collecting (metrics adds the process
// collector's read of /proc/self, a few small files); backup alone asks
// the BackupSource afresh (records in the index, one statfs), so a
// snapshot just committed shows at once.
//
// Text that two places show is formatted here once: WriteBackup is both
// status/backup and the BACKUPS section of `citadelfs status`, GPUCellsOf
// both status/gpus' and the GPUS section's numbers.
//
// # Errors
//
// Errors are prefixed "monitor:". A failing collector never fails a cycle:
// its part of the sample is left out (rules that need it keep their
// alerts' states rather than resolving them for lack of data), the failure
// is recorded in Sample.Collectors, and the collector_error rule warns
// when it persists. A collector that panics fails alone. History write
// failures are logged and do not stop collection. CollectOnce returns an
// error only when its context ends.
//
// # Concurrency
//
// Collectors of one cycle run in parallel, each bounded by
// Options.CollectTimeout; a collector stuck in a call that ignores its
// context (statfs on a hung mount, a wedged driver) is abandoned and
// skipped until it returns, so it never blocks the loop or piles up
// goroutines. Cycles run one at a time. Render, Latest and Alerts may be
// called from any goroutine at any time, including the FUSE handlers.
package monitor
