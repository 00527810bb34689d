package main

import (
	"context"
	"errors"
	"fmt"
	"os"
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
		usage:     "--to REPO [--to-cache-dir DIR] [--to-s3-endpoint URL ...] [--to-password-file FILE|--to-key-file FILE] [SNAPSHOT...]",
		delegable: true,
		flags: func(fs *pflag.FlagSet) {
			copyFlags.to, copyFlags.toCacheDir = "", ""
			fs.StringVar(&copyFlags.to, "to", "", "the target repository: a directory or s3://bucket/prefix (default: the config's copy.to)")
			fs.StringVar(&copyFlags.toCacheDir, "to-cache-dir", "", "local index cache of an s3:// or encrypted target (default: the config's copy.cache_dir, then /var/cache/citadelfs/<repository id>)")
			copyFlags.toS3 = s3Config{}
			fs.StringVar(&copyFlags.toS3.Endpoint, "to-s3-endpoint", "", "S3 endpoint URL of an s3:// target (default: the config's copy.s3, else the source's S3 settings)")
			fs.StringVar(&copyFlags.toS3.Region, "to-s3-region", "", "S3 region of an s3:// target")
			fs.BoolVar(&copyFlags.toS3.PathStyle, "to-s3-path-style", false, "path-style S3 requests to an s3:// target")
			fs.StringVar(&copyFlags.toS3.CAFile, "to-s3-ca-file", "", "PEM file of the CAs to trust for an https target endpoint")
			addTargetKeyFlags(fs)
		},
		run:          runCopy,
		delegateArgs: copyDelegateArgs,
	})
}

// copyDelegateArgs gives the daemon the client's $CITADELFS_TO_PASSWORD_FILE
// as --to-password-file (absolute), unless a target secret flag is
// already there: the daemon runs the copy without this environment.
func copyDelegateArgs(env *cmdEnv, args []string) []string {
	f := os.Getenv(toPasswordFileEnv)
	if f == "" || targetKeyFlags.passwordFile != "" || targetKeyFlags.keyFile != "" {
		return args
	}
	return append(args, "--to-password-file", env.absPath(f))
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
	raiseMemoryLimitForUploads(dst)
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

// openCopyTarget opens copy's (and migrate's) target with a shared lock
// (a store's) or the directory's own lock. An s3:// target with S3
// settings of its own (the config's copy.s3 when it is the config's
// copy.to, flags over them) is reached with those alone; without, with
// the source's. A store repository (s3://, or an encrypted local one) is
// unlocked with the target's own secret (copyTargetSecret); its cache is
// cacheDir, for a local one by default under the cache root beside the
// source's.
func openCopyTarget(env *cmdEnv, to, cacheDir string, flags s3Config) (*snapshot.Repository, error) {
	name := "citadelfs copy (target)"
	loc, ok := env.storeRepo(to)
	if !ok {
		r, err := snapshot.Open(to, snapshot.Options{Command: name, InsecurePermissions: env.global.insecureRepo})
		if err != nil && errors.Is(err, index.ErrLocked) {
			return nil, fmt.Errorf("copy: target %s: %w", to, err)
		}
		return r, err
	}
	var s index.Store
	if isRemote(loc) {
		var file s3Config
		if c, err := env.config(); err == nil && c != nil && c.Copy.To == to {
			file = c.Copy.S3
		}
		var rs *s3store.Store
		var err error
		if file != (s3Config{}) || flags != (s3Config{}) {
			rs, err = env.remoteStoreWith(loc, file, flags)
		} else {
			rs, err = env.remoteStore(loc)
		}
		if err != nil {
			return nil, err
		}
		s = rs
	} else {
		ls, err := env.repoStore(loc)
		if err != nil {
			return nil, err
		}
		s = ls
	}
	cfg, err := index.ReadStoreConfig(s, loc)
	if err != nil {
		s.Close()
		return nil, err
	}
	keys, err := env.unlockCopyTarget(s, loc, cfg)
	if err != nil {
		s.Close()
		return nil, err
	}
	if cacheDir == "" && !isRemote(loc) {
		cacheDir = filepath.Join(cacheRoot(), cfg.ID)
	}
	r, err := snapshot.OpenStore(s, loc, snapshot.Options{Command: name, CacheDir: cacheDir, Keys: keys})
	if err != nil {
		s.Close()
	}
	return r, err
}

// The secret of an encrypted copy target, first found of:
//
//	--to-password-file FILE, --to-key-file FILE
//	$CITADELFS_TO_PASSWORD_FILE
//	$CREDENTIALS_DIRECTORY/citadelfs-to-password (a systemd credential:
//	  the units load copy.password_file so)
//	copy.password_file in the config, for its copy.to
//	the command's own sources (--password-file, --key-file,
//	  $CITADELFS_PASSWORD_FILE, the credential citadelfs-password,
//	  password_file: in the config): a source in the clear needs none
//	  (migrating a version 1 repository), and one passphrase often
//	  opens both sides
//	a terminal prompt
const (
	toPasswordFileEnv = "CITADELFS_TO_PASSWORD_FILE"
	toCredentialName  = "citadelfs-to-password"
)

// targetKeyFlags are copy's and migrate's --to-password-file and
// --to-key-file.
var targetKeyFlags struct{ passwordFile, keyFile string }

func addTargetKeyFlags(fs *pflag.FlagSet) {
	targetKeyFlags.passwordFile, targetKeyFlags.keyFile = "", ""
	fs.StringVar(&targetKeyFlags.passwordFile, "to-password-file", "", "file holding an encrypted target's passphrase (default $"+toPasswordFileEnv+", the systemd credential "+toCredentialName+", then the source's own --password-file and the rest, then a prompt)")
	fs.StringVar(&targetKeyFlags.keyFile, "to-key-file", "", "key file opening an encrypted target")
}

// copyTargetSecret is the secret that opens the encrypted target at loc.
func (env *cmdEnv) copyTargetSecret(loc string) (*secretSource, error) {
	f := targetKeyFlags
	if s, err := env.secretFrom(secretNames{passwordFile: f.passwordFile, keyFile: f.keyFile,
		passwordFlag: "--to-password-file", keyFlag: "--to-key-file", envVar: toPasswordFileEnv, credential: toCredentialName}); err != nil || s != nil {
		return s, err
	}
	if c, err := env.config(); err == nil && c != nil && c.Copy.PasswordFile != "" && (c.Copy.To == loc || (!isRemote(c.Copy.To) && env.absPath(c.Copy.To) == loc)) {
		if !filepath.IsAbs(c.Copy.PasswordFile) {
			return nil, usagef("copy.password_file %q in %s: want an absolute path (the systemd units load it)", c.Copy.PasswordFile, env.global.configPath)
		}
		b, err := readPassphraseFile(c.Copy.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("copy.password_file in %s: %w", env.global.configPath, err)
		}
		return &secretSource{index.Passphrase(b), "copy.password_file"}, nil
	}
	if s, err := env.configuredSecret(); err != nil || s != nil {
		return s, err
	}
	p, err := env.promptPassphrase("copy target "+loc, false)
	if err != nil {
		return nil, usagef("copy target %s is encrypted: give its passphrase with --to-password-file FILE or $%s, or a key file with --to-key-file FILE (no terminal to ask on)", loc, toPasswordFileEnv)
	}
	return &secretSource{index.Passphrase(p), "the terminal"}, nil
}

// unlockCopyTarget unlocks the keys of an encrypted target (nil for one in
// the clear). A wrong secret is exit 15 before anything is written.
func (env *cmdEnv) unlockCopyTarget(s index.Store, loc string, cfg *index.Config) (*index.Keys, error) {
	if !cfg.Encrypted() {
		return nil, nil
	}
	src, err := env.copyTargetSecret(loc)
	if err != nil {
		return nil, err
	}
	u, err := index.UnlockKeys(s, cfg.ID, src.secret)
	if errors.Is(err, index.ErrWrongKey) {
		return nil, withExit(exitWrongKey, fmt.Errorf("copy target %s: the %s from %s opens no key slot of it (wrong passphrase or key file; the target's is --to-password-file or --to-key-file); nothing was written",
			loc, kindWord(src.secret.Kind), src.from))
	}
	if err != nil {
		return nil, fmt.Errorf("copy target %s: %w", loc, err)
	}
	for _, d := range u.Damaged {
		env.warnf("copy target: %v (another slot opened it; remove the damaged one with 'citadelfs key remove')", d)
	}
	return u.Keys, nil
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
	CacheDir string `yaml:"cache_dir"` // the index cache of an s3:// or encrypted target
	// PasswordFile holds an encrypted target's passphrase (absolute; the
	// copy unit and the mount daemon's load it as the credential
	// citadelfs-to-password).
	PasswordFile string `yaml:"password_file"`
	// S3 is an s3:// target's own S3 settings (as the top-level s3:);
	// empty: the source's.
	S3       s3Config `yaml:"s3"`
	Schedule string   `yaml:"schedule"` // when the systemd timer copies (cron; default daily)
}
