package main

import (
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// unitParams are the absolute paths the units name.
type unitParams struct {
	bin, config, repo string
	repoFlag          bool // pass --repo (it did not come from the config)
	// remote: repo is s3://; cacheDir is its index cache ("" for
	// CacheDirectory=citadelfs); flags are the --cache-dir and --s3-*
	// flags systemd was given, passed on.
	remote   bool
	cacheDir string
	flags    []string
	// storeLocal: repo is a local encrypted repository (the store
	// layout), whose index cache (cacheDir, or CacheDirectory=citadelfs)
	// is written besides it.
	storeLocal bool
	// passwordFile is the config's password_file: every unit that opens
	// the repository loads it as the credential citadelfs-password.
	passwordFile string
}

// credentialLines is the LoadCredential= of a unit that opens the
// repository: the passphrase reaches the command as
// $CREDENTIALS_DIRECTORY/citadelfs-password (a file only that unit's
// processes can read), and the unit file names only where it is.
func (p unitParams) credentialLines() string {
	if p.passwordFile == "" {
		return ""
	}
	return "# the repository's passphrase, read by citadelfs from $CREDENTIALS_DIRECTORY (docs/encryption.md)\n" +
		"LoadCredential=" + credentialName + ":" + strings.ReplaceAll(p.passwordFile, "%", "%%") + "\n"
}

// copyCredentialLines is the LoadCredential= of a unit that opens the
// config's copy target (the copy service, and the mount daemon that runs
// the copy of the repository it owns): copy.password_file as the
// credential citadelfs-to-password.
func copyCredentialLines(cfg *config) string {
	if cfg.Copy.PasswordFile == "" {
		return ""
	}
	return "# the copy target's passphrase, read by citadelfs copy from $CREDENTIALS_DIRECTORY (docs/s3.md)\n" +
		"LoadCredential=" + toCredentialName + ":" + strings.ReplaceAll(cfg.Copy.PasswordFile, "%", "%%") + "\n"
}

// Default times. A source without a schedule is snapshotted daily at
// 02:00, with a weekly full read on Sunday at 03:00 (the seed's models
// times); every source without an entry tagged weekly gets that weekly full
// read too.
const (
	defaultDailyCron  = "0 2 * * *"
	defaultWeeklyCron = "0 3 * * 0"
	// The maintenance timers' defaults (timers: in the config overrides
	// them with cron strings).
	forgetOnCalendar = "*-*-* 04:30:00"
	checkOnCalendar  = "Sun *-*-* 05:00:00"
	// testRestoreOnCalendar: the 2nd of the month, after the seed's
	// monthly snapshot on the 1st at 04:00 has had a day to finish.
	testRestoreOnCalendar = "*-*-02 06:00:00"
	// copyOnCalendar: daily, after the seed's 02:00 snapshots and before
	// retention at 04:30 forgets what it might have copied.
	copyOnCalendar = "*-*-* 03:30:00"
)

// snapshotTimer is one scheduled snapshot of one source.
type snapshotTimer struct {
	Label, Tag string
	Cron       string // as written in the config (or the default)
	OnCalendar string
	// ReadAll: the weekly run reads every file again ("weekly full"),
	// catching files changed through mmap with size and times unchanged.
	ReadAll bool
	// Default: not in the config.
	Default bool
}

// unitBase is the unit name stem: citadelfs-snapshot-LABEL[-TAG].
func (t snapshotTimer) unitBase() string {
	if t.Tag == "" {
		return "citadelfs-snapshot-" + t.Label
	}
	return "citadelfs-snapshot-" + t.Label + "-" + t.Tag
}

// snapshotTimers is every source's schedule from the config (cron strings
// converted to OnCalendar), with the defaults filled in. A schedule for a
// label that is not a source is returned as a warning.
func snapshotTimers(cfg *config) ([]snapshotTimer, []string, error) {
	var out []snapshotTimer
	var warnings []string
	for _, label := range cfg.sourceLabels() {
		entries := cfg.Schedule[label]
		def := len(entries) == 0
		if def {
			entries = []scheduleEntry{{Tag: "daily", Cron: defaultDailyCron}}
		}
		weekly := false
		for _, e := range entries {
			oc, err := cronToOnCalendar(e.Cron)
			if err != nil {
				return nil, nil, usagef("schedule of %s: %v", label, err)
			}
			t := snapshotTimer{Label: label, Tag: e.Tag, Cron: e.Cron, OnCalendar: oc, ReadAll: e.Tag == "weekly", Default: def}
			weekly = weekly || t.ReadAll
			out = append(out, t)
		}
		if !weekly {
			oc, _ := cronToOnCalendar(defaultWeeklyCron)
			out = append(out, snapshotTimer{Label: label, Tag: "weekly", Cron: defaultWeeklyCron, OnCalendar: oc, ReadAll: true, Default: true})
		}
	}
	for label := range cfg.Schedule {
		if _, ok := cfg.Sources[label]; !ok {
			warnings = append(warnings, fmt.Sprintf("schedule for %q ignored: no source of that label is configured", label))
		}
	}
	sort.Strings(warnings)
	return out, warnings, nil
}

// systemdUnits renders every unit. Snapshot services are oneshots: while
// the mount daemon runs they hand their work to it over its socket.
func systemdUnits(p unitParams, cfg *config) (map[string]string, []string, error) {
	paths := []struct{ what, path string }{{"binary", p.bin}, {"config", p.config}, {"mountpoint", cfg.Mountpoint}}
	if p.passwordFile != "" {
		if strings.ContainsAny(p.passwordFile, " \t\"'\\") {
			return nil, nil, usagef("password_file %q: systemd's LoadCredential= takes no path with spaces, quotes or backslashes; move it", p.passwordFile)
		}
		paths = append(paths, struct{ what, path string }{"password_file", p.passwordFile})
	}
	if !p.remote {
		paths = append(paths, struct{ what, path string }{"repository", p.repo})
	} else if p.cacheDir != "" {
		paths = append(paths, struct{ what, path string }{"cache directory", p.cacheDir})
	}
	for _, v := range paths {
		if err := unitPathOK(v.what, v.path); err != nil {
			return nil, nil, err
		}
	}
	for _, a := range append([]string{p.repo}, p.flags...) {
		if strings.ContainsFunc(a, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return nil, nil, usagef("%q: control characters cannot go into a unit file", a)
		}
	}
	// systemd refuses an executable path with quotes or backslashes.
	if strings.ContainsAny(p.bin, "\"'\\") {
		return nil, nil, usagef("binary %q: systemd does not run a path with quotes or backslashes; install it elsewhere", p.bin)
	}
	for _, l := range cfg.sourceLabels() {
		for _, sp := range cfg.sourcePaths(l) {
			if err := unitPathOK("source "+l, sp); err != nil {
				return nil, nil, err
			}
		}
	}
	timers, warnings, err := snapshotTimers(cfg)
	if err != nil {
		return nil, nil, err
	}
	// cmdline renders an ExecStart= line: flags follow the command name.
	cmdline := func(cmd string, args ...string) string {
		argv := []string{p.bin, cmd, "--config", p.config}
		if p.repoFlag {
			argv = append(argv, "--repo", p.repo)
		}
		argv = append(argv, p.flags...)
		return execLine(append(argv, args...))
	}
	u := map[string]string{}
	add := func(name string, sections ...string) error {
		if _, dup := u[name]; dup {
			return usagef("two schedules make the unit %s: rename a label or a schedule tag", name)
		}
		u[name] = unitMarker + "\n" + strings.Join(sections, "\n")
		return nil
	}
	net := "Wants=network-online.target\nAfter=network-online.target local-fs.target\n"
	if !p.remote {
		net += "RequiresMountsFor=" + quotePath(p.repo) + "\n"
	} else if p.cacheDir != "" {
		net += "RequiresMountsFor=" + quotePath(p.cacheDir) + "\n"
	}
	// sandbox is the oneshots' confinement for this repository: a local
	// one is the only place they write; an s3:// one is reached over TCP
	// with credentials from the environment file or root's ~/.aws, and
	// its index cache is written locally.
	sandbox := func(caps []string, gpu bool, rwExtra []string, paths ...string) string {
		sb := sandboxOpts{caps: caps, gpu: gpu}
		paths = append(paths, rwExtra...)
		if p.remote {
			sb.network = true
			sb.envFile = filepath.Join(filepath.Dir(p.config), "s3.env")
			if p.cacheDir != "" {
				sb.rw = []string{p.cacheDir}
			} else {
				sb.cacheDirectory = true
			}
			sb.protectHome = "read-only"
		} else {
			sb.rw = []string{p.repo}
			sb.protectHome = protectHomeFor(append([]string{p.repo}, paths...))
			if p.storeLocal {
				if p.cacheDir != "" {
					sb.rw = append(sb.rw, p.cacheDir)
				} else {
					sb.cacheDirectory = true
				}
			}
		}
		sb.rw = append(sb.rw, rwExtra...)
		return p.credentialLines() + oneshotHardening(sb)
	}

	add("citadelfs-mount.service", `[Unit]
Description=citadelfs: snapshots of `+descr(p.repo)+` mounted at `+descr(cfg.Mountpoint)+`, the repository's owner, the monitor
`+net+`
[Service]
Type=notify
NotifyAccess=main
ExecStart=`+cmdline("mount", cfg.Mountpoint)+`
`+mountS3Env(p, cfg)+p.credentialLines()+copyCredentialLines(cfg)+`# The daemon pings the watchdog (WATCHDOG=1) at half this interval, each
# time after its own mount answered a statfs; a hung FUSE server is
# restarted instead of hanging every reader.
WatchdogSec=60s
KillSignal=SIGTERM
TimeoutStopSec=90s
Restart=on-failure
RestartSec=5s
`+mountHardening()+`
[Install]
WantedBy=multi-user.target
`)

	for _, t := range timers {
		args := []string{"--quiet", "--source", t.Label}
		if t.Tag != "" {
			args = append(args, "--tag", t.Tag)
		}
		if t.ReadAll {
			args = append(args, "--read-all")
		}
		if cfg.VerifyAfter && commandHasFlag("snapshot", "verify") {
			args = append(args, "--verify")
		}
		what := t.Tag
		if what != "" {
			what += " "
		}
		full := ""
		if t.ReadAll {
			full = ", every file read again"
		}
		paths := cfg.sourcePaths(t.Label)
		descPaths := make([]string, len(paths))
		for i, sp := range paths {
			descPaths[i] = descr(sp)
		}
		if err := add(t.unitBase()+".service", `[Unit]
Description=citadelfs `+what+`snapshot of `+t.Label+` (`+strings.Join(descPaths, " ")+`)`+full+`
`+net+`After=citadelfs-mount.service

[Service]
Type=oneshot
Nice=10
IOSchedulingClass=idle
ExecStart=`+cmdline("snapshot", args...)+`
# exit 3: completed with unreadable files (logged above); not a failure of the unit
SuccessExitStatus=3
`+retryLocked+sandbox(snapshotCaps, true, nil, paths...)); err != nil {
			return nil, nil, err
		}
		src := "cron " + t.Cron
		if t.Default {
			src = "default " + t.Cron
		}
		if err := add(t.unitBase()+".timer", `[Unit]
Description=citadelfs `+what+`snapshot of `+t.Label+full+`

[Timer]
# `+strings.ReplaceAll(src, "%", "%%")+`
OnCalendar=`+t.OnCalendar+`
Persistent=true
RandomizedDelaySec=60

[Install]
WantedBy=timers.target
`); err != nil {
			return nil, nil, err
		}
	}

	// onCalendar is a maintenance timer's time: the config's cron string
	// (config check has converted it once), or def.
	onCalendar := func(cron, def string) string {
		if cron == "" {
			return def
		}
		oc, err := cronToOnCalendar(cron)
		if err != nil {
			return def // not reached: loadConfig refuses it
		}
		return "# cron " + strings.ReplaceAll(cron, "%", "%%") + "\nOnCalendar=" + oc
	}
	r := cfg.Retention
	add("citadelfs-forget.service", `[Unit]
Description=citadelfs retention (`+descr(r.describe())+`, or each source's own) and prune
`+net+`After=citadelfs-mount.service

[Service]
Type=oneshot
Nice=10
ExecStart=`+cmdline("forget", "--quiet", "--prune")+`
`+retryLocked+sandbox(nil, false, nil))
	add("citadelfs-forget.timer", `[Unit]
Description=citadelfs retention

[Timer]
`+onCalendar(cfg.Timers.Forget, "OnCalendar="+forgetOnCalendar)+`
Persistent=true

[Install]
WantedBy=timers.target
`)
	add("citadelfs-check.service", `[Unit]
Description=citadelfs integrity check (10%% of the data read back)
`+net+`After=citadelfs-mount.service

[Service]
Type=oneshot
Nice=15
IOSchedulingClass=idle
ExecStart=`+cmdline("check", "--quiet", "--read-data", "--subset", "10%")+`
`+retryLocked+sandbox(nil, false, nil))
	add("citadelfs-check.timer", `[Unit]
Description=citadelfs integrity check

[Timer]
`+onCalendar(cfg.Timers.Check, "OnCalendar="+checkOnCalendar)+`
Persistent=true

[Install]
WantedBy=timers.target
`)
	if cfg.Copy.To != "" {
		if err := copyUnits(p, cfg, add, cmdline, net, onCalendar); err != nil {
			return nil, nil, err
		}
	}
	// validation.test_restore_monthly: only with a binary that has the
	// command, so the timer never runs something that is not there.
	if cfg.TestRestore {
		// It compares with the sources (ProtectHome= follows them) and
		// restores into storage.temp_dir: below /tmp or /var/tmp that is
		// the unit's own PrivateTmp=, elsewhere it must be writable.
		var allSources, testRestoreRW []string
		for _, l := range cfg.sourceLabels() {
			allSources = append(allSources, cfg.sourcePaths(l)...)
		}
		if td := cfg.TempDir; td != "" && !within(td, "/tmp") && !within(td, "/var/tmp") {
			if err := unitPathOK("storage.temp_dir", td); err != nil {
				return nil, nil, err
			}
			testRestoreRW = append(testRestoreRW, td)
		}
		if _, ok := commands["test-restore"]; ok {
			add("citadelfs-test-restore.service", `[Unit]
Description=citadelfs test restore (a sample of files restored to a temporary directory and compared)
`+net+`After=citadelfs-mount.service

[Service]
Type=oneshot
Nice=15
IOSchedulingClass=idle
ExecStart=`+cmdline("test-restore", "--quiet")+`
`+retryLocked+sandbox(restoreCaps, false, testRestoreRW, allSources...))
			add("citadelfs-test-restore.timer", `[Unit]
Description=citadelfs test restore

[Timer]
`+onCalendar(cfg.Timers.TestRestore, "OnCalendar="+testRestoreOnCalendar)+`
Persistent=true

[Install]
WantedBy=timers.target
`)
		} else {
			warnings = append(warnings, "validation.test_restore_monthly: this binary has no test-restore command; no test-restore timer generated")
		}
	}
	return u, warnings, nil
}

// retryLocked retries a oneshot that found the repository locked (exit 11:
// another snapshot, a forget or a hand-run command holds it and no mount
// daemon serialises them). Every other failure is final: retrying would
// only record the same failed attempt again.
const retryLocked = `# exit 11 (repository locked by another command) or 14 (the S3 store out
# of reach): try again in 2 minutes
Restart=on-failure
RestartSec=2min
RestartPreventExitStatus=1 2 4 5 10 12 13 130
`

// Capabilities of the oneshots (they run as root, whose other powers are
// dropped). A snapshot must read every file (CAP_DAC_READ_SEARCH) and open
// files it does not own with O_NOATIME (CAP_FOWNER). A test restore writes
// files with their owners and modes back (CAP_CHOWN, CAP_FOWNER, CAP_FSETID
// to keep setuid bits across the chown, CAP_DAC_OVERRIDE to write into the
// read-only directories it restored). Forget and check need none: the
// repository is root's.
var (
	snapshotCaps = []string{"CAP_DAC_READ_SEARCH", "CAP_FOWNER"}
	restoreCaps  = []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID"}
)

// sandboxOpts is what one oneshot may reach.
type sandboxOpts struct {
	rw          []string // written besides its /tmp (the repository, or an s3:// cache)
	caps        []string // the capability bounding set
	protectHome string   // yes or read-only
	// gpu keeps the NVIDIA devices reachable (every other device closed):
	// a snapshot records the driver and CUDA versions in its manifest
	// through NVML, which opens /dev/nvidiactl; PrivateDevices= would
	// leave only the version in /proc/driver/nvidia/version.
	gpu bool
	// network: an s3:// repository, reached over TCP (AF_INET, AF_INET6),
	// with AWS_* credentials from envFile when it is there.
	network bool
	envFile string
	// cacheDirectory: systemd creates /var/cache/citadelfs (the default
	// cache root of an s3:// repository) writable.
	cacheDirectory bool
}

// oneshotHardening confines a oneshot: the whole file system read-only but
// the repository (ProtectSystem=strict), its own /tmp, no devices, no
// kernel tunables, modules, logs or cgroups, only unix sockets (the mount
// daemon's control socket) unless the repository is in S3, no new
// namespaces, the system-service system calls, and only o.caps of root's
// capabilities.
func oneshotHardening(o sandboxOpts) string {
	var b strings.Builder
	if o.envFile != "" {
		b.WriteString("# AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY... (docs/s3.md); else root's ~/.aws\n")
		b.WriteString("EnvironmentFile=-" + descr(o.envFile) + "\n")
	}
	// UMask 0022, as for a hand-run command and the mount daemon: packs
	// written by a timer must be as readable as the others (a user who may
	// read the repository lists and restores read-only).
	b.WriteString(`UMask=0022
NoNewPrivileges=yes
ProtectSystem=strict
`)
	for _, p := range o.rw {
		// "-": a repository that is not there is citadelfs's to report
		// (exit 10), not a namespace setup failure.
		b.WriteString("ReadWritePaths=" + quotePath("-"+p) + "\n")
	}
	if o.cacheDirectory {
		b.WriteString("CacheDirectory=citadelfs\nCacheDirectoryMode=0700\n")
	}
	b.WriteString(`ProtectHome=` + o.protectHome + `
PrivateTmp=yes
`)
	if o.gpu {
		b.WriteString("DevicePolicy=closed\nDeviceAllow=char-nvidia* rw\n")
	} else {
		b.WriteString("PrivateDevices=yes\n")
	}
	families := "AF_UNIX AF_INET AF_INET6"
	if !o.network {
		b.WriteString("PrivateNetwork=yes\n")
		families = "AF_UNIX"
	}
	b.WriteString(`PrivateIPC=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
RestrictAddressFamilies=` + families + `
RestrictNamespaces=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
RemoveIPC=yes
KeyringMode=private
SystemCallArchitectures=native
SystemCallFilter=@system-service
`)
	// @privileged holds chown(2), which a restore needs.
	if !slices.Contains(o.caps, "CAP_CHOWN") {
		b.WriteString("SystemCallFilter=~@privileged\n")
	}
	b.WriteString(`SystemCallErrorNumber=EPERM
CapabilityBoundingSet=` + strings.Join(o.caps, " ") + `
AmbientCapabilities=
`)
	return b.String()
}

// mountHardening is what a FUSE daemon can have. Its mount must appear in
// the host's mount namespace, and every sandboxing option that works by
// remounting (ProtectSystem=, ProtectHome=, PrivateTmp=, PrivateDevices=,
// ReadWritePaths=, ProtectKernelTunables=, ProtectKernelModules=,
// ProtectKernelLogs=, ProtectControlGroups=, ProtectProc=) gives the
// service a namespace of its own, where the mount would be invisible to
// everyone else. Devices are not restricted: /dev/fuse and the GPUs the
// monitor asks nvidia-smi about must stay reachable. The daemon mounts
// (CAP_SYS_ADMIN) and runs the commands handed to it, snapshot and restore
// included, so it keeps their capabilities; it serves --metrics-listen and
// probes model servers over TCP, and reads unit states from systemd.
func mountHardening() string {
	return `UMask=0022
NoNewPrivileges=yes
CapabilityBoundingSet=CAP_SYS_ADMIN CAP_DAC_READ_SEARCH CAP_DAC_OVERRIDE CAP_FOWNER CAP_CHOWN CAP_FSETID CAP_MKNOD CAP_SETFCAP
AmbientCapabilities=
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK
RestrictNamespaces=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
ProtectHostname=yes
KeyringMode=private
SystemCallArchitectures=native
SystemCallFilter=@system-service @mount
SystemCallErrorNumber=EPERM
`
}

// protectHomeFor is ProtectHome= for a service that touches paths: hide
// /home, /root and /run/user unless one of them is below those.
func protectHomeFor(paths []string) string {
	for _, p := range paths {
		for _, h := range []string{"/home", "/root", "/run/user"} {
			if within(p, h) {
				return "read-only"
			}
		}
	}
	return "yes"
}

// commandHasFlag reports whether command cmd of this binary has --flag.
func commandHasFlag(cmd, flag string) bool {
	c, ok := commands[cmd]
	if !ok {
		return false
	}
	return newFlagSet(c, &globalFlags{}).Lookup(flag) != nil
}

// unitPathOK refuses what cannot be written into a unit file: a relative
// path (systemd runs units from /) and control characters (a newline would
// end the setting and start another).
func unitPathOK(what, p string) error {
	if !filepath.IsAbs(p) {
		return usagef("%s %q: the units need an absolute path", what, p)
	}
	for _, r := range p {
		if r < 0x20 || r == 0x7f {
			return usagef("%s %q: a path with control characters cannot go into a unit file", what, p)
		}
	}
	return nil
}

// execLine quotes argv for ExecStart=: each word in double quotes with \
// and " escaped, % (specifiers) as %%, and $ (environment variables) as $$
// except in the executable's path, which systemd does not expand.
func execLine(argv []string) string {
	words := make([]string, len(argv))
	for i, a := range argv {
		q := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `%`, `%%`).Replace(a)
		if i > 0 {
			q = strings.ReplaceAll(q, "$", "$$")
		}
		words[i] = `"` + q + `"`
	}
	return strings.Join(words, " ")
}

// quotePath quotes a path for ReadWritePaths= and RequiresMountsFor=
// (unquoted and specifier-expanded, no environment variables).
func quotePath(p string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, `%`, `%%`).Replace(p) + `"`
}

// descr is a path in Description=, where only specifiers are expanded.
func descr(s string) string { return strings.ReplaceAll(s, "%", "%%") }

// mountS3Env gives the mount daemon the S3 credentials when the
// repository or the config's copy target is in S3: the daemon reads and
// locks an s3:// repository itself, and the copy timer's command runs
// inside the daemon (commands handed over its socket carry no
// environment). The daemon of an s3:// repository also writes its index
// cache (--cache-dir, else /var/cache/citadelfs/<repository id>, which
// the oneshots' CacheDirectory=citadelfs names too, so their commands
// find its socket there): mountHardening remounts nothing, so that is
// writable as it is; CacheDirectory= is left out of this unit, since a
// mount namespace would hide the mount.
func mountS3Env(p unitParams, cfg *config) string {
	var what []string
	if p.remote {
		what = append(what, "the repository "+descr(p.repo))
	}
	if isRemote(cfg.Copy.To) {
		what = append(what, "copy to "+descr(cfg.Copy.To))
	}
	if len(what) == 0 {
		return ""
	}
	return "# AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY... for " + strings.Join(what, " and ") + " (docs/s3.md); else root's ~/.aws\n" +
		"EnvironmentFile=-" + descr(filepath.Join(filepath.Dir(p.config), "s3.env")) + "\n"
}

// copyUnits is citadelfs-copy.service and its timer, for the config's
// copy: section: `citadelfs copy --quiet` copies every snapshot the
// target lacks (copy.to and copy.cache_dir come from the config). It may
// write the source's repository or cache (a directory repository's open
// may adopt orphan packs) and the target's, and reaches the network when
// either side is in S3.
func copyUnits(p unitParams, cfg *config, add func(string, ...string) error,
	cmdline func(string, ...string) string, net string, onCalendar func(cron, def string) string) error {
	to := cfg.Copy.To
	sb := sandboxOpts{protectHome: "read-only"}
	side := func(loc, cache string) error {
		switch {
		case !isRemote(loc):
			if err := unitPathOK("copy target", loc); err != nil {
				return err
			}
			sb.rw = append(sb.rw, filepath.Clean(loc))
			if loc == to && localStoreLayout(loc) { // an encrypted target's cache
				if cache != "" {
					sb.rw = append(sb.rw, cache)
				} else {
					sb.cacheDirectory = true
				}
			}
		case cache != "":
			if err := unitPathOK("copy cache directory", cache); err != nil {
				return err
			}
			sb.rw = append(sb.rw, cache)
			sb.network = true
		default:
			sb.cacheDirectory, sb.network = true, true
		}
		return nil
	}
	if err := side(p.repo, p.cacheDir); err != nil {
		return err
	}
	if p.storeLocal { // a local encrypted repository's cache
		if p.cacheDir != "" {
			sb.rw = append(sb.rw, p.cacheDir)
		} else {
			sb.cacheDirectory = true
		}
	}
	if strings.ContainsFunc(to, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return usagef("copy.to %q: control characters cannot go into a unit file", to)
	}
	if f := cfg.Copy.PasswordFile; f != "" && (!filepath.IsAbs(f) || strings.ContainsAny(f, " \t\"'\\")) {
		return usagef("copy.password_file %q: want an absolute path without spaces, quotes or backslashes (systemd's LoadCredential= loads it)", f)
	}
	if err := side(to, cfg.Copy.CacheDir); err != nil {
		return err
	}
	if sb.network {
		sb.envFile = filepath.Join(filepath.Dir(p.config), "s3.env")
	}
	if !p.remote && !isRemote(to) {
		sb.protectHome = protectHomeFor(sb.rw)
	}
	unitNet := net
	if !isRemote(to) {
		unitNet += "RequiresMountsFor=" + quotePath(filepath.Clean(to)) + "\n"
	}
	if err := add("citadelfs-copy.service", `[Unit]
Description=citadelfs copy of every snapshot to `+descr(to)+` (only the chunks it lacks)
`+unitNet+`After=citadelfs-mount.service

[Service]
Type=oneshot
Nice=10
IOSchedulingClass=idle
ExecStart=`+cmdline("copy", "--quiet")+`
`+retryLocked+p.credentialLines()+copyCredentialLines(cfg)+oneshotHardening(sb)); err != nil {
		return err
	}
	return add("citadelfs-copy.timer", `[Unit]
Description=citadelfs copy to `+descr(to)+`

[Timer]
`+onCalendar(cfg.Copy.Schedule, "OnCalendar="+copyOnCalendar)+`
Persistent=true
RandomizedDelaySec=300

[Install]
WantedBy=timers.target
`)
}
