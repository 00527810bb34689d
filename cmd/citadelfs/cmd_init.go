package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"citadelfs/snapshot"
)

var initReserve string

func init() {
	register(&command{
		name:    "init",
		summary: "create a repository",
		usage:   "[--repo DIR|s3://BUCKET/PREFIX] [--reserve SIZE]",
		flags: func(fs *pflag.FlagSet) {
			fs.StringVar(&initReserve, "reserve", "", "room kept in <repo>/reserve and given back when the disk is full, so forget --prune can always run (default 16MiB, at most 1/16 of the file system; 0: none)")
		},
		run: func(ctx context.Context, env *cmdEnv, args []string) error {
			if len(args) > 0 {
				return usagef("init takes no arguments (use --repo DIR)")
			}
			dir, err := env.repoPath()
			if err != nil {
				return err
			}
			if isRemote(dir) {
				s, err := env.remoteStore(dir)
				if err != nil {
					return err
				}
				if err := s.MakeBucket(); err != nil {
					return err
				}
				if err := snapshot.InitStore(s, dir, snapshot.Options{}); err != nil {
					return err
				}
			} else {
				dir = env.absPath(dir)
				var reserve int64 // the default
				if initReserve != "" {
					n, err := parseSize(initReserve)
					if err != nil {
						return usagef("--reserve %q: %v", initReserve, err)
					}
					reserve = n
					if n == 0 {
						reserve = -1 // an empty reserve file: none
					}
				}
				if err := snapshot.Init(dir, snapshot.Options{Reserve: reserve}); err != nil {
					return err
				}
			}
			if env.global.json {
				return json.NewEncoder(env.stdout).Encode(map[string]string{"repository": dir})
			}
			fmt.Fprintf(env.stdout, "created repository at %s\n", dir)
			return nil
		},
	})
}

// parseSize reads a byte count: a number with an optional K, M, G or T
// suffix (powers of 1024; "KiB", "MB" and "k" are read the same way).
func parseSize(s string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "B"), "I")
	mult := int64(1)
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult > 1 {
			t = t[:n-1]
		}
	}
	v, err := strconv.ParseInt(strings.TrimSpace(t), 10, 64)
	if err != nil || v < 0 || v > (1<<50)/mult {
		return 0, fmt.Errorf("want a size such as 16MiB, 512K or 0")
	}
	return v * mult, nil
}
