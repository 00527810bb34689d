package index

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// FormatVersion is the repository format this binary writes: version
// 2 names its encryption in citadel.json ("aes-256-gcm" or "none", crypt.go).
// Version 1 repositories (always in the clear, no encryption field) are
// still read and written as they are; nothing upgrades them in place
// (`citadelfs migrate` copies one into a new encrypted repository).
const FormatVersion = 2

// oldestFormatVersion is the oldest format this binary still reads.
const oldestFormatVersion = 1

// Sentinel errors owned by the index package; check with errors.Is.
var (
	// ErrNoRepository: the path holds no citadelfs repository.
	ErrNoRepository = errors.New("no repository")
	// ErrVersion: the repository's format version is not supported.
	ErrVersion = errors.New("unsupported repository format version")
	// ErrLocked: another process holds the repository.
	ErrLocked = errors.New("repository is locked")
	// ErrCorrupt: bytes read from disk fail their checks.
	ErrCorrupt = errors.New("corrupt data")
)

// Config is citadel.json: what a reader must know before touching packs.
type Config struct {
	Version int       `json:"version"`
	ID      string    `json:"id"`
	Created time.Time `json:"created"`
	// Hash names the chunk hash ("blake3").
	Hash string `json:"hash"`
	// Chunker parameters; changing them breaks dedup with older snapshots,
	// so they are fixed at init.
	Chunker ChunkerParams `json:"chunker"`
	// Encryption is "aes-256-gcm" for an encrypted repository (format
	// version 2: crypt.go, key slots in the store), "none" for a version 2
	// repository in the clear, and empty in version 1 (always clear). It
	// is omitted when empty, so a version 1 file's checksum is unchanged.
	Encryption string `json:"encryption,omitempty"`
	// ObjectLock is the retention every object is written with (an
	// s3:// repository made with init --object-lock; objectlock.go).
	// Absent otherwise, so older files keep their checksum.
	ObjectLock *ObjectLock `json:"object_lock,omitempty"`
	// Checksum is "blake3:" and the hex BLAKE3-256 of the canonical JSON
	// of every other field (configChecksum): citadel.json is the one file
	// a reader trusts before anything else, and JSON alone catches only
	// the flips that break its syntax. Empty in files written before it
	// existed (see upgradeConfig).
	Checksum string `json:"checksum,omitempty"`
}

// configChecksum is the checksum citadel.json must carry for cfg: over
// encoding/json's compact rendering of cfg without its checksum, whose
// field order is the struct's and whose numbers and times print one way.
func configChecksum(cfg Config) string {
	cfg.Checksum = ""
	data, err := json.Marshal(cfg)
	if err != nil {
		panic(err) // plain strings, numbers and a UTC time always marshal
	}
	return "blake3:" + Hash(data).String()
}

// encodeConfig renders citadel.json, checksum included.
func encodeConfig(cfg Config) []byte {
	cfg.Checksum = configChecksum(cfg)
	data, _ := json.MarshalIndent(cfg, "", "  ")
	return append(data, '\n')
}

// Encryption names (Config.Encryption).
const (
	EncryptionAESGCM = "aes-256-gcm"
	EncryptionNone   = "none"
)

// Encrypted reports whether the repository's objects are sealed
// (crypt.go): opening it needs its keys (Options.Keys).
func (c *Config) Encrypted() bool { return c.Encryption == EncryptionAESGCM }

// StoreLayout reports whether a local directory holding this
// repository has the store layout (remote.go: citadel.json, keys/,
// packs/, snapshots/, index objects, locks/, its Pebble index a cache
// outside the repository) rather than the directory layout (a Pebble
// index/ inside it): every encrypted repository does, since Pebble holds
// file names, labels and paths in the clear.
func (c *Config) StoreLayout() bool { return c.Encrypted() }

// ErrNeedKey: an encrypted repository opened without its keys.
var ErrNeedKey = errors.New("the repository is encrypted: its key is needed")

// checkKeys says whether keys fit the repository cfg describes: an
// encrypted one needs them, one in the clear must not get any (its ids
// are plain BLAKE3).
func checkKeys(cfg *Config, keys *Keys, location string) error {
	switch {
	case cfg.Encrypted() && keys == nil:
		return fmt.Errorf("index: %s: %w", location, ErrNeedKey)
	case !cfg.Encrypted() && keys != nil:
		return fmt.Errorf("index: %s is not encrypted, but keys were given", location)
	}
	return nil
}

// ChunkerParams are the content-defined chunking sizes in bytes.
type ChunkerParams struct {
	Min  int    `json:"min"`
	Avg  int    `json:"avg"`
	Max  int    `json:"max"`
	Seed uint64 `json:"seed"`
}

const (
	configName = "citadel.json"
	packsDir   = "packs"
	indexDir   = "index"
	lockName   = "lock"
)

// Init creates a new repository at dir with the default reserve. dir may
// exist but must be empty.
func Init(dir string, cp ChunkerParams, now time.Time) (*Config, error) {
	return InitWithReserve(dir, cp, now, -1)
}

// InitWithReserve creates a new repository at dir whose reserve file
// (reserve.go) is reserve bytes; 0 makes it empty, which turns it off,
// and a negative value picks the default (defaultReserve).
func InitWithReserve(dir string, cp ChunkerParams, now time.Time, reserve int64) (*Config, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("index: init %s: %w", dir, err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("index: init %s: %w", dir, err)
	}
	if len(ents) > 0 {
		if _, err := os.Stat(filepath.Join(dir, configName)); err == nil {
			return nil, fmt.Errorf("index: init %s: a repository already exists there", dir)
		}
		return nil, fmt.Errorf("index: init %s: directory is not empty", dir)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("index: init %s: %w", dir, err)
	}
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, fmt.Errorf("index: init: %w", err)
	}
	cfg := &Config{Version: FormatVersion, ID: hex.EncodeToString(id[:]), Created: now.UTC(), Hash: "blake3", Chunker: cp,
		Encryption: EncryptionNone} // an encrypted repository has the store layout: InitStoreWith
	for _, sub := range []string{packsDir, indexDir} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o700); err != nil {
			return nil, fmt.Errorf("index: init: %w", err)
		}
	}
	kv, err := OpenKV(filepath.Join(dir, indexDir), KVOptions{})
	if err != nil {
		return nil, err
	}
	if err := kv.Close(); err != nil {
		return nil, err
	}
	cfg.Checksum = configChecksum(*cfg)
	if reserve != 0 {
		if err := holdReserve(dir, reserve); err != nil {
			return nil, fmt.Errorf("index: init: %w", err)
		}
	} else if err := writeFileSync(filepath.Join(dir, reserveName), nil, 0o600); err != nil {
		return nil, fmt.Errorf("index: init: %w", err)
	}
	// citadel.json goes last: a directory without it is not a repository,
	// so an init killed halfway is simply retried.
	if err := writeFileSync(filepath.Join(dir, configName), encodeConfig(*cfg), 0o600); err != nil {
		return nil, fmt.Errorf("index: init: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return nil, fmt.Errorf("index: init: %w", err)
	}
	return cfg, nil
}

// ReadConfig reads and validates citadel.json.
func ReadConfig(dir string) (*Config, error) {
	data, err := os.ReadFile(filepath.Join(dir, configName))
	if errors.Is(err, syscall.ENOTDIR) {
		return nil, fmt.Errorf("%s is not a directory: %w", dir, ErrNoRepository)
	}
	if errors.Is(err, fs.ErrNotExist) {
		if _, serr := os.Stat(dir); serr != nil {
			return nil, fmt.Errorf("%s does not exist: %w (create one with 'citadelfs init --repo %s')", dir, ErrNoRepository, dir)
		}
		return nil, fmt.Errorf("%s has no %s: %w (create one with 'citadelfs init --repo %s')", dir, configName, ErrNoRepository, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("index: read %s: %w", configName, err)
	}
	return parseConfig(dir, data)
}

// parseConfig checks citadel.json's bytes in the order that gives the
// truest message: the version first (another version may lay the file
// out differently, so its checksum is not ours to judge), then the
// checksum, then the parameters' bounds.
func parseConfig(dir string, data []byte) (*Config, error) {
	path := strings.TrimSuffix(dir, "/") + "/" + configName // dir may be s3://bucket/prefix, which filepath.Join would fold
	var v struct {
		Version int `json:"version"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("index: %s is not valid JSON (%v): %w", path, err, ErrCorrupt)
	}
	// Unknown keys are refused: a flip inside a key's name ("chunker" to
	// "chunkes", "checksum" to "checksuo") would otherwise drop the field
	// silently, and with it the checksum.
	var cfg Config
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	decErr := dec.Decode(&cfg)
	if v.Version < oldestFormatVersion || v.Version > FormatVersion {
		if decErr == nil && cfg.Checksum != "" && cfg.Checksum != configChecksum(cfg) {
			return nil, fmt.Errorf("%s says format version %d, this binary reads versions %d to %d, and its checksum does not match: the file may be damaged (compare it with a copy): %w",
				path, v.Version, oldestFormatVersion, FormatVersion, ErrVersion)
		}
		return nil, fmt.Errorf("%s: format version %d, this binary reads versions %d to %d: %w", dir, v.Version, oldestFormatVersion, FormatVersion, ErrVersion)
	}
	if decErr != nil {
		return nil, fmt.Errorf("index: %s is not valid (%v): %w", path, decErr, ErrCorrupt)
	}
	if cfg.Checksum != "" && cfg.Checksum != configChecksum(cfg) {
		return nil, fmt.Errorf("index: %s fails its checksum: the file is damaged; restore it from a copy (its id is the repository's, its other fields are fixed at init): %w", path, ErrCorrupt)
	}
	if err := cfg.Chunker.check(); err != nil {
		return nil, fmt.Errorf("index: %s: %v: %w", path, err, ErrCorrupt)
	}
	if cfg.Hash != "blake3" {
		return nil, fmt.Errorf("index: %s: hash %q, want \"blake3\": %w", path, cfg.Hash, ErrCorrupt)
	}
	if cfg.ObjectLock != nil {
		if err := cfg.ObjectLock.check(); err != nil {
			return nil, fmt.Errorf("index: %s: %v: %w", path, err, ErrCorrupt)
		}
	}
	// Version 1 has no encryption field (always clear); version 2 must
	// name one: a version 2 file without it would be opened in the clear.
	switch {
	case cfg.Version == 1 && cfg.Encryption != "":
		return nil, fmt.Errorf("index: %s: format version 1 with encryption %q: %w", path, cfg.Encryption, ErrCorrupt)
	case cfg.Version >= 2 && cfg.Encryption != EncryptionAESGCM && cfg.Encryption != EncryptionNone:
		return nil, fmt.Errorf("index: %s: encryption %q, want %q or %q: %w", path, cfg.Encryption, EncryptionAESGCM, EncryptionNone, ErrCorrupt)
	}
	return &cfg, nil
}

// check bounds the chunker parameters before anything sizes a buffer by
// them: a chunk is one blob, so no chunk may exceed MaxBlobSize, and a
// reader allocates a few times Max per worker. The chunker's own rules
// (its minimum and the power-of-two average) are chunker.Params.Validate,
// checked where the chunker is set up (snapshot.Open).
func (p ChunkerParams) check() error {
	if p.Min <= 0 || p.Avg < p.Min || p.Max < p.Avg || p.Max > MaxBlobSize {
		return fmt.Errorf("chunker sizes min=%d avg=%d max=%d are out of bounds (want 0 < min <= avg <= max <= %d)", p.Min, p.Avg, p.Max, MaxBlobSize)
	}
	return nil
}

// upgradeConfig gives a citadel.json written before checksums existed its
// checksum, atomically (a temporary file, fsynced, renamed over it, the
// directory fsynced), so a writer seals the file once and every later
// open verifies it. Best effort: a full or read-only disk leaves the old
// file, which stays valid, and the next writer tries again.
func upgradeConfig(dir string, cfg *Config) {
	if cfg.Checksum != "" {
		return
	}
	tmp := filepath.Join(dir, configName+".tmp")
	os.Remove(tmp) // a leftover of a writer killed here
	sealed := *cfg
	sealed.Checksum = configChecksum(sealed)
	if err := writeFileSync(tmp, encodeConfig(sealed), 0o600); err != nil {
		os.Remove(tmp)
		return
	}
	if err := os.Rename(tmp, filepath.Join(dir, configName)); err != nil {
		os.Remove(tmp)
		return
	}
	if syncDir(dir) == nil {
		cfg.Checksum = sealed.Checksum
	}
}

func writeFileSync(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
