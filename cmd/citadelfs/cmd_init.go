package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"citadelfs/index"
	"citadelfs/index/s3store"
	"citadelfs/snapshot"
)

var (
	initReserve    string
	initObjectLock int
)

func init() {
	register(&command{
		name:    "init",
		summary: "create a repository",
		usage:   "[--repo DIR|s3://BUCKET/PREFIX] [--reserve SIZE] [--object-lock DAYS]",
		flags: func(fs *pflag.FlagSet) {
			fs.IntVar(&initObjectLock, "object-lock", 0, "s3:// only: make (or take) the bucket with Object Lock and write every object under a COMPLIANCE retention of DAYS days, which no credential can shorten (docs/s3.md \"Object Lock\")")
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
			if initObjectLock != 0 && !isRemote(dir) {
				return usagef("--object-lock needs an s3:// repository (a directory has no retention)")
			}
			if initObjectLock < 0 || initObjectLock > index.MaxObjectLockDays {
				return usagef("--object-lock %d: want a number of days from 1 to %d", initObjectLock, index.MaxObjectLockDays)
			}
			if isRemote(dir) {
				s, err := env.remoteStore(dir)
				if err != nil {
					return err
				}
				var lock *index.ObjectLock
				if initObjectLock > 0 {
					lock = &index.ObjectLock{Mode: index.RetentionCompliance, Days: initObjectLock}
					err = s.MakeLockedBucket()
					if errors.Is(err, s3store.ErrNoObjectLock) {
						return withExit(exitUsage, err)
					}
				} else {
					err = s.MakeBucket()
				}
				if err != nil {
					return err
				}
				if err := snapshot.InitStore(s, dir, snapshot.Options{ObjectLock: lock}); err != nil {
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
				out := map[string]any{"repository": dir}
				if initObjectLock > 0 {
					out["object_lock"] = index.ObjectLock{Mode: index.RetentionCompliance, Days: initObjectLock}
				}
				return json.NewEncoder(env.stdout).Encode(out)
			}
			fmt.Fprintf(env.stdout, "created repository at %s\n", dir)
			if initObjectLock > 0 {
				fmt.Fprintf(env.stdout, "object lock: every object is kept %d days from its upload (COMPLIANCE: no credential can delete it sooner)\n", initObjectLock)
			}
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
