package index

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// cheapArgon2 keeps the unit tests quick; the default's cost is measured
// in TestArgon2DefaultCost.
var cheapArgon2 = &Argon2Params{Name: "argon2id", Time: 1, MemoryKiB: 64, Threads: 1}

func initEncrypted(t *testing.T, pass string) (Store, *Config, *Keys, string) {
	t.Helper()
	dir := t.TempDir()
	s := NewLocalStore(dir, 0)
	cp := ChunkerParams{Min: 64 << 10, Avg: 128 << 10, Max: 512 << 10, Seed: 7}
	cfg, keys, err := InitEncrypted(s, dir, InitOptions{Chunker: cp}, Passphrase([]byte(pass)), SlotOptions{Argon2: cheapArgon2, Comment: "first"})
	if err != nil {
		t.Fatal(err)
	}
	return s, cfg, keys, dir
}

func onlySlot(t *testing.T, s Store) SlotInfo {
	t.Helper()
	slots, err := ListKeySlots(s)
	if err != nil || len(slots) != 1 || slots[0].Err != nil {
		t.Fatalf("slots: %+v, %v", slots, err)
	}
	return slots[0]
}

func TestKeySlotUnlock(t *testing.T) {
	s, cfg, keys, _ := initEncrypted(t, "correct horse")
	u, err := UnlockKeys(s, cfg.ID, Passphrase([]byte("correct horse")))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(u.Keys.Master(), keys.Master()) || u.SlotID != onlySlot(t, s).ID {
		t.Fatalf("unlocked another master key, or named slot %s", u.SlotID)
	}
	for _, wrong := range []string{"correct horsE", "", "correct horse "} {
		_, err := UnlockKeys(s, cfg.ID, Passphrase([]byte(wrong)))
		if !errors.Is(err, ErrWrongKey) || errors.Is(err, ErrCorrupt) {
			t.Errorf("passphrase %q: %v, want ErrWrongKey", wrong, err)
		}
	}
	kf, _ := NewKeyFile()
	sec, err := KeyFileSecret(kf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := UnlockKeys(s, cfg.ID, sec); !errors.Is(err, ErrWrongKey) || !strings.Contains(err.Error(), "no keyfile key slot") {
		t.Errorf("a key file on a passphrase-only repository: %v", err)
	}
	// A slot copied into another repository (or left by an init cut
	// short) does not open there, passphrase or not.
	if _, err := UnlockKeys(s, "another-repository-id", Passphrase([]byte("correct horse"))); !errors.Is(err, ErrWrongKey) {
		t.Errorf("slot under another repository id: %v, want ErrWrongKey", err)
	}
	if si := onlySlot(t, s); si.Slot.Comment != "first" || si.Slot.Host == "" || si.Slot.Kind != SlotPassphrase || si.Slot.KDF.Time != 1 {
		t.Errorf("slot fields: %+v", si.Slot)
	}
}

// Every byte of a key slot is covered: a flip is reported as damage
// (ErrCorrupt: exit 4), never as a wrong passphrase (exit 15), and never
// opens another master key. A flip that changes nothing the slot says
// (base64's unused low bits of its last character) opens as before.
func TestKeySlotEveryFlipDetected(t *testing.T) {
	s, cfg, keys, dir := initEncrypted(t, "pw")
	path := filepath.Join(dir, "keys", onlySlot(t, s).ID)
	valid, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for off := range valid {
		data := bytes.Clone(valid)
		data[off] ^= 0x01
		os.WriteFile(path, data, 0o600)
		u, err := UnlockKeys(s, cfg.ID, Passphrase([]byte("pw")))
		switch {
		case err == nil && !bytes.Equal(u.Keys.Master(), keys.Master()):
			t.Fatalf("byte %d: opened another master key", off)
		case err != nil && (!errors.Is(err, ErrCorrupt) || errors.Is(err, ErrWrongKey)):
			t.Errorf("byte %d (%q): %v, want damage (ErrCorrupt)", off, valid[off], err)
		case err != nil && strings.Contains(err.Error(), "\n"):
			t.Errorf("byte %d: not one line: %q", off, err)
		}
	}
	os.WriteFile(path, valid, 0o600)
	if _, err := UnlockKeys(s, cfg.ID, Passphrase([]byte("pw"))); err != nil {
		t.Fatal(err)
	}
}

// Someone who can write the bucket can recompute the checksum, but a
// slot whose parameters were changed (a cheaper KDF, another salt) still
// does not open: they are the wrapped key's additional data.
func TestKeySlotParametersAuthenticated(t *testing.T) {
	s, cfg, _, dir := initEncrypted(t, "pw")
	si := onlySlot(t, s)
	path := filepath.Join(dir, "keys", si.ID)
	for name, edit := range map[string]func(*KeySlot){
		"kdf time": func(k *KeySlot) { k.KDF.Time++ },
		"comment":  func(k *KeySlot) { k.Comment = "evil" },
		"created":  func(k *KeySlot) { k.Created = k.Created.Add(time.Hour) },
	} {
		ks := *si.Slot
		kdf := *ks.KDF
		ks.KDF = &kdf
		edit(&ks)
		ks.Checksum = ks.checksum()
		data, _ := json.Marshal(&ks)
		os.WriteFile(path, data, 0o600)
		if _, err := UnlockKeys(s, cfg.ID, Passphrase([]byte("pw"))); !errors.Is(err, ErrWrongKey) {
			t.Errorf("%s changed, checksum recomputed: %v, want the slot not to open", name, err)
		}
	}
}

func TestKeySlotAddRemove(t *testing.T) {
	s, cfg, keys, dir := initEncrypted(t, "pw")
	first := onlySlot(t, s).ID
	kf, _ := NewKeyFile()
	sec, _ := KeyFileSecret(kf)
	ks, err := CreateKeySlot(s, cfg.ID, keys, sec, SlotOptions{Comment: "robot"})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := KeyFileSecret(sec.Bytes) // the raw 32 bytes open it too
	for _, secret := range []Secret{sec, raw} {
		u, err := UnlockKeys(s, cfg.ID, secret)
		if err != nil || u.SlotID != ks.ID || !bytes.Equal(u.Keys.Master(), keys.Master()) {
			t.Fatalf("key file slot: %+v, %v", u, err)
		}
	}
	if _, err := KeyFileSecret([]byte("too short")); err == nil {
		t.Error("a short key file accepted")
	}
	if id, err := ResolveKeySlot(s, first[:8]); err != nil || id != first {
		t.Errorf("resolve %s: %s, %v", first[:8], id, err)
	}
	if _, err := ResolveKeySlot(s, "ffffffffff"); !errors.Is(err, ErrNoKeySlot) {
		t.Errorf("resolve an unknown slot: %v", err)
	}
	if err := RemoveKeySlot(s, "ffffffffff", first, false); !errors.Is(err, ErrNoKeySlot) {
		t.Errorf("remove an unknown slot: %v", err)
	}
	if err := RemoveKeySlot(s, first, first, false); !errors.Is(err, ErrSlotInUse) {
		t.Errorf("remove the slot in use: %v", err)
	}
	if err := RemoveKeySlot(s, first, ks.ID, false); err != nil {
		t.Fatal(err)
	}
	if _, err := UnlockKeys(s, cfg.ID, Passphrase([]byte("pw"))); !errors.Is(err, ErrWrongKey) {
		t.Errorf("removed passphrase slot still opens: %v", err)
	}
	if err := RemoveKeySlot(s, ks.ID, "", true); !errors.Is(err, ErrLastKeySlot) {
		t.Errorf("remove the last slot: %v", err)
	}
	// A damaged slot beside an intact one: the intact one opens, the
	// damage is reported; it does not count as a slot to keep.
	p2, err := CreateKeySlot(s, cfg.ID, keys, Passphrase([]byte("pw2")), SlotOptions{Argon2: cheapArgon2})
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "keys", p2.ID), []byte("{garbage"), 0o600)
	u, err := UnlockKeys(s, cfg.ID, sec)
	if err != nil || len(u.Damaged) != 1 {
		t.Fatalf("intact slot beside a damaged one: %+v, %v", u, err)
	}
	if _, err := UnlockKeys(s, cfg.ID, Passphrase([]byte("pw2"))); !errors.Is(err, ErrCorrupt) {
		t.Errorf("the passphrase of the damaged slot: %v, want damage reported", err)
	}
	if err := RemoveKeySlot(s, ks.ID, "", true); !errors.Is(err, ErrLastKeySlot) {
		t.Errorf("remove the last intact slot beside a damaged one: %v", err)
	}
	if err := RemoveKeySlot(s, p2.ID, ks.ID, false); err != nil {
		t.Errorf("remove the damaged slot: %v", err)
	}
}

// A second init over an existing repository writes nothing.
func TestInitEncryptedRefusesExisting(t *testing.T) {
	s, _, _, _ := initEncrypted(t, "pw")
	_, _, err := InitEncrypted(s, "x", InitOptions{Chunker: ChunkerParams{Min: 64 << 10, Avg: 128 << 10, Max: 512 << 10}}, Passphrase([]byte("pw")), SlotOptions{Argon2: cheapArgon2})
	if err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("second init: %v", err)
	}
	onlySlot(t, s)
}

// The default argon2id cost, logged (no timed assertion): docs/encryption.md
// quotes it.
func TestArgon2DefaultCost(t *testing.T) {
	if testing.Short() {
		t.Skip("64 MiB derivations")
	}
	s, cfg, keys, _ := initEncrypted(t, "pw")
	start := time.Now()
	if _, err := CreateKeySlot(s, cfg.ID, keys, Passphrase([]byte("pw2")), SlotOptions{}); err != nil {
		t.Fatal(err)
	}
	mid := time.Now()
	if _, err := UnlockKeys(s, cfg.ID, Passphrase([]byte("pw2"))); err != nil {
		t.Fatal(err)
	}
	t.Logf("argon2id t=%d m=%d MiB p=%d: create %v, unlock (after a cheap slot) %v", DefaultArgon2.Time, DefaultArgon2.MemoryKiB>>10, DefaultArgon2.Threads,
		mid.Sub(start).Round(time.Millisecond), time.Since(mid).Round(time.Millisecond))
}
