package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// `citadelfs config check` reads the configuration file as every other
// command does, prints each problem on its own line (FILE:LINE: ...) and
// exits 2, or prints the effective configuration and the named warnings of
// keys that are read but have no effect here (docs/config.md).
func init() {
	register(&command{
		name:    "config",
		summary: "check the configuration file and print the effective configuration",
		usage:   "check [--config FILE] [--json]",
		run: func(ctx context.Context, env *cmdEnv, args []string) error {
			if len(args) != 1 || args[0] != "check" {
				return usagef("usage: citadelfs config check [--config FILE] [--json]")
			}
			c, err := loadConfig(env.global.configPath, true)
			if err != nil {
				var ce configUsageError
				if errors.As(err, &ce) {
					for _, l := range ce.list {
						fmt.Fprintln(env.stderr, l)
					}
					return withExit(exitUsage, errSilent)
				}
				return err
			}
			return printConfig(env, c)
		},
	})
}

type effectiveConfig struct {
	File              string                     `json:"file"`
	Repo              string                     `json:"repo"`
	Sources           map[string]any             `json:"sources"`
	Mountpoint        string                     `json:"mountpoint"`
	Retention         retentionConfig            `json:"retention"`
	Schedule          map[string][]scheduleEntry `json:"schedule,omitempty"`
	VerifyAfterBackup bool                       `json:"verify_after_backup"`
	TestRestore       bool                       `json:"test_restore_monthly"`
	TempDir           string                     `json:"temp_dir,omitempty"`
	ParallelJobs      int                        `json:"parallel_jobs,omitempty"`
	ArchiveThreshold  string                     `json:"archive_threshold,omitempty"`
	StorageThreshold  float64                    `json:"storage_threshold,omitempty"`
	Alerting          *alertingView              `json:"alerting,omitempty"`
	Warnings          []configWarning            `json:"warnings"`
}

// alertingView is the alerting: section with its defaults.
type alertingView struct {
	Alertmanager   []string `json:"alertmanager"`
	Webhook        []string `json:"webhook"`
	ResendInterval string   `json:"resend_interval"`
	Timeout        string   `json:"timeout"`
	QueueSize      int      `json:"queue_size"`
	GeneratorURL   string   `json:"generator_url,omitempty"`
}

func printConfig(env *cmdEnv, c *config) error {
	srcs := map[string]any{}
	for l, s := range c.Sources {
		srcs[l] = s.jsonValue()
	}
	e := effectiveConfig{File: env.global.configPath, Repo: c.Repo, Sources: srcs, Mountpoint: c.Mountpoint,
		Retention: c.Retention, Schedule: c.Schedule, VerifyAfterBackup: c.VerifyAfter, TestRestore: c.TestRestore, TempDir: c.TempDir, ParallelJobs: c.ParallelJobs,
		ArchiveThreshold: c.ArchiveAfter, StorageThreshold: c.Monitor.BackupStorageThreshold, Warnings: c.Warnings}
	if e.Warnings == nil {
		e.Warnings = []configWarning{}
	}
	if a := c.Alerting.WithDefaults(); a.Enabled() {
		e.Alerting = &alertingView{Alertmanager: append([]string{}, a.Alertmanager...), Webhook: append([]string{}, a.Webhook...),
			ResendInterval: a.ResendInterval.String(), Timeout: a.Timeout.String(), QueueSize: a.QueueSize, GeneratorURL: a.GeneratorURL}
	}
	if env.global.json {
		enc := json.NewEncoder(env.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(e)
	}
	w := env.stdout
	fmt.Fprintf(w, "%s: ok\n", e.File)
	fmt.Fprintf(w, "repo:        %s\n", e.Repo)
	fmt.Fprintf(w, "mountpoint:  %s\n", e.Mountpoint)
	fmt.Fprintln(w, "sources:")
	for _, l := range c.sourceLabels() {
		src := c.Sources[l]
		fmt.Fprintf(w, "  %-10s %s\n", l, src)
		if len(src.Exclude) > 0 {
			fmt.Fprintf(w, "    exclude  %s\n", strings.Join(src.Exclude, ", "))
		}
		if src.ExcludeCaches || src.OneFileSystem {
			fmt.Fprintf(w, "    exclude_caches %v, one_file_system %v\n", src.ExcludeCaches, src.OneFileSystem)
		}
		if src.Retention != nil {
			fmt.Fprintf(w, "    retention %s\n", src.Retention.describe())
		}
		for _, s := range c.Schedule[l] {
			tag := s.Tag
			if tag == "" {
				tag = "-"
			}
			fmt.Fprintf(w, "    schedule %-8s %s\n", tag, s.Cron)
		}
	}
	fmt.Fprintf(w, "retention:   %s\n", e.Retention.describe())
	fmt.Fprintf(w, "verify after backup: %v; monthly test restore: %v\n", e.VerifyAfterBackup, e.TestRestore)
	if e.TempDir != "" {
		fmt.Fprintf(w, "temp dir (test-restore): %s\n", e.TempDir)
	}
	if e.ParallelJobs != 0 {
		fmt.Fprintf(w, "snapshot workers (parallel_jobs): %d\n", e.ParallelJobs)
	}
	if e.StorageThreshold > 0 {
		fmt.Fprintf(w, "storage threshold: %g\n", e.StorageThreshold)
	}
	if a := e.Alerting; a != nil {
		fmt.Fprintf(w, "alerting:    alertmanager %s; webhook %s; resend every %s\n", orNone(a.Alertmanager), orNone(a.Webhook), a.ResendInterval)
	}
	for _, wn := range e.Warnings {
		fmt.Fprintf(w, "warning %s: %s:%d: %s: %s\n", wn.Name, e.File, wn.Line, wn.Key, wn.Message)
	}
	return nil
}

func orNone(l []string) string {
	if len(l) == 0 {
		return "none"
	}
	return strings.Join(l, ", ")
}
