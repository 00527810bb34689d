package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"citadelfs/index"
	"citadelfs/index/s3store"
	"citadelfs/snapshot"
	"citadelfs/snapshot/chunker"
)

var initFlags struct {
	reserve, encryption  string
	insecureNoEncryption bool
	objectLock           int
}

func init() {
	register(&command{
		name:    "init",
		summary: "create a repository (encrypted unless --encryption none)",
		usage:   "[--repo DIR|s3://BUCKET/PREFIX] [--encryption aes-256-gcm|none] [--password-file FILE|--key-file FILE] [--reserve SIZE] [--object-lock DAYS]",
		flags: func(fs *pflag.FlagSet) {
			fs.IntVar(&initFlags.objectLock, "object-lock", 0, "s3:// only: make (or take) the bucket with Object Lock and write every object under a COMPLIANCE retention of DAYS days, which no credential can shorten (docs/s3.md \"Object Lock\")")
			fs.StringVar(&initFlags.reserve, "reserve", "", "room kept in <repo>/reserve and given back when the disk is full, so forget --prune can always run (default 16MiB, at most 1/16 of the file system; 0: none; a repository in the clear only)")
			fs.StringVar(&initFlags.encryption, "encryption", "", "aes-256-gcm (default, or the config's encryption:) or none")
			fs.BoolVar(&initFlags.insecureNoEncryption, "insecure-no-encryption", false, "with --encryption none: allow an s3:// repository in the clear (whoever reads the bucket reads the data)")
		},
		run: runInit,
	})
}

func runInit(ctx context.Context, env *cmdEnv, args []string) error {
	if len(args) > 0 {
		return usagef("init takes no arguments (use --repo DIR)")
	}
	dir, err := env.repoPath()
	if err != nil {
		return err
	}
	if initFlags.objectLock != 0 && !isRemote(dir) {
		return usagef("--object-lock needs an s3:// repository (a directory has no retention)")
	}
	if initFlags.objectLock < 0 || initFlags.objectLock > index.MaxObjectLockDays {
		return usagef("--object-lock %d: want a number of days from 1 to %d", initFlags.objectLock, index.MaxObjectLockDays)
	}
	enc := initFlags.encryption
	if enc == "" {
		if c, err := env.config(); err == nil && c != nil && c.Encryption != "" {
			enc = c.Encryption
		} else {
			enc = index.EncryptionAESGCM
		}
	}
	switch {
	case enc != index.EncryptionAESGCM && enc != index.EncryptionNone:
		return usagef("--encryption %q: want %s or %s", enc, index.EncryptionAESGCM, index.EncryptionNone)
	case enc == index.EncryptionNone && isRemote(dir) && !initFlags.insecureNoEncryption:
		return usagef("an s3:// repository in the clear hands every byte to whoever can read the bucket: add --insecure-no-encryption to mean it (docs/encryption.md)")
	case initFlags.insecureNoEncryption && enc != index.EncryptionNone:
		return usagef("--insecure-no-encryption goes with --encryption none")
	case enc == index.EncryptionAESGCM && initFlags.reserve != "":
		return usagef("--reserve is for a repository in the clear: an encrypted one's index is a cache outside it")
	}
	if enc == index.EncryptionAESGCM {
		return initEncrypted(env, dir)
	}
	if isRemote(dir) {
		s, lock, err := env.initBucket(dir)
		if err != nil {
			return err
		}
		if err := snapshot.InitStore(s, dir, snapshot.Options{Encryption: index.EncryptionNone, ObjectLock: lock}); err != nil {
			return err
		}
	} else {
		dir = env.absPath(dir)
		var reserve int64 // the default
		if initFlags.reserve != "" {
			n, err := parseSize(initFlags.reserve)
			if err != nil {
				return usagef("--reserve %q: %v", initFlags.reserve, err)
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
	return initDone(env, dir, index.EncryptionNone, "")
}

// initBucket makes (or takes) the bucket of an s3:// repository, with
// Object Lock under --object-lock.
func (env *cmdEnv) initBucket(dir string) (*s3store.Store, *index.ObjectLock, error) {
	s, err := env.remoteStore(dir)
	if err != nil {
		return nil, nil, err
	}
	var lock *index.ObjectLock
	if initFlags.objectLock > 0 {
		lock = &index.ObjectLock{Mode: index.RetentionCompliance, Days: initFlags.objectLock}
		err = s.MakeLockedBucket()
		if errors.Is(err, s3store.ErrNoObjectLock) {
			return nil, nil, withExit(exitUsage, err)
		}
	} else {
		err = s.MakeBucket()
	}
	if err != nil {
		return nil, nil, err
	}
	return s, lock, nil
}

func initDone(env *cmdEnv, dir, enc, slot string) error {
	if env.global.json {
		doc := map[string]any{"repository": dir, "encryption": enc}
		if slot != "" {
			doc["key_slot"] = slot
		}
		if initFlags.objectLock > 0 {
			doc["object_lock"] = index.ObjectLock{Mode: index.RetentionCompliance, Days: initFlags.objectLock}
		}
		return json.NewEncoder(env.stdout).Encode(doc)
	}
	if slot == "" {
		fmt.Fprintf(env.stdout, "created repository at %s (not encrypted)\n", dir)
	} else {
		fmt.Fprintf(env.stdout, "created encrypted repository at %s (%s, key slot %s)\n", dir, enc, shortID(slot))
	}
	if initFlags.objectLock > 0 {
		fmt.Fprintf(env.stdout, "object lock: every object is kept %d days from its upload (COMPLIANCE: no credential can delete it sooner)\n", initFlags.objectLock)
	}
	return nil
}

// initEncrypted makes an encrypted repository (the store layout, local
// or s3://) with its first key slot: a passphrase (asked twice on a
// terminal), or a key file, made when the file does not exist yet.
func initEncrypted(env *cmdEnv, dir string) error {
	if !isRemote(dir) {
		dir = env.absPath(dir)
		if err := checkInitDir(dir); err != nil {
			return err
		}
	}
	// The secret first: a passphrase typed twice differently, or none
	// at all, leaves no directory, bucket or key file behind.
	var madeKeyFile string
	if kf := env.global.keyFile; kf != "" && env.global.passwordFile == "" {
		path := env.absPath(kf)
		if _, err := os.Stat(path); os.IsNotExist(err) {
			if err := writeNewKeyFile(path); err != nil {
				return err
			}
			madeKeyFile = path
		}
	}
	slot, err := initEncryptedWith(env, dir)
	if err != nil {
		if madeKeyFile != "" {
			os.Remove(madeKeyFile)
		}
		return err
	}
	if madeKeyFile != "" {
		env.warnf("wrote a new key file %s: keep a copy away from the repository, it is the only way in", madeKeyFile)
	}
	return initDone(env, dir, index.EncryptionAESGCM, slot)
}

// initEncryptedWith makes the repository once the key file (if any) is
// there, and returns its first slot's id.
func initEncryptedWith(env *cmdEnv, dir string) (string, error) {
	secret, err := env.repoSecret(dir, true)
	if err != nil {
		return "", err
	}
	var s index.Store
	var lock *index.ObjectLock
	if isRemote(dir) {
		rs, l, err := env.initBucket(dir)
		if err != nil {
			return "", err
		}
		s, lock = rs, l
	} else {
		if err := prepareInitDir(dir); err != nil {
			return "", err
		}
		s = index.NewLocalStore(dir, 0)
	}
	defer s.Close()
	p := chunker.Default
	cfg, _, err := index.InitEncrypted(s, dir, index.InitOptions{Chunker: index.ChunkerParams{Min: p.Min, Avg: p.Avg, Max: p.Max}, ObjectLock: lock},
		secret.secret, index.SlotOptions{Comment: "made by init from " + secret.from})
	if err != nil {
		return "", err
	}
	if u, err := index.UnlockKeys(s, cfg.ID, secret.secret); err == nil {
		return u.SlotID, nil
	}
	return "", nil
}

// checkInitDir refuses a path that is not absent or an empty directory,
// writing nothing.
func checkInitDir(dir string) error {
	ents, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("init %s: %w", dir, err)
	}
	if len(ents) > 0 {
		if _, err := os.Stat(filepath.Join(dir, "citadel.json")); err == nil {
			return fmt.Errorf("init %s: a repository already exists there", dir)
		}
		return fmt.Errorf("init %s: directory is not empty", dir)
	}
	return nil
}

// prepareInitDir makes dir (0700) for a new local repository, or checks
// that it is empty.
func prepareInitDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("init %s: %w", dir, err)
	}
	if err := checkInitDir(dir); err != nil {
		return err
	}
	return os.Chmod(dir, 0o700)
}

// writeNewKeyFile writes a new key file (0600) at path, which must not
// exist.
func writeNewKeyFile(path string) error {
	b, err := index.NewKeyFile()
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return usagef("key file: %v", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("key file: %w", err)
	}
	return nil
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
