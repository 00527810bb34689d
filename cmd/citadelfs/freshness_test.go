package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"citadelfs/monitor"
)

func TestLongestCronGap(t *testing.T) {
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		crons []string
		want  time.Duration
	}{
		{[]string{"*/15 * * * *"}, 15 * time.Minute},
		{[]string{"0 * * * *"}, time.Hour},
		{[]string{"@daily"}, 24 * time.Hour},
		{[]string{"0 2 * * *", "0 3 * * 0", "0 4 1 * *"}, 24 * time.Hour}, // the seed's models
		{[]string{"0 3 * * 0"}, 7 * 24 * time.Hour},
		{[]string{"0 4 1 * *"}, 31 * 24 * time.Hour},
		{[]string{"0 9 * * 1-5"}, 72 * time.Hour}, // Friday to Monday
		{[]string{"0 0 1 1 *"}, 365 * 24 * time.Hour},
		{[]string{"0 6,18 * * *", "30 12 * * *"}, 12 * time.Hour},
	} {
		got, err := longestCronGap(c.crons, from, freshnessWindow)
		if err != nil || got != c.want {
			t.Errorf("%q: %v %v, want %v", c.crons, got, err, c.want)
		}
	}
	if _, err := longestCronGap([]string{"@reboot"}, from, freshnessWindow); err == nil {
		t.Error("@reboot has a gap")
	}
	// Local time, as systemd reads OnCalendar: the night the clocks go
	// back, a daily 02:30 is 25 hours after the one before.
	if ny, err := time.LoadLocation("America/New_York"); err == nil {
		got, _ := longestCronGap([]string{"30 2 * * *"}, time.Date(2026, 1, 1, 0, 0, 0, 0, ny), freshnessWindow)
		if got != 25*time.Hour {
			t.Errorf("daily across DST: %v, want 25h", got)
		}
	}
}

// A source snapshotted every 15 minutes is stale (backup_stale) after
// about 30 minutes, not after the 26 hours every source used to get; a
// source without a schedule (daily) is not stale then.
func TestFreshnessFollowsSchedule(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"configs", "data"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
		os.WriteFile(filepath.Join(dir, d, "f"), []byte(d), 0o644)
	}
	cfgPath, _ := monitorConfig(t, "", fmt.Sprintf("repo: %s/repo\nsources:\n  configs: %s/configs\n  data: %s/data\nschedule:\n  configs: \"*/15 * * * *\"\n", dir, dir, dir))
	run(t, "init", "--encryption", "none", "--config", cfgPath)
	run(t, "snapshot", "--config", cfgPath)

	stale := func(after time.Duration) map[string]monitor.SourceStatus {
		t.Helper()
		env := &cmdEnv{stdout: io.Discard, stderr: io.Discard, global: &globalFlags{configPath: cfgPath}, flags: pflag.NewFlagSet("x", pflag.ContinueOnError)}
		cfg, err := env.config()
		if err != nil {
			t.Fatal(err)
		}
		src, release, err := backupSourceFor(context.Background(), env)
		if err != nil {
			t.Fatal(err)
		}
		defer release()
		mc, err := monitorConfigFor(env, cfg, cfg.Repo)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now().Add(after)
		m, err := monitor.New(monitor.Options{Config: mc, Backup: src, Clock: func() time.Time { return now }, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		rep, err := m.CollectOnce(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]monitor.SourceStatus{}
		for _, a := range rep.Alerts {
			if a.Rule == monitor.RuleBackupStale {
				for _, s := range rep.Sample.Backup.Sources {
					if s.Label == a.Subject {
						out[a.Subject] = s
					}
				}
			}
		}
		if after == 0 {
			for _, s := range rep.Sample.Backup.Sources {
				out["limit:"+s.Label] = s
			}
		}
		return out
	}
	now := stale(0)
	if _, ok := now["configs"]; ok {
		t.Fatal("stale right after the snapshot")
	}
	lim := now["limit:configs"].MaxAgeSeconds
	if lim < 1800 || lim > 1860 {
		t.Errorf("configs may be %.0fs old, want 30 minutes (plus the snapshot's duration)", lim)
	}
	if d := now["limit:data"].MaxAgeSeconds; d < 26*3600 || d > 26*3600+60 {
		t.Errorf("data (daily by default) may be %.0fs old, want 26h", d)
	}
	if s := stale(20 * time.Minute); len(s) != 0 {
		t.Errorf("stale after 20 minutes: %v", s)
	}
	s := stale(31 * time.Minute)
	if _, ok := s["configs"]; !ok {
		t.Error("configs not stale after 31 minutes of a 15-minute schedule")
	}
	if _, ok := s["data"]; ok {
		t.Error("daily data stale after 31 minutes")
	}
}

func BenchmarkSourceMaxAges(b *testing.B) {
	cfg, err := loadConfig(seedFixture, true)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		sourceMaxAges(cfg, time.Now())
	}
}
