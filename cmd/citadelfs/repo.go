package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"citadelfs/index"
	"citadelfs/snapshot"
)

// testWrapStore, set only by this package's tests, wraps the pack store of
// the repository a command opens (index.FaultyStore): how a test makes the
// disk store a wrong byte between a snapshot's write and its --verify.
var testWrapStore func(index.Store) index.Store

// openRepo opens the repository for a command. Inside the mount daemon it
// returns the daemon's already-open repository (Pebble admits one process)
// and release does nothing.
func openRepo(ctx context.Context, env *cmdEnv) (*snapshot.Repository, func(), error) {
	return openRepoAs(ctx, env, false)
}

// openRepoReader is openRepo for what only looks at the repository's
// state from inside the mount daemon (the monitor's backup source, alive
// as long as the daemon): it runs under the daemon's reader lock, as the
// mount's reads do, and takes no lock of its own there, or the daemon
// would hold a shared one for its whole life and no host could prune.
func openRepoReader(ctx context.Context, env *cmdEnv) (*snapshot.Repository, func(), error) {
	return openRepoAs(ctx, env, true)
}

func openRepoAs(ctx context.Context, env *cmdEnv, reader bool) (*snapshot.Repository, func(), error) {
	c := env.cmd // nil in tests that build an env by hand
	name := "citadelfs"
	if c != nil {
		name += " " + c.name
	}
	if env.daemon != nil && env.daemon.repo != nil {
		r := env.daemon.repo
		if r.Index().IsRemote() && !reader && !listsOnly(c) {
			// The daemon's lock in the store is a reader's, which no
			// prune waits for: a command it runs takes the lock it
			// would take on its own, shared (a snapshot, a restore) or
			// exclusive (prune, repair), beside it. What only lists
			// reads the cache under the reader lock, as the mount does.
			l, err := r.Index().LockCommand(name, needsExclusive(env, name))
			if err != nil {
				return nil, nil, err
			}
			return r, func() {
				if err := l.Release(); err != nil {
					env.warnf("%v", err)
				}
			}, nil
		}
		return r, func() {}, nil
	}
	dir, err := env.repoPath()
	if err != nil {
		return nil, nil, err
	}
	if loc, ok := env.storeRepo(dir); ok {
		r, err := openRemoteRepo(env, loc, name, false)
		if err != nil {
			return nil, nil, err
		}
		r.Index().KV.SetInterrupt(ctx.Done())
		return r, func() { r.Close() }, nil
	}
	// A command that only reads never gives the reserve back: on a full
	// disk it opens read-only instead (below).
	keep := c != nil && c.readsOnly
	r, err := snapshot.Open(dir, snapshot.Options{Command: name, InsecurePermissions: env.global.insecureRepo, KeepReserve: keep, WrapStore: testWrapStore})
	if errors.Is(err, unix.EROFS) || errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EACCES) {
		// A backup disk mounted read-only, or full, or a repository this
		// user may read but not write: what only reads (listing,
		// restoring, checking) still works, read-only.
		if keep {
			ro, rerr := snapshot.Open(dir, snapshot.Options{Command: name, ReadOnly: true, InsecurePermissions: env.global.insecureRepo})
			switch {
			case rerr == nil:
				env.warnf("repository %s cannot be written (%v); opened it read-only", dir, err)
				return ro, func() { ro.Close() }, nil
			case errors.Is(rerr, index.ErrLocked):
				return nil, nil, rerr // a writer has it: say so (exit 11)
			}
		}
	}
	if err != nil {
		return nil, nil, err
	}
	// A write waiting in a Pebble write stall gives up on SIGTERM/SIGINT.
	r.Index().KV.SetInterrupt(ctx.Done())
	return r, func() { r.Close() }, nil
}

// listsOnly reports whether c only lists what the cache knows (snapshots,
// their trees): inside the mount daemon it runs under the daemon's reader
// lock, so a listing works while another host prunes (the trees it reads
// find pruned blobs again as the mount's reads do), and costs the store no
// lock object. restore and check, which must not meet a prune, share.
func listsOnly(c *command) bool {
	if c == nil {
		return false
	}
	switch c.name {
	case "snapshots", "ls", "find", "diff":
		return true
	}
	return false
}

// absPath makes p absolute against the caller's working directory (which
// inside the daemon is the client's, sent over the socket).
func (env *cmdEnv) absPath(p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	wd := env.cwd
	if wd == "" {
		wd, _ = os.Getwd()
	}
	return filepath.Join(wd, p)
}
