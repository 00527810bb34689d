package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
)

// repairUndelete brings back what plain DELETEs hid in a versioned bucket
// (s3store.Undelete): after an attack with a host's credentials on a
// repository with Object Lock, every locked version is still there under a
// delete marker, and the repository (citadel.json included) looks gone.
// It works on the bucket alone, since citadel.json itself may be hidden,
// and takes no lock: run it before anything else opens the repository.
func repairUndelete(_ context.Context, env *cmdEnv, _ []string) error {
	dir, err := env.repoPath()
	if err != nil {
		return err
	}
	if !isRemote(dir) {
		return usagef("'repair undelete' is for an s3:// repository (a directory has no delete markers)")
	}
	s, err := env.remoteStore(dir)
	if err != nil {
		return err
	}
	defer s.Close()
	res, err := s.Undelete(repairFlags.dryRun)
	if err != nil {
		return err
	}
	if env.global.json {
		return writeJSON(env, res)
	}
	var parts []string
	for p, n := range res.ByPrefix {
		parts = append(parts, fmt.Sprintf("%s %d", p, n))
	}
	sort.Strings(parts)
	verb := "removed"
	if res.DryRun {
		verb = "would remove"
	}
	detail := ""
	if len(parts) > 0 {
		detail = " (" + strings.Join(parts, ", ") + ")"
	}
	fmt.Fprintf(env.stdout, "undelete: %s %d delete markers; %d objects visible again%s\n", verb, res.Markers, res.Restored, detail)
	return nil
}
