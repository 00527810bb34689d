package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"citadelfs/index"
	"citadelfs/index/s3store"
	"citadelfs/internal/daemon"
	"citadelfs/snapshot"
)

// s3Config is the config file's s3: section; the --s3-* flags override
// it, and the AWS variables fill what neither gives (docs/s3.md).
type s3Config struct {
	Endpoint  string `yaml:"endpoint"`
	Region    string `yaml:"region"`
	PathStyle bool   `yaml:"path_style"`
	CAFile    string `yaml:"ca_file"`
	Profile   string `yaml:"profile"`
	// Timeout is how long one request to the store may go without
	// progress before the command fails (a Go duration, "60s").
	Timeout string `yaml:"timeout"`
}

func addRemoteFlags(fs *pflag.FlagSet, g *globalFlags) {
	fs.StringVar(&g.cacheDir, "cache-dir", "", "local index cache of an s3:// repository (default /var/cache/citadelfs/<repository id>)")
	fs.StringVar(&g.s3.Endpoint, "s3-endpoint", "", "S3 endpoint URL for an s3:// repository (default $AWS_ENDPOINT_URL, then AWS)")
	fs.StringVar(&g.s3.Region, "s3-region", "", "S3 region (default $AWS_REGION, then us-east-1)")
	fs.BoolVar(&g.s3.PathStyle, "s3-path-style", false, "path-style S3 requests (default: automatic)")
	fs.StringVar(&g.s3.CAFile, "s3-ca-file", "", "PEM file of the CAs to trust for an https S3 endpoint")
	fs.StringVar(&g.s3.Timeout, "s3-timeout", "", "how long one S3 request may go without progress (no answer, no byte moved) before it fails, exit 14 (default 60s)")
	fs.StringVar(&g.blobCacheSize, "blob-cache-size", "", "on-disk cache of the blobs reads fetched from an s3:// repository, in --cache-dir; 0 for none (default 2GiB)")
}

// defaultBlobCacheSize bounds the blob cache when neither the flag nor
// the config says: a few models' worth of chunks a mount rereads, small
// beside the disks of the servers this is for.
const defaultBlobCacheSize = 2 << 30

// blobCacheSize is --blob-cache-size, then the config's blob_cache_size,
// then defaultBlobCacheSize.
func (env *cmdEnv) blobCacheSize() (int64, error) {
	v, what := env.global.blobCacheSize, "--blob-cache-size"
	if v == "" {
		if c, err := env.config(); err == nil && c != nil && c.BlobCacheSize != "" {
			v, what = c.BlobCacheSize, "blob_cache_size"
		}
	}
	if v == "" {
		return defaultBlobCacheSize, nil
	}
	n, err := parseSize(v)
	if err != nil {
		return 0, usagef("%s %q: %v", what, v, err)
	}
	return n, nil
}

// isRemote reports whether loc names a repository in a store.
func isRemote(loc string) bool { return strings.HasPrefix(loc, "s3://") }

// remoteStore connects to the store an s3:// location names, with the
// flags over the config file over the AWS variables. Credentials are
// never taken from flags (they would show in ps and shell history).
func (env *cmdEnv) remoteStore(loc string) (*s3store.Store, error) {
	var c s3Config
	if cf, err := env.config(); err == nil && cf != nil {
		c = cf.S3
	}
	return env.remoteStoreWith(loc, c, env.global.s3)
}

// remoteStoreWith connects to loc with the settings file (from the
// config) and flags (over them) give.
func (env *cmdEnv) remoteStoreWith(loc string, file, flags s3Config) (*s3store.Store, error) {
	bucket, prefix, _, err := s3store.ParseURL(loc)
	if err != nil {
		return nil, usagef("%v", err)
	}
	cfg := s3store.Config{Bucket: bucket, Prefix: prefix,
		Endpoint: file.Endpoint, Region: file.Region, PathStyle: file.PathStyle, CAFile: file.CAFile, Profile: file.Profile}
	if flags.Endpoint != "" {
		cfg.Endpoint = flags.Endpoint
	}
	if flags.Region != "" {
		cfg.Region = flags.Region
	}
	if flags.PathStyle {
		cfg.PathStyle = true
	}
	if flags.CAFile != "" {
		cfg.CAFile = env.absPath(flags.CAFile)
	}
	// The timeout: the flag, then the config, then --s3-timeout (a copy
	// target's settings come from copy.s3 and --to-s3-*, which name none).
	timeout, what := flags.Timeout, "--s3-timeout"
	if timeout == "" {
		timeout, what = file.Timeout, "s3.timeout"
	}
	if timeout == "" {
		timeout, what = env.global.s3.Timeout, "--s3-timeout"
	}
	if timeout != "" {
		d, err := time.ParseDuration(timeout)
		if err != nil || d <= 0 {
			return nil, usagef("%s %q: want a duration such as 60s or 2m", what, timeout)
		}
		cfg.Timeout = d
	}
	s, err := s3store.New(cfg)
	if err != nil {
		return nil, usagef("%v", err)
	}
	return s, nil
}

// cacheDir is --cache-dir, then the config's cache_dir ("" for the
// default under index.DefaultCacheRoot).
func (env *cmdEnv) cacheDir() string {
	if env.global.cacheDir != "" {
		return env.absPath(env.global.cacheDir)
	}
	if c, err := env.config(); err == nil && c != nil && c.CacheDir != "" {
		return c.CacheDir
	}
	return ""
}

// mountCommand is the lock holder's name of a mount daemon, which takes
// the store's reader lock for its life (index.LockReader).
const mountCommand = "citadelfs mount"

// exclusiveCommands take a remote repository's exclusive lock; the rest
// share it (snapshots from many hosts at once).
func exclusiveCommand(name string) bool {
	name = strings.TrimPrefix(name, "citadelfs ")
	return name == "prune" || strings.HasPrefix(name, "repair")
}

// needsExclusive reports whether command, with env's flags, takes a
// remote repository's exclusive lock: prune, repair, and forget --prune
// (which prunes).
func needsExclusive(env *cmdEnv, command string) bool {
	pruning := env.flags != nil && env.flags.Lookup("prune") != nil && env.flags.Lookup("prune").Value.String() == "true"
	return exclusiveCommand(command) || pruning
}

// repoStore is the store of a store repository (isStoreRepo): the
// bucket of an s3:// one, the directory of a local encrypted one.
func (env *cmdEnv) repoStore(loc string) (index.Store, error) {
	if isRemote(loc) {
		s, err := env.remoteStore(loc)
		if err != nil {
			return nil, err
		}
		return s, nil
	}
	if !env.global.insecureRepo {
		if err := index.CheckPermissions(loc); err != nil {
			return nil, err
		}
	}
	return index.NewLocalStore(loc, 0), nil
}

// unlockedConfig reads the citadel.json of the repository in store s and
// unlocks its keys (nil for one in the clear).
func (env *cmdEnv) unlockedConfig(s index.Store, loc string) (*index.Config, *index.Keys, error) {
	cfg, err := index.ReadStoreConfig(s, loc)
	if err != nil {
		return nil, nil, err
	}
	keys, err := env.unlockStore(s, loc, cfg)
	if err != nil {
		return nil, nil, err
	}
	return cfg, keys, nil
}

// openRemoteRepo opens a store repository for a command: an s3:// one,
// or a local encrypted one (loc absolute), unlocking its keys.
func openRemoteRepo(env *cmdEnv, loc, command string, rebuildCache bool) (*snapshot.Repository, error) {
	s, err := env.repoStore(loc)
	if err != nil {
		return nil, err
	}
	blobCache, err := env.blobCacheSize()
	if err != nil {
		s.Close()
		return nil, err
	}
	if !isRemote(loc) {
		// A local encrypted repository's packs are on a local disk: a
		// cache of its blobs would copy the backup beside itself (2 GiB
		// by default) to save nothing but a pread.
		blobCache = 0
	}
	cfg, keys, err := env.unlockedConfig(s, loc)
	if err != nil {
		s.Close()
		return nil, err
	}
	o := snapshot.Options{Command: command, CacheDir: env.cacheDir(), Exclusive: needsExclusive(env, command) || rebuildCache,
		RebuildCache: rebuildCache, BlobCacheSize: blobCache, Reader: command == mountCommand}
	o.Keys = keys
	if o.CacheDir == "" && !isRemote(loc) {
		o.CacheDir = filepath.Join(cacheRoot(), cfg.ID)
	}
	return snapshot.OpenStore(s, loc, o)
}

// daemonDir is the directory whose daemon.sock a mount daemon of the
// repository at loc listens on: a local repository's own directory, and
// for an s3:// one its cache dir (the daemon holds that cache's Pebble
// open, so a command with the same cache must run in the daemon; one with
// a cache of its own runs beside it under a shared store lock, as another
// host would). Without --cache-dir or cache_dir the default cache is
// named by the repository id, read from the store, unless no daemon
// listens under DefaultCacheRoot at all. ok is false when there is no
// directory to look in.
func (env *cmdEnv) daemonDir(loc string) (dir string, ok bool) {
	if !isRemote(loc) {
		abs, err := filepath.Abs(loc)
		return abs, err == nil
	}
	if d := env.cacheDir(); d != "" {
		return d, true
	}
	if socks, _ := filepath.Glob(daemon.SocketPath(filepath.Join(index.DefaultCacheRoot, "*"))); len(socks) == 0 {
		return "", false
	}
	s, err := env.remoteStore(loc)
	if err != nil {
		return "", false
	}
	defer s.Close()
	cfg, err := index.ReadStoreConfig(s, loc)
	if err != nil {
		return "", false // the command itself says why
	}
	return filepath.Join(index.DefaultCacheRoot, cfg.ID), true
}

// repairRemoteIndex rebuilds an s3:// repository's cache from the store:
// the pack trailers (ranged reads) and the snapshots/ objects.
func repairRemoteIndex(env *cmdEnv, loc string) error {
	r, err := openRemoteRepo(env, loc, "citadelfs repair index", true)
	if err != nil {
		return err
	}
	defer r.Close()
	res := r.Index().LastSync
	for _, d := range res.Damaged {
		env.warnf("%s", d)
	}
	if env.global.json {
		return writeJSON(env, res)
	}
	fmt.Fprintf(env.stdout, "rebuilt the index cache of %s from %d packs: %d snapshots\n", loc, res.PacksAdded, res.SnapshotsAdded)
	if len(res.Damaged) > 0 {
		return withExit(exitDamaged, fmt.Errorf("%d packs or snapshots could not be read", len(res.Damaged)))
	}
	return nil
}

// uploadMemoryLimit is the soft heap target (main sets 128 MiB) of a
// command that uploads packs to a store: a snapshot (or copy) into a
// bucket holds its upload pipeline, the pack being filled, two waiting
// and four in flight, 16 MiB each (snapshot/saver.go). Under 128 MiB the
// garbage collector ran almost without pause: a third more CPU and twice
// the wall time of the initial snapshot on the bench, at the same peak
// RSS (140 MiB); at 192 MiB the peak is 190 MiB. GOMEMLIMIT overrides it.
const uploadMemoryLimit = 192 << 20

// raiseMemoryLimitForUploads applies uploadMemoryLimit when the repository
// r writes to is in a store.
func raiseMemoryLimitForUploads(r *snapshot.Repository) {
	if r.Index().IsRemote() && os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(uploadMemoryLimit)
	}
}
