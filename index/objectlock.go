package index

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// # Object Lock
//
// A repository made with `init --object-lock DAYS` lives in a bucket with
// S3 Object Lock on (which turns versioning on), and every object
// citadelfs writes there (packs, snapshots/<id>, index/<random>,
// citadel.json, keys/<slot>) is PUT with a retention: mode COMPLIANCE, a
// retain-until date DAYS after the PUT. Until then no credential can
// delete or overwrite that version, not the host's, not the bucket
// owner's: credentials stolen from a host cannot destroy the backup.
//
// COMPLIANCE, not GOVERNANCE: a GOVERNANCE retention gives way to any
// request that carries x-amz-bypass-governance-retention from a user
// allowed s3:BypassGovernanceRetention, and the bucket owner (the very S3
// user whose keys sit on every backup host) is allowed everything on its
// bucket. GOVERNANCE would stop a mistake, not a thief. The price of
// COMPLIANCE: a retention cannot be shortened, so what prune finds
// unused still occupies the bucket until its date.
//
// Lock objects (locks/) carry no retention: a dead host's lock must be
// deletable, and they hold no data.

// ObjectLock is the retention a repository's objects are written with,
// fixed at init and recorded in citadel.json ("object_lock").
type ObjectLock struct {
	// Mode is the S3 retention mode, "COMPLIANCE" (see above).
	Mode string `json:"mode"`
	// Days is how long each object is kept from its PUT.
	Days int `json:"days"`
}

// RetentionCompliance is the retention mode init records.
const RetentionCompliance = "COMPLIANCE"

// MaxObjectLockDays bounds --object-lock (ten years): a typo of a few
// digits would otherwise lock a bucket's data for centuries.
const MaxObjectLockDays = 3650

// Duration is the retention of one object.
func (l ObjectLock) Duration() time.Duration { return time.Duration(l.Days) * 24 * time.Hour }

func (l ObjectLock) check() error {
	if l.Mode != RetentionCompliance && l.Mode != "GOVERNANCE" {
		return fmt.Errorf("object_lock mode %q is neither COMPLIANCE nor GOVERNANCE", l.Mode)
	}
	if l.Days < 1 || l.Days > MaxObjectLockDays {
		return fmt.Errorf("object_lock days %d is not within 1..%d", l.Days, MaxObjectLockDays)
	}
	return nil
}

// Retainer is a store that can write its objects under a retention (an
// S3 bucket with Object Lock). OpenStore and InitStoreWith set it from
// citadel.json; a store that is not one cannot hold such a repository.
type Retainer interface {
	// SetRetention makes every later Put and Commit carry mode and a
	// retain-until date d after the PUT, except for names under one of
	// the exempt prefixes. (A bucket without Object Lock refuses such PUTs.)
	SetRetention(mode string, d time.Duration, exempt ...string) error
}

// retentionExempt are the prefixes written without a retention: lock
// objects, which a refresh and a release delete, and the forgotten/
// markers, which prune deletes with their manifest (and an operator may
// delete to undo a forget).
var retentionExempt = []string{locksPrefix, forgottenPrefix}

// A snapshot forgotten while its snapshots/<id> object is retained is
// marked by forgotten/<id>: every host's cache then drops it, and prune
// deletes the manifest and the marker once the retention has ended.
const forgottenPrefix = "forgotten/"

func forgottenName(id ID) string { return forgottenPrefix + id.String() }

// forgottenSnapshots lists the forgotten/ markers.
func (r *Repo) forgottenSnapshots() (map[ID]bool, error) {
	out := map[ID]bool{}
	err := r.Store.List(forgottenPrefix, func(name string, _ int64) error {
		if id, err := ParseID(name[len(forgottenPrefix):]); err == nil {
			out[id] = true
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("index: list forgotten snapshots: %w", err)
	}
	return out, nil
}

// ReapForgotten deletes the manifests of forgotten snapshots whose
// retention has ended, and their markers; kept counts those still
// retained and until is when the last of them ends. Only prune (under
// the exclusive lock) runs it.
func (r *Repo) ReapForgotten() (kept int, until time.Time, err error) {
	if !r.remote {
		return 0, time.Time{}, nil
	}
	ids, err := r.forgottenSnapshots()
	if err != nil {
		return 0, time.Time{}, err
	}
	for id := range ids {
		if err := r.checkLock(); err != nil {
			return kept, until, err
		}
		err := r.Store.Delete(snapshotName(id))
		if t, ok := LockedUntil(err); ok {
			kept++
			if t.After(until) {
				until = t
			}
			continue
		}
		if err == nil {
			err = r.Store.Delete(forgottenName(id))
		}
		if err != nil {
			return kept, until, fmt.Errorf("index: forgotten snapshot %s: %w", id.Short(), err)
		}
	}
	return kept, until, nil
}

// ErrObjectLocked: a delete of an object still inside its retention,
// refused before any request that could change it was sent.
var ErrObjectLocked = errors.New("object is under retention")

// ObjectLockedError says until when an object is locked.
type ObjectLockedError struct {
	Name  string
	Until time.Time
}

func (e *ObjectLockedError) Error() string {
	return fmt.Sprintf("%s is under retention until %s", e.Name, e.Until.UTC().Format(time.RFC3339))
}

func (e *ObjectLockedError) Unwrap() error { return ErrObjectLocked }

// LockedUntil returns the retain-until date in err, if err is (or wraps)
// an ObjectLockedError.
func LockedUntil(err error) (time.Time, bool) {
	var le *ObjectLockedError
	if errors.As(err, &le) {
		return le.Until, true
	}
	return time.Time{}, false
}

// ObjectInfo is what a store knows of one object beyond its size.
type ObjectInfo struct {
	Size int64
	// Modified is when the object was written (the store's
	// LastModified, or the file's mtime).
	Modified time.Time
	// RetainUntil is the end of its retention (zero: none).
	RetainUntil time.Time
}

// InfoStore is a store that can say when an object was written and how
// long it is retained. Both real stores are.
type InfoStore interface {
	Info(name string) (ObjectInfo, error)
}

// unwrapper is a decorator that can name the store it wraps.
type unwrapper interface{ Unwrap() Store }

// StoreInfo asks s, or the store under its decorators, for Info. ok is
// false where no store on the way can say (then only the size is known).
func StoreInfo(s Store, name string) (info ObjectInfo, ok bool, err error) {
	for s != nil {
		if is, yes := s.(InfoStore); yes {
			info, err = is.Info(name)
			return info, true, err
		}
		u, yes := s.(unwrapper)
		if !yes {
			break
		}
		s = u.Unwrap()
	}
	return ObjectInfo{}, false, nil
}

// RetentionExtender is a Retainer that can move an existing object's
// retain-until date out to a full retention from now.
type RetentionExtender interface {
	ExtendRetention(name string) (until time.Time, err error)
}

// ExtendRetention renews the retention of what the repository still uses,
// so that data older than its retention but still referenced (the base
// model every snapshot shares) stays out of a thief's reach: the given
// live packs, every snapshot's manifest object, citadel.json and the key
// slots. Index objects are not renewed: they only speed up a new host's
// sync, which the pack trailers can replace. Only prune runs it, with the
// packs it keeps. n counts the objects renewed; until is their new date.
func (r *Repo) ExtendRetention(livePacks []ID) (n int, until time.Time, err error) {
	if !r.remote || r.Config.ObjectLock == nil {
		return 0, time.Time{}, nil
	}
	var ext RetentionExtender
	for s := r.Store; s != nil; {
		if e, ok := s.(RetentionExtender); ok {
			ext = e
			break
		}
		u, ok := s.(unwrapper)
		if !ok {
			break
		}
		s = u.Unwrap()
	}
	if ext == nil {
		return 0, time.Time{}, nil
	}
	names := []string{configName}
	for _, id := range livePacks {
		names = append(names, PackName(id))
	}
	if err := r.Snapshots(func(id ID, _ []byte) error {
		names = append(names, snapshotName(id))
		return nil
	}); err != nil {
		return 0, time.Time{}, err
	}
	if err := r.Store.List(keysPrefix, func(name string, _ int64) error {
		names = append(names, name)
		return nil
	}); err != nil {
		return 0, time.Time{}, fmt.Errorf("index: list key slots: %w", err)
	}
	if err := r.rlock.Check(); err != nil {
		return 0, time.Time{}, err
	}
	type result struct {
		until time.Time
		err   error
	}
	out := make([]result, len(names))
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			t, err := ext.ExtendRetention(name)
			out[i] = result{t, err}
		}()
	}
	wg.Wait()
	for i, o := range out {
		if o.err != nil {
			if isNotExist(o.err) {
				continue // gone meanwhile (a forgotten snapshot's pack)
			}
			return n, until, fmt.Errorf("index: renew the retention of %s: %w", names[i], o.err)
		}
		if !o.until.IsZero() {
			n++
			if o.until.After(until) {
				until = o.until
			}
		}
	}
	return n, until, nil
}

// IsDirectoryStore reports whether s, under its decorators, is a local
// directory (a LocalStore): one host's, where prune needs no grace.
func IsDirectoryStore(s Store) bool {
	for s != nil {
		if _, ok := s.(*LocalStore); ok {
			return true
		}
		u, ok := s.(unwrapper)
		if !ok {
			return false
		}
		s = u.Unwrap()
	}
	return false
}

// asRetainer finds the Retainer under s's decorators.
func asRetainer(s Store) (Retainer, bool) {
	for s != nil {
		if r, ok := s.(Retainer); ok {
			return r, true
		}
		u, ok := s.(unwrapper)
		if !ok {
			break
		}
		s = u.Unwrap()
	}
	return nil, false
}

// applyObjectLock makes s write with cfg's retention, if it has one.
func applyObjectLock(s Store, cfg *Config, location string) error {
	if cfg.ObjectLock == nil {
		return nil
	}
	r, ok := asRetainer(s)
	if !ok {
		return fmt.Errorf("index: %s records an object lock of %d days, which this store cannot keep (only an s3:// bucket with Object Lock can)", location, cfg.ObjectLock.Days)
	}
	if err := r.SetRetention(cfg.ObjectLock.Mode, cfg.ObjectLock.Duration(), retentionExempt...); err != nil {
		return fmt.Errorf("index: %s: %w", location, err)
	}
	return nil
}
