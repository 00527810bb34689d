package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/pflag"
)

var systemdFlags struct {
	install bool
	dir     string
	bin     string
}

func init() {
	register(&command{
		name:    "systemd",
		summary: "print (or --install) the systemd units: the mount daemon and snapshot, retention and check timers",
		usage:   "[--install [--dir /etc/systemd/system]] [--bin /usr/local/bin/citadelfs]",
		flags: func(fs *pflag.FlagSet) {
			fs.BoolVar(&systemdFlags.install, "install", false, "write the unit files into --dir (then: systemctl daemon-reload && systemctl enable --now citadelfs-mount.service citadelfs-*.timer)")
			fs.StringVar(&systemdFlags.dir, "dir", "/etc/systemd/system", "where --install writes the units")
			fs.StringVar(&systemdFlags.bin, "bin", "", "path of the citadelfs binary in the units (default: this binary)")
		},
		run: func(ctx context.Context, env *cmdEnv, args []string) error {
			cfg, err := env.config()
			if err != nil {
				return err
			}
			bin := systemdFlags.bin
			if bin == "" {
				if bin, err = os.Executable(); err != nil {
					bin = "/usr/local/bin/citadelfs"
				}
			}
			units := systemdUnits(bin, env.global.configPath, cfg)
			names := make([]string, 0, len(units))
			for n := range units {
				names = append(names, n)
			}
			sort.Strings(names)
			if !systemdFlags.install {
				for _, n := range names {
					fmt.Fprintf(env.stdout, "# %s\n%s\n", n, units[n])
				}
				return nil
			}
			for _, n := range names {
				p := filepath.Join(systemdFlags.dir, n)
				if err := os.WriteFile(p, []byte(units[n]), 0o644); err != nil {
					return fmt.Errorf("systemd: %w", err)
				}
				fmt.Fprintf(env.stdout, "wrote %s\n", p)
			}
			fmt.Fprintln(env.stdout, "now: systemctl daemon-reload && systemctl enable --now citadelfs-mount.service "+
				strings.Join(timerNames(names), " "))
			return nil
		},
	})
}

func timerNames(names []string) []string {
	var out []string
	for _, n := range names {
		if strings.HasSuffix(n, ".timer") {
			out = append(out, n)
		}
	}
	return out
}

// sourceSchedule is how often each source is snapshotted: configs change
// by hand and matter most, logs grow all day, models change rarely and are
// large (the seed's cron schedule).
func sourceSchedule(label string) string {
	switch label {
	case "configs":
		return "*:0/15"
	case "logs":
		return "hourly"
	default:
		return "*-*-* 02:00:00"
	}
}

// systemdUnits renders one service+timer per configured source (so each
// keeps its own schedule), the mount daemon, retention and a weekly check.
// Snapshot services are oneshots: while the mount daemon runs they hand
// their work to it over its socket.
func systemdUnits(bin, config string, cfg *config) map[string]string {
	// run renders a command line; flags follow the command name.
	run := func(cmd string) string { return fmt.Sprintf("%s %s --config %s", bin, cmd, config) }
	u := map[string]string{}
	u["citadelfs-mount.service"] = fmt.Sprintf(`[Unit]
Description=citadelfs: snapshots mounted at %s, repository owner, monitor
After=local-fs.target network-online.target

[Service]
Type=notify
ExecStart=%s %s
KillSignal=SIGTERM
TimeoutStopSec=60
Restart=on-failure
RestartSec=5

[Install]
WantedBy=multi-user.target
`, cfg.Mountpoint, run("mount"), cfg.Mountpoint)
	for _, label := range cfg.sourceLabels() {
		u["citadelfs-snapshot-"+label+".service"] = fmt.Sprintf(`[Unit]
Description=citadelfs snapshot of %s (%s)

[Service]
Type=oneshot
Nice=10
IOSchedulingClass=idle
ExecStart=%s --quiet --source %s
# exit 3: completed with unreadable files (logged above); not a failure of the unit
SuccessExitStatus=3
`, label, cfg.Sources[label], run("snapshot"), label)
		u["citadelfs-snapshot-"+label+".timer"] = fmt.Sprintf(`[Unit]
Description=citadelfs snapshot of %s

[Timer]
OnCalendar=%s
Persistent=true
RandomizedDelaySec=60

[Install]
WantedBy=timers.target
`, label, sourceSchedule(label))
	}
	r := cfg.Retention
	u["citadelfs-forget.service"] = fmt.Sprintf(`[Unit]
Description=citadelfs retention (keep %d daily, %d weekly, %d monthly) and prune

[Service]
Type=oneshot
Nice=10
ExecStart=%s --prune
`, r.Daily, r.Weekly, r.Monthly, run("forget"))
	u["citadelfs-forget.timer"] = `[Unit]
Description=citadelfs retention

[Timer]
OnCalendar=*-*-* 04:30:00
Persistent=true

[Install]
WantedBy=timers.target
`
	u["citadelfs-check.service"] = fmt.Sprintf(`[Unit]
Description=citadelfs integrity check (a tenth of the data each week)

[Service]
Type=oneshot
Nice=15
IOSchedulingClass=idle
ExecStart=%s --read-data --subset 10%%
`, run("check"))
	u["citadelfs-check.timer"] = `[Unit]
Description=citadelfs weekly integrity check

[Timer]
OnCalendar=Sun *-*-* 05:00:00
Persistent=true

[Install]
WantedBy=timers.target
`
	return u
}
