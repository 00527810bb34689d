// Package index is the repository: citadel.json, the pack files, the
// Pebble index of which blob lives where, snapshot records, and the lock.
// It imports no other package of the project.
//
// # Files
//
// open.go opens and closes a repository (Repo, Options); keys.go is the
// namespace table of every Pebble key prefix, the monitor's history
// included (namespaces: owner, and what `repair index` carries over), and
// the functions that build keys; blobref.go the blob index entries
// (BlobRef, Lookup); packs.go the packs' index records, listing and
// trailers; snapshots.go the snapshot records; readpath.go reads a blob's
// stored bytes (O_DIRECT for cold big blobs); packcache.go the bounded set
// of open pack files; records.go and recordstore.go the records other
// packages keep in the index and the typed stores they go through
// (CheckStore, AttemptStore, ...), filecache.go snapshot's file-change
// cache, historystore.go the monitor's samples and alert events
// (HistoryStore). No other package puts or scans raw keys on the KV.
//
// # Packs go through a Store
//
// Every pack byte is read and written through Store (store.go): put if
// absent, read a byte range, stat, list by prefix, delete, plus a streamed
// object named only when it is committed (a pack is named by its content).
// LocalStore is a repository directory and keeps the directory's
// behaviour: O_DIRECT writes through aligned buffers, truncate, fsync,
// rename into packs/<xx>/, fsync of the directory, and only then the index
// commit; reads through a bounded set of open files, O_DIRECT for cold big
// blobs. s3store (a sub-package) is an S3 bucket. ReadOnlyStore and
// FaultyStore decorate either (store_decorators.go); Options.WrapStore
// puts a decorator under a repository, which is how the ENOSPC and EIO
// paths of snapshot, prune, repair and restore are tested without root or
// tmpfs. index/storetest is the contract both implementations pass.
//
// # Remote repositories
//
// A repository in a Store alone (OpenStore, remote.go) keeps citadel.json,
// the packs, snapshots/<id> (the manifest; the snapshot exists while it
// does), index/<random> (the packs one process committed, with their
// entries) and locks/<random> in the store. Its Pebble index is a cache on
// this host (Options.CacheDir) that every open brings up to date with the
// store (SyncCache): from index objects, then pack trailers by ranged
// reads, dropping packs the store no longer has. Deleted, it is rebuilt.
// Beside it, BlobCache (blobcache.go) keeps the stored bytes of blobs
// that reads fetched, bounded and least recently used first, each entry
// checked by its CRC on every hit; Repo.ReadStoredCached reads through it,
// ReadStored never does (check, copy, prune and repair read the store).
//
// # Object Lock
//
// objectlock.go: a repository made with init --object-lock records its
// retention in citadel.json; every open sets it on the store (Retainer),
// so everything but locks/ and forgotten/ markers is PUT under a
// COMPLIANCE retention. A delete of a retained object fails with
// ErrObjectLocked (ObjectLockedError says until when) before any request;
// forget then leaves a forgotten/<id> marker, and prune keeps such
// objects (StoreInfo gives their retention and LastModified, which the
// prune grace uses too) until ReapForgotten and a later prune can delete
// them.
//
// # Encryption and key slots
//
// Format version 2 names its encryption in citadel.json (repo.go); an
// encrypted repository has the store layout even in a local directory
// (Config.StoreLayout: Open refuses it, OpenStore over NewLocalStore opens
// it), because its Pebble index holds names in the clear and so is a cache
// outside it. crypt.go derives its keys from one master key; keyslots.go
// wraps that key in keys/<id> objects, one per passphrase (argon2id) or
// key file (BLAKE3), under AES-256-GCM with the repository id and every
// slot field as additional data, and a checksum so a damaged slot is
// ErrCorrupt and a wrong passphrase ErrWrongKey (docs/encryption.md).
// InitEncrypted writes the first slot before citadel.json.
//
// # Locks
//
// A local repository is locked with flock(2) on <repo>/lock (lock.go): one
// writer, or many readers. A remote one with lock objects in the store
// (lock_store.go): shared for snapshots and reads, exclusive for prune and
// repair, and reader for a mount daemon, which excludes nothing and which
// no prune waits for (the daemon's reads find pruned blobs again, in
// snapshot's read path; its commands take their own lock beside it,
// Repo.LockCommand); refreshed while held and ignored by others once
// expired.
//
// # Errors
//
// Sentinels live in repo.go and store.go: ErrNoRepository, ErrVersion,
// ErrLocked, ErrCorrupt (bytes that fail their checks: never returned as
// data), ErrDiskFull, ErrObjectExists, ErrStoreUnavailable. A store or disk
// that fails a read is an error, not a finding of damage.
package index
