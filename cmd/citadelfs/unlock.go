package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/pflag"
	"golang.org/x/term"

	"citadelfs/index"
)

// How an encrypted repository is unlocked (docs/encryption.md "Passphrase
// sources"). The first source given wins, in this order:
//
//	--password-file FILE          a passphrase slot
//	--key-file FILE               a key-file slot
//	$CITADELFS_PASSWORD_FILE      a passphrase slot
//	$CREDENTIALS_DIRECTORY/citadelfs-password
//	                              the systemd credential the generated
//	                              units load (LoadCredential=), so no
//	                              secret is in a unit file
//	password_file: in the config  a passphrase slot
//	a terminal prompt             when stdin is a terminal
//
// None of them and no terminal is a usage error (exit 2) that names them:
// a timer must never hang on a prompt nobody sees.

const (
	passwordFileEnv = "CITADELFS_PASSWORD_FILE"
	credentialName  = "citadelfs-password"
)

func addKeyFlags(fs *pflag.FlagSet, g *globalFlags) {
	fs.StringVar(&g.passwordFile, "password-file", "", "file holding an encrypted repository's passphrase (default $CITADELFS_PASSWORD_FILE, the systemd credential citadelfs-password, the config's password_file, then a prompt)")
	fs.StringVar(&g.keyFile, "key-file", "", "key file opening an encrypted repository (a key-file slot: citadelfs key add --new-key-file)")
}

// secretSource is where the secret came from, for messages.
type secretSource struct {
	secret index.Secret
	from   string
}

// readPassphraseFile reads a passphrase file: its bytes without the
// trailing newline an editor or `echo` adds.
func readPassphraseFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, usagef("passphrase file: %v", err)
	}
	b = bytes.TrimRight(b, "\r\n")
	if len(b) == 0 {
		return nil, usagef("passphrase file %s is empty", path)
	}
	return b, nil
}

// readKeyFile reads a key file (index.KeyFileSecret).
func readKeyFile(path string) (index.Secret, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return index.Secret{}, usagef("key file: %v", err)
	}
	s, err := index.KeyFileSecret(b)
	if err != nil {
		return index.Secret{}, usagef("key file %s: %v", path, err)
	}
	return s, nil
}

// secretNames names one chain of non-interactive sources: the
// repository's own (--password-file, --key-file, $CITADELFS_PASSWORD_FILE,
// the credential citadelfs-password) or a copy target's (the --to-…
// ones, cmd_copy.go).
type secretNames struct {
	passwordFile, keyFile string // the flags' values
	passwordFlag, keyFlag string // the flags' names, for messages
	envVar, credential    string
}

// secretFrom returns the first source of n that is given, in the order
// of the table above (nil: none of them).
func (env *cmdEnv) secretFrom(n secretNames) (*secretSource, error) {
	switch {
	case n.passwordFile != "" && n.keyFile != "":
		return nil, usagef("%s and %s: give one", n.passwordFlag, n.keyFlag)
	case n.passwordFile != "":
		p, err := readPassphraseFile(env.absPath(n.passwordFile))
		if err != nil {
			return nil, err
		}
		return &secretSource{index.Passphrase(p), n.passwordFlag}, nil
	case n.keyFile != "":
		s, err := readKeyFile(env.absPath(n.keyFile))
		if err != nil {
			return nil, err
		}
		return &secretSource{s, n.keyFlag}, nil
	}
	if f := os.Getenv(n.envVar); f != "" {
		p, err := readPassphraseFile(env.absPath(f))
		if err != nil {
			return nil, fmt.Errorf("$%s: %w", n.envVar, err)
		}
		return &secretSource{index.Passphrase(p), "$" + n.envVar}, nil
	}
	if d := os.Getenv("CREDENTIALS_DIRECTORY"); d != "" {
		if _, err := os.Stat(filepath.Join(d, n.credential)); err == nil {
			p, err := readPassphraseFile(filepath.Join(d, n.credential))
			if err != nil {
				return nil, err
			}
			return &secretSource{index.Passphrase(p), "the systemd credential " + n.credential}, nil
		}
	}
	return nil, nil
}

// configuredSecret is the first non-interactive source env has (nil:
// none given).
func (env *cmdEnv) configuredSecret() (*secretSource, error) {
	g := env.global
	if s, err := env.secretFrom(secretNames{passwordFile: g.passwordFile, keyFile: g.keyFile,
		passwordFlag: "--password-file", keyFlag: "--key-file", envVar: passwordFileEnv, credential: credentialName}); err != nil || s != nil {
		return s, err
	}
	if c, err := env.config(); err == nil && c != nil && c.PasswordFile != "" {
		p, err := readPassphraseFile(c.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("password_file in %s: %w", env.global.configPath, err)
		}
		return &secretSource{index.Passphrase(p), "password_file"}, nil
	}
	return nil, nil
}

// errNoSecret is the usage error of an encrypted repository with no
// secret given and no terminal to ask on.
func errNoSecret(what string) error {
	return usagef("%s: give the passphrase with --password-file FILE, $%s, the systemd credential %s or password_file: in the config, or a key file with --key-file FILE (no terminal to ask on)",
		what, passwordFileEnv, credentialName)
}

// promptPassphrase asks on the terminal (stdin), twice when confirm.
func (env *cmdEnv) promptPassphrase(what string, confirm bool) ([]byte, error) {
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return nil, errNoSecret(what)
	}
	fmt.Fprintf(env.stderr, "passphrase for %s: ", what)
	p, err := term.ReadPassword(fd)
	fmt.Fprintln(env.stderr)
	if err != nil {
		return nil, fmt.Errorf("read passphrase: %w", err)
	}
	if len(p) == 0 {
		return nil, usagef("an empty passphrase")
	}
	if confirm {
		fmt.Fprintf(env.stderr, "the same passphrase again: ")
		q, err := term.ReadPassword(fd)
		fmt.Fprintln(env.stderr)
		if err != nil {
			return nil, fmt.Errorf("read passphrase: %w", err)
		}
		if !bytes.Equal(p, q) {
			return nil, usagef("the two passphrases differ; nothing was written")
		}
	}
	return p, nil
}

// repoSecret is the secret that opens (or, at init, will open) the
// repository at loc.
func (env *cmdEnv) repoSecret(loc string, confirm bool) (*secretSource, error) {
	if env.secret != nil && !confirm {
		return env.secret, nil
	}
	s, err := env.configuredSecret()
	if err != nil || s != nil {
		return s, err
	}
	p, err := env.promptPassphrase("encrypted repository "+loc, confirm)
	if err != nil {
		return nil, err
	}
	return &secretSource{index.Passphrase(p), "the terminal"}, nil
}

// unlockStore unlocks the keys of the encrypted repository cfg in store
// s: nil keys for one in the clear. The slot that opened them goes to
// env.keySlot (key remove refuses to remove it).
func (env *cmdEnv) unlockStore(s index.Store, loc string, cfg *index.Config) (*index.Keys, error) {
	if !cfg.Encrypted() {
		return nil, nil
	}
	src, err := env.repoSecret(loc, false)
	if err != nil {
		return nil, err
	}
	u, err := env.unlockWith(s, loc, cfg, src)
	if err != nil {
		return nil, err
	}
	env.keySlot, env.secret = u.SlotID, src
	return u.Keys, nil
}

// unlockWith opens a key slot of cfg's repository with src: a wrong
// secret is exit 15, damaged slots beside the one that opened warnings.
func (env *cmdEnv) unlockWith(s index.Store, loc string, cfg *index.Config, src *secretSource) (*index.Unlocked, error) {
	u, err := index.UnlockKeys(s, cfg.ID, src.secret)
	if errors.Is(err, index.ErrWrongKey) {
		return nil, withExit(exitWrongKey, fmt.Errorf("%s: the %s from %s opens no key slot of the repository (wrong passphrase or key file); nothing was written",
			loc, kindWord(src.secret.Kind), src.from))
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", loc, err)
	}
	for _, d := range u.Damaged {
		env.warnf("%v (another slot opened the repository; remove the damaged one with 'citadelfs key remove')", d)
	}
	return u, nil
}

func kindWord(kind string) string {
	if kind == index.SlotKeyFile {
		return "key file"
	}
	return "passphrase"
}

// localStoreLayout reports whether the local repository directory dir
// has the store layout (an encrypted one: index.Config.StoreLayout); an
// unreadable citadel.json is left to the open that follows to report.
func localStoreLayout(dir string) bool {
	cfg, err := index.ReadConfig(dir)
	return err == nil && cfg.StoreLayout()
}

// storeRepo reports whether loc is opened as a store repository (its
// Pebble index a cache elsewhere): s3://, or a local encrypted one, and
// its location (a local one's absolute path). The distinction is the
// layout citadel.json says, not the s3:// prefix.
func (env *cmdEnv) storeRepo(loc string) (string, bool) {
	if isRemote(loc) {
		return loc, true
	}
	abs := env.absPath(loc)
	return abs, localStoreLayout(abs)
}

// cacheRoot is where a store repository's cache lives without
// --cache-dir or cache_dir: under $CITADELFS_STATE_DIR/cache when that
// is set (as the project's other host state), else
// index.DefaultCacheRoot.
func cacheRoot() string {
	if sd := os.Getenv(stateDirEnv); sd != "" && filepath.IsAbs(sd) {
		return filepath.Join(sd, "cache")
	}
	return index.DefaultCacheRoot
}

// oneLine keeps a slot comment or host to one printable line.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}
