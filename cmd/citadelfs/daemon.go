package main

import (
	"context"

	"citadelfs/snapshot"
)

// daemonState is the mount daemon's shared state that delegated commands use.
// TODO(fs helper): control socket server and client live here.
type daemonState struct {
	repo *snapshot.Repository
}

// delegateToDaemon hands the command to a running mount daemon that owns the
// repository. handled is false when no daemon runs.
func delegateToDaemon(ctx context.Context, env *cmdEnv, c *command, args []string) (code int, handled bool) {
	return 0, false
}
