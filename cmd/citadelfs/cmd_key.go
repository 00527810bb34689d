package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	"citadelfs/index"
)

// `citadelfs key`: the key slots of an encrypted repository
// (index/keyslots.go), as restic's `key`. Every form unlocks the
// repository first (any slot), and none rewrites data: a slot only wraps
// the master key, which stays.

var keyFlags struct {
	newPasswordFile, newKeyFile, comment string
	force                                bool
}

var keySubcommands = map[string]func(env *cmdEnv, k *keyCtx, args []string) error{
	"list":   keyList,
	"add":    keyAdd,
	"remove": keyRemove,
	"passwd": keyPasswd,
}

func init() {
	register(&command{
		name:    "key",
		summary: "list, add, remove or change the key slots (passphrases, key files) of an encrypted repository",
		usage:   "list | add [--new-password-file FILE|--new-key-file FILE] [--comment TEXT] | remove ID [--force] | passwd [--new-password-file FILE|--new-key-file FILE]",
		flags: func(fs *pflag.FlagSet) {
			fs.StringVar(&keyFlags.newPasswordFile, "new-password-file", "", "add/passwd: the new slot's passphrase, from this file (default: asked twice on the terminal)")
			fs.StringVar(&keyFlags.newKeyFile, "new-key-file", "", "add/passwd: a key-file slot for this file, which is made (32 random bytes, base64) when it does not exist")
			fs.StringVar(&keyFlags.comment, "comment", "", "add/passwd: a note kept in the new slot (who or what uses it)")
			fs.BoolVar(&keyFlags.force, "force", false, "remove: also the slot this command was unlocked with")
		},
		run: func(ctx context.Context, env *cmdEnv, args []string) error {
			names := make([]string, 0, len(keySubcommands))
			for n := range keySubcommands {
				names = append(names, n)
			}
			sort.Strings(names)
			if len(args) == 0 || keySubcommands[args[0]] == nil {
				return usagef("usage: citadelfs key %s", strings.Join(names, "|"))
			}
			sub := args[0]
			if (keyFlags.newPasswordFile != "" || keyFlags.newKeyFile != "" || keyFlags.comment != "") && sub != "add" && sub != "passwd" {
				return usagef("--new-password-file, --new-key-file and --comment are for 'key add' and 'key passwd'")
			}
			if keyFlags.force && sub != "remove" {
				return usagef("--force is for 'key remove'")
			}
			if keyFlags.newPasswordFile != "" && keyFlags.newKeyFile != "" {
				return usagef("--new-password-file and --new-key-file: give one")
			}
			if sub == "remove" && len(args) != 2 {
				return usagef("usage: citadelfs key remove ID (see 'citadelfs key list')")
			}
			if sub != "remove" && len(args) != 1 {
				return usagef("'key %s' takes no arguments", sub)
			}
			k, err := openKeys(env)
			if err != nil {
				return err
			}
			defer k.store.Close()
			return keySubcommands[sub](env, k, args[1:])
		},
	})
}

// keyCtx is an unlocked repository's store, for the key slots.
type keyCtx struct {
	store index.Store
	loc   string
	cfg   *index.Config
	keys  *index.Keys
}

// openKeys unlocks the repository's keys without opening its index: the
// slots live in the store, and no lock or cache is needed to read or add
// one.
func openKeys(env *cmdEnv) (*keyCtx, error) {
	dir, err := env.repoPath()
	if err != nil {
		return nil, err
	}
	loc, store := env.storeRepo(dir)
	if !store {
		if _, err := index.ReadConfig(loc); err != nil {
			return nil, err
		}
		return nil, usagef("repository %s is not encrypted: it has no key slots", loc)
	}
	s, err := env.repoStore(loc)
	if err != nil {
		return nil, err
	}
	cfg, keys, err := env.unlockedConfig(s, loc)
	if err != nil {
		s.Close()
		return nil, err
	}
	if !cfg.Encrypted() {
		s.Close()
		return nil, usagef("repository %s is not encrypted: it has no key slots", loc)
	}
	// Slots key add writes stay under the bucket's Object Lock retention.
	if err := index.ApplyRetention(s, cfg, loc); err != nil {
		s.Close()
		return nil, err
	}
	return &keyCtx{store: s, loc: loc, cfg: cfg, keys: keys}, nil
}

type keySlotJSON struct {
	ID      string    `json:"id"`
	Kind    string    `json:"kind,omitempty"`
	Created time.Time `json:"created,omitzero"`
	Host    string    `json:"host,omitempty"`
	Comment string    `json:"comment,omitempty"`
	InUse   bool      `json:"in_use"`
	Damaged string    `json:"damaged,omitempty"`
}

func keyList(env *cmdEnv, k *keyCtx, _ []string) error {
	slots, err := index.ListKeySlots(k.store)
	if err != nil {
		return err
	}
	out := make([]keySlotJSON, 0, len(slots))
	for _, si := range slots {
		j := keySlotJSON{ID: si.ID, InUse: si.ID == env.keySlot}
		if si.Err != nil {
			j.Damaged = si.Err.Error()
		} else {
			j.Kind, j.Created, j.Host, j.Comment = si.Slot.Kind, si.Slot.Created, si.Slot.Host, si.Slot.Comment
		}
		out = append(out, j)
	}
	if env.global.json {
		return writeJSON(env, out)
	}
	tw := tabwriter.NewWriter(env.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, " \tID\tKIND\tCREATED\tHOST\tCOMMENT")
	for _, j := range out {
		mark := " "
		if j.InUse {
			mark = "*"
		}
		if j.Damaged != "" {
			fmt.Fprintf(tw, "%s\t%s\tDAMAGED\t\t\t%s\n", mark, shortID(j.ID), oneLine(j.Damaged))
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", mark, shortID(j.ID), j.Kind, j.Created.Local().Format("2006-01-02 15:04:05"), oneLine(j.Host), oneLine(j.Comment))
	}
	tw.Flush()
	fmt.Fprintf(env.stdout, "%d key slots (* opened this command)\n", len(out))
	return nil
}

func shortID(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

// newSecret is the secret of the slot key add or passwd makes.
func newSecret(env *cmdEnv) (index.Secret, string, error) {
	switch {
	case keyFlags.newPasswordFile != "":
		p, err := readPassphraseFile(env.absPath(keyFlags.newPasswordFile))
		if err != nil {
			return index.Secret{}, "", err
		}
		return index.Passphrase(p), "", nil
	case keyFlags.newKeyFile != "":
		path := env.absPath(keyFlags.newKeyFile)
		made := ""
		if _, err := os.Stat(path); os.IsNotExist(err) {
			if err := writeNewKeyFile(path); err != nil {
				return index.Secret{}, "", err
			}
			made = path
		}
		s, err := readKeyFile(path)
		return s, made, err
	}
	p, err := env.promptPassphrase("the new key slot", true)
	if err != nil {
		return index.Secret{}, "", usagef("the new slot's secret: give --new-password-file FILE or --new-key-file FILE (no terminal to ask on)")
	}
	return index.Passphrase(p), "", nil
}

// addSlot makes the new slot of key add and key passwd.
func addSlot(env *cmdEnv, k *keyCtx) (*index.KeySlot, error) {
	secret, made, err := newSecret(env)
	if err != nil {
		return nil, err
	}
	slot, err := index.CreateKeySlot(k.store, k.cfg.ID, k.keys, secret, index.SlotOptions{Comment: keyFlags.comment})
	if err != nil {
		if made != "" {
			os.Remove(made)
		}
		return nil, err
	}
	if made != "" {
		env.warnf("wrote a new key file %s: keep a copy away from the repository", made)
	}
	return slot, nil
}

func keyAdd(env *cmdEnv, k *keyCtx, _ []string) error {
	slot, err := addSlot(env, k)
	if err != nil {
		return err
	}
	if env.global.json {
		return writeJSON(env, map[string]string{"added": slot.ID, "kind": slot.Kind})
	}
	fmt.Fprintf(env.stdout, "added %s key slot %s\n", slot.Kind, shortID(slot.ID))
	return nil
}

func keyRemove(env *cmdEnv, k *keyCtx, args []string) error {
	id, err := index.ResolveKeySlot(k.store, args[0])
	if errors.Is(err, index.ErrNoKeySlot) || err != nil && strings.Contains(err.Error(), "ambiguous") {
		return usagef("%v (see 'citadelfs key list')", err)
	}
	if err != nil {
		return err
	}
	err = index.RemoveKeySlot(k.store, id, env.keySlot, keyFlags.force)
	switch {
	case errors.Is(err, index.ErrSlotInUse):
		return usagef("%v: give --force to remove it, or open the repository with another slot", err)
	case errors.Is(err, index.ErrLastKeySlot), errors.Is(err, index.ErrNoKeySlot):
		return usagef("%v", err)
	case err != nil:
		return err // the store's: unreachable (14), or a slot under Object Lock retention
	}
	if env.global.json {
		return writeJSON(env, map[string]string{"removed": id})
	}
	fmt.Fprintf(env.stdout, "removed key slot %s\n", shortID(id))
	return nil
}

// keyPasswd replaces the slot in use: the new slot first, so that a
// failure between the two leaves both, never neither.
func keyPasswd(env *cmdEnv, k *keyCtx, _ []string) error {
	slot, err := addSlot(env, k)
	if err != nil {
		return err
	}
	if err := index.RemoveKeySlot(k.store, env.keySlot, "", true); err != nil {
		return fmt.Errorf("added key slot %s, but the old slot %s stays: %w", shortID(slot.ID), shortID(env.keySlot), err)
	}
	if env.global.json {
		return writeJSON(env, map[string]string{"added": slot.ID, "removed": env.keySlot, "kind": slot.Kind})
	}
	fmt.Fprintf(env.stdout, "replaced key slot %s with %s key slot %s; the data is unchanged\n", shortID(env.keySlot), slot.Kind, shortID(slot.ID))
	return nil
}
