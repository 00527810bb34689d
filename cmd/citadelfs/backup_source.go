package main

import (
	"context"
	"time"

	"citadelfs/internal/backupsource"
	"citadelfs/internal/fsadapter"
	"citadelfs/monitor"
)

// backupSourceFor gives the monitor the repository's backup state: the
// repository env names (the daemon's own inside the mount daemon), the
// configured sources and their allowed ages, and inside the daemon the
// mount's corrupt-read record. release is called when the command ends.
// Inside the daemon it takes no store lock of its own (openRepoReader).
func backupSourceFor(ctx context.Context, env *cmdEnv) (monitor.BackupSource, func(), error) {
	repo, release, err := openRepoReader(ctx, env)
	if err != nil {
		return nil, nil, err
	}
	var labels []string
	testRestore := false
	var maxAge map[string]time.Duration
	var expire time.Duration
	if cfg, err := env.config(); err == nil {
		labels, testRestore = cfg.sourceLabels(), cfg.TestRestore
		maxAge = sourceMaxAges(cfg, time.Now())
		expire = cfg.Monitor.WithDefaults().BackupMaxAge
	}
	// In the mount daemon (its own monitor, or a command handed to
	// it) the monitor sees the mount's corrupt reads.
	var integrity *fsadapter.CorruptReadRecord
	if env.daemon != nil {
		integrity = env.daemon.integrity
	}
	return &backupsource.Source{Repo: repo, Labels: labels, MaxAge: maxAge, ExpireAfter: expire, Integrity: integrity, TestRestore: testRestore}, release, nil
}
