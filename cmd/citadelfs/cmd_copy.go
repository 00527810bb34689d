package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/spf13/pflag"

	"citadelfs/index"
	"citadelfs/index/s3store"
	"citadelfs/snapshot"
)

// copy's target is named by --to. An s3:// target has its own S3
// settings when any is given (the config's copy.s3, for the config's
// copy.to, with the --to-s3-* flags over it), so a copy can go from one
// endpoint to another; with none it shares the source's (--s3-endpoint
// and the rest, the config's s3:), one endpoint for both sides. It has
// its own index cache (--to-cache-dir; the source's --cache-dir and
// cache_dir are the source's, and a cache refuses a second repository).
var copyFlags struct {
	to, toCacheDir string
	toS3           s3Config
}

func init() {
	register(&command{
		name:      "copy",
		readsOnly: true,
		summary:   "copy snapshots to another repository (a directory or s3://), transferring only the chunks it lacks",
		usage:     "--to REPO [--to-cache-dir DIR] [--to-s3-endpoint URL ...] [SNAPSHOT...]",
		delegable: true,
		flags: func(fs *pflag.FlagSet) {
			copyFlags.to, copyFlags.toCacheDir = "", ""
			fs.StringVar(&copyFlags.to, "to", "", "the target repository: a directory or s3://bucket/prefix (default: the config's copy.to)")
			fs.StringVar(&copyFlags.toCacheDir, "to-cache-dir", "", "local index cache of an s3:// target (default: the config's copy.cache_dir, then /var/cache/citadelfs/<repository id>)")
			copyFlags.toS3 = s3Config{}
			fs.StringVar(&copyFlags.toS3.Endpoint, "to-s3-endpoint", "", "S3 endpoint URL of an s3:// target (default: the config's copy.s3, else the source's S3 settings)")
			fs.StringVar(&copyFlags.toS3.Region, "to-s3-region", "", "S3 region of an s3:// target")
			fs.BoolVar(&copyFlags.toS3.PathStyle, "to-s3-path-style", false, "path-style S3 requests to an s3:// target")
			fs.StringVar(&copyFlags.toS3.CAFile, "to-s3-ca-file", "", "PEM file of the CAs to trust for an https target endpoint")
		},
		run: runCopy,
	})
}

func runCopy(ctx context.Context, env *cmdEnv, args []string) error {
	to, cacheDir, err := copyTarget(env, "copy", copyFlags.to, copyFlags.toCacheDir)
	if err != nil {
		return err
	}
	if !isRemote(to) && copyFlags.toS3 != (s3Config{}) {
		return usagef("copy: the --to-s3-* flags are for an s3:// target, not %s", to)
	}
	repo, release, err := openRepo(ctx, env)
	if err != nil {
		return err
	}
	defer release()
	if !isRemote(to) && !isRemote(repo.Dir()) && sameDir(repo.Dir(), to) {
		return usagef("copy: --to %s is the source repository itself", to)
	}
	var snaps []*snapshot.Snapshot
	if len(args) == 0 {
		if snaps, err = repo.Snapshots(); err != nil {
			return err
		}
	}
	for _, a := range args {
		s, err := repo.FindSnapshot(a)
		if err != nil {
			return err
		}
		snaps = append(snaps, s)
	}
	dst, err := openCopyTarget(env, to, cacheDir, copyFlags.toS3)
	if err != nil {
		return err
	}
	defer dst.Close()
	dst.Index().KV.SetInterrupt(ctx.Done())
	var c counts
	pl := startProgress(env, func() string {
		blobs, bytes := c.get()
		return fmt.Sprintf("copy: %d chunks, %s transferred", blobs, humanBytes(bytes))
	})
	res, err := repo.Copy(ctx, dst, snaps, func(_ index.ID, b, n int64) { c.set(b, n) })
	pl.Stop()
	if err != nil {
		if res != nil && len(res.Copied) > 0 {
			env.warnf("copied %d snapshots before the error", len(res.Copied))
		}
		return err
	}
	if env.global.json {
		return writeJSON(env, copyJSON{To: to, CopyResult: res})
	}
	how := "as stored"
	if res.Rechunked {
		how = fmt.Sprintf("re-chunked for the target's keys and chunker (%s read)", humanBytes(res.PlainBytes))
	}
	fmt.Fprintf(env.stdout, "copy: %d snapshots copied %s, %d already in %s; %d chunks (%s) transferred in %d packs, %d already there\n",
		len(res.Copied), how, len(res.Skipped), to, res.Blobs, humanBytes(res.Bytes), res.Packs, res.BlobsPresent)
	return nil
}

// copyTarget resolves a copy's (or migrate's) target and its index cache
// from the flags, then the config's copy: section.
func copyTarget(env *cmdEnv, verb, to, cacheDir string) (string, string, error) {
	if to == "" || cacheDir == "" {
		if c, err := env.config(); err == nil && c != nil {
			if to == "" {
				to = c.Copy.To
			}
			if cacheDir == "" && c.Copy.To == to {
				cacheDir = c.Copy.CacheDir
			}
		}
	}
	if to == "" {
		return "", "", usagef("%s needs a target: --to DIR or --to s3://bucket/prefix (or copy.to in the config)", verb)
	}
	if !isRemote(to) {
		to = env.absPath(to)
	} else if cacheDir != "" {
		cacheDir = env.absPath(cacheDir)
	}
	return to, cacheDir, nil
}

type copyJSON struct {
	To string `json:"to"`
	*snapshot.CopyResult
}

// openCopyTarget opens copy's target with a shared lock (a store's) or
// the directory's own lock. An s3:// target with S3 settings of its own
// (the config's copy.s3 when it is the config's copy.to, flags over
// them) is reached with those alone; without, with the source's.
func openCopyTarget(env *cmdEnv, to, cacheDir string, flags s3Config) (*snapshot.Repository, error) {
	name := "citadelfs copy (target)"
	if isRemote(to) {
		var file s3Config
		if c, err := env.config(); err == nil && c != nil && c.Copy.To == to {
			file = c.Copy.S3
		}
		var s *s3store.Store
		var err error
		if file != (s3Config{}) || flags != (s3Config{}) {
			s, err = env.remoteStoreWith(to, file, flags)
		} else {
			s, err = env.remoteStore(to)
		}
		if err != nil {
			return nil, err
		}
		return snapshot.OpenStore(s, to, snapshot.Options{Command: name, CacheDir: cacheDir})
	}
	r, err := snapshot.Open(to, snapshot.Options{Command: name, InsecurePermissions: env.global.insecureRepo})
	if err != nil && errors.Is(err, index.ErrLocked) {
		return nil, fmt.Errorf("copy: target %s: %w", to, err)
	}
	return r, err
}

// sameDir says whether a and b are one directory.
func sameDir(a, b string) bool {
	ra, err1 := filepath.EvalSymlinks(a)
	rb, err2 := filepath.EvalSymlinks(b)
	if err1 != nil || err2 != nil {
		return filepath.Clean(a) == filepath.Clean(b)
	}
	return ra == rb
}

// copyConfig is the config's copy: section.
type copyConfig struct {
	To       string `yaml:"to"`        // a directory or s3://bucket/prefix
	CacheDir string `yaml:"cache_dir"` // the index cache of an s3:// target
	// S3 is an s3:// target's own S3 settings (as the top-level s3:);
	// empty: the source's.
	S3       s3Config `yaml:"s3"`
	Schedule string   `yaml:"schedule"` // when the systemd timer copies (cron; default daily)
}
