package main

import (
	"context"
	"encoding/json"
	"fmt"

	"citadelfs/snapshot"
)

func init() {
	register(&command{
		name:    "init",
		summary: "create a repository",
		usage:   "[--repo DIR]",
		run: func(ctx context.Context, env *cmdEnv, args []string) error {
			if len(args) > 0 {
				return usagef("init takes no arguments (use --repo DIR)")
			}
			dir, err := env.repoPath()
			if err != nil {
				return err
			}
			dir = env.absPath(dir)
			if err := snapshot.Init(dir, snapshot.Options{}); err != nil {
				return err
			}
			if env.global.json {
				return json.NewEncoder(env.stdout).Encode(map[string]string{"repository": dir})
			}
			fmt.Fprintf(env.stdout, "created repository at %s\n", dir)
			return nil
		},
	})
}
