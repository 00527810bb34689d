package s3store

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"

	"citadelfs/index"
)

// Object Lock (init --object-lock DAYS; the decisions are in index's
// objectlock.go). The bucket is made with Object Lock, which S3 and RGW
// allow only at creation and which turns versioning on for good. Each PUT
// then carries x-amz-object-lock-mode and -retain-until-date, and stays
// single-part (RGW honours If-None-Match only there).
//
// In a versioned bucket a DELETE without a version id removes nothing:
// it adds a delete marker, which hides the object from every listing
// while its bytes stay. So Delete never sends one in a locked
// repository: it asks each version's retention first, refuses with an
// index.ObjectLockedError while any is retained, and deletes by version id
// (delete markers included) once none is, so an expired pack leaves
// nothing behind.

// ErrNoObjectLock: the bucket was made without Object Lock.
var ErrNoObjectLock = errors.New("bucket has no object lock")

// MakeLockedBucket creates the bucket with Object Lock on, or accepts an
// existing one only if it has Object Lock.
func (s *Store) MakeLockedBucket() error {
	w := s.watch()
	defer w.done()
	ok, err := s.c.BucketExists(w.ctx, s.bucket)
	if err != nil {
		return w.wrap(s, "bucket "+s.bucket, err)
	}
	w.progress()
	if !ok {
		err := s.c.MakeBucket(w.ctx, s.bucket, minio.MakeBucketOptions{ObjectLocking: true})
		if err == nil {
			return nil
		}
		if minio.ToErrorResponse(err).Code != "BucketAlreadyOwnedByYou" {
			return w.wrap(s, "make bucket "+s.bucket+" with object lock", err)
		}
		w.progress()
	}
	return s.checkObjectLock(w)
}

func (s *Store) checkObjectLock(w *watch) error {
	enabled, _, _, _, err := s.c.GetObjectLockConfig(w.ctx, s.bucket)
	if err != nil {
		resp := minio.ToErrorResponse(err)
		if w.stalled() || resp.StatusCode != http.StatusNotFound && !strings.Contains(resp.Code, "ObjectLockConfiguration") {
			return w.wrap(s, "object lock of bucket "+s.bucket, err)
		}
	}
	if enabled != "Enabled" {
		return fmt.Errorf("s3store: bucket %s exists without Object Lock, which a bucket can only get when it is made (name a new bucket): %w", s.bucket, ErrNoObjectLock)
	}
	return nil
}

// SetRetention makes later PUTs carry mode and a retain-until date d
// after the PUT, except for names under the exempt prefixes.
func (s *Store) SetRetention(mode string, d time.Duration, exempt ...string) error {
	m := minio.RetentionMode(mode)
	if !m.IsValid() || d <= 0 {
		return fmt.Errorf("s3store: retention %s for %s is not one S3 takes", mode, d)
	}
	s.lockMode, s.lockFor, s.lockExempt = m, d, exempt
	return nil
}

// retained reports whether name is written under a retention.
func (s *Store) retained(name string) bool {
	if s.lockFor <= 0 {
		return false
	}
	for _, p := range s.lockExempt {
		if strings.HasPrefix(name, p) {
			return false
		}
	}
	return true
}

// putAbsent refuses a PUT over an existing name in a versioned bucket,
// where RGW 16.2 ignores If-None-Match (measured: the second PUT of a
// name succeeded and made a second version). A HEAD first closes all but
// the race of two PUTs at the same moment: for a content-named object
// (pack, snapshot) both hold the same bytes; index and lock objects have
// random names; citadel.json is put once, by init.
func (s *Store) putAbsent(name string) error {
	_, err := s.Stat(name)
	switch {
	case err == nil:
		return fmt.Errorf("s3store: put %s: %w", name, index.ErrObjectExists)
	case errors.Is(err, fs.ErrNotExist):
		return nil
	}
	return err
}

// putRetention adds the retention to a PUT of name.
func (s *Store) putRetention(name string, opts *minio.PutObjectOptions) {
	if s.retained(name) {
		opts.Mode = s.lockMode
		// Whole seconds: S3 dates have no finer grain, and rounding up
		// keeps at least the promised span.
		opts.RetainUntilDate = time.Now().Add(s.lockFor + time.Second).Truncate(time.Second).UTC()
	}
}

// Info is a HEAD: size, LastModified and the retain-until date.
func (s *Store) Info(name string) (index.ObjectInfo, error) {
	w := s.watch()
	defer w.done()
	info, err := s.c.StatObject(w.ctx, s.bucket, s.key(name), minio.StatObjectOptions{})
	if err != nil {
		return index.ObjectInfo{}, w.wrap(s, "stat "+name, err)
	}
	out := index.ObjectInfo{Size: info.Size, Modified: info.LastModified}
	if until, ok := retainUntilHeader(info.Headers); ok {
		out.RetainUntil = until
	} else if s.lockFor > 0 && info.VersionID != "" {
		until, err := s.versionRetention(name, info.VersionID)
		if err != nil {
			return index.ObjectInfo{}, err
		}
		out.RetainUntil = until
	}
	return out, nil
}

func retainUntilHeader(h http.Header) (time.Time, bool) {
	v := h.Get("X-Amz-Object-Lock-Retain-Until-Date")
	if v == "" {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339, v)
	return t, err == nil
}

// versionRetention is one version's retain-until date (zero: none).
func (s *Store) versionRetention(name, version string) (time.Time, error) {
	w := s.watch()
	defer w.done()
	_, until, err := s.c.GetObjectRetention(w.ctx, s.bucket, s.key(name), version)
	if err != nil {
		resp := minio.ToErrorResponse(err)
		if !w.stalled() && (strings.Contains(resp.Code, "ObjectLockConfiguration") || resp.Code == "NoSuchObjectLockConfiguration") {
			return time.Time{}, nil // a version written without a retention
		}
		return time.Time{}, w.wrap(s, "retention of "+name, err)
	}
	if until == nil {
		return time.Time{}, nil
	}
	return *until, nil
}

// objectVersion is one version (or delete marker) of a key.
type objectVersion struct {
	id     string
	marker bool
}

// versions lists every version and delete marker of name.
func (s *Store) versions(name string) ([]objectVersion, error) {
	w := s.watch()
	defer w.done()
	key := s.key(name)
	var out []objectVersion
	for obj := range s.c.Client.ListObjects(w.ctx, s.bucket, minio.ListObjectsOptions{Prefix: key, Recursive: true, WithVersions: true}) {
		if obj.Err != nil {
			return nil, w.wrap(s, "list versions of "+name, obj.Err)
		}
		w.progress()
		if obj.Key == key {
			out = append(out, objectVersion{obj.VersionID, obj.IsDeleteMarker})
		}
	}
	return out, nil
}

// deleteVersions removes every version of name, or none: while one is
// retained it returns an index.ObjectLockedError and sends no DELETE.
func (s *Store) deleteVersions(name string) error {
	vs, err := s.versions(name)
	if err != nil {
		return err
	}
	now := time.Now()
	var until time.Time
	for _, v := range vs {
		if v.marker || !s.retained(name) {
			continue
		}
		t, err := s.versionRetention(name, v.id)
		if err != nil {
			return err
		}
		if t.After(now) && t.After(until) {
			until = t
		}
	}
	if !until.IsZero() {
		return &index.ObjectLockedError{Name: name, Until: until}
	}
	for _, v := range vs {
		if err := s.removeVersion(name, v.id); err != nil {
			return err
		}
	}
	return nil
}

// removeVersion deletes one version of name; a missing one is success.
func (s *Store) removeVersion(name, version string) error {
	w := s.watch()
	defer w.done()
	err := s.c.RemoveObject(w.ctx, s.bucket, s.key(name), minio.RemoveObjectOptions{VersionID: version})
	if err != nil && (w.stalled() || !errors.Is(s.wrap("", err), fs.ErrNotExist)) {
		return w.wrap(s, "delete "+name+" version "+version, err)
	}
	return nil
}

// UndeleteResult says what Undelete found and did.
type UndeleteResult struct {
	// Restored counts the objects visible again (per top-level prefix
	// in ByPrefix: packs, snapshots, index, citadel.json, ...).
	Restored int            `json:"restored"`
	ByPrefix map[string]int `json:"by_prefix"`
	// Markers counts the delete markers removed (or, dry, to remove).
	Markers int  `json:"markers_removed"`
	DryRun  bool `json:"dry_run"`
}

// Undelete removes the delete markers that hide an object version under
// the prefix (a plain DELETE in a versioned bucket lays one and removes
// nothing), so each such object is visible again as its newest version.
// Lock objects are left hidden. A marker over no version hides nothing
// and is removed too. A bucket with Object Lock allows this to any
// credential: markers carry no retention.
func (s *Store) Undelete(dryRun bool) (*UndeleteResult, error) {
	w := s.watch()
	defer w.done()
	type state struct {
		markers  []string
		versions int
		hidden   bool // the newest entry is a marker
	}
	keys := map[string]*state{}
	for obj := range s.c.Client.ListObjects(w.ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.prefix, Recursive: true, WithVersions: true}) {
		if obj.Err != nil {
			return nil, w.wrap(s, "list versions", obj.Err)
		}
		w.progress()
		name, ok := strings.CutPrefix(obj.Key, s.prefix)
		if !ok || strings.HasPrefix(name, "locks/") {
			continue
		}
		st := keys[name]
		if st == nil {
			st = &state{}
			keys[name] = st
		}
		if obj.IsDeleteMarker {
			st.markers = append(st.markers, obj.VersionID)
			if obj.IsLatest {
				st.hidden = true
			}
		} else {
			st.versions++
		}
	}
	res := &UndeleteResult{ByPrefix: map[string]int{}, DryRun: dryRun}
	for name, st := range keys {
		if len(st.markers) == 0 {
			continue
		}
		if st.hidden && st.versions > 0 {
			res.Restored++
			res.ByPrefix[strings.SplitN(name, "/", 2)[0]]++
		}
		for _, v := range st.markers {
			res.Markers++
			if dryRun {
				continue
			}
			if err := s.removeMarker(name, v); err != nil {
				return res, err
			}
		}
	}
	return res, nil
}

// removeMarker removes the delete marker version of name.
func (s *Store) removeMarker(name, version string) error {
	w := s.watch()
	defer w.done()
	if err := s.c.RemoveObject(w.ctx, s.bucket, s.key(name), minio.RemoveObjectOptions{VersionID: version}); err != nil {
		return w.wrap(s, "remove the delete marker of "+name, err)
	}
	return nil
}

// ExtendRetention moves name's retain-until date (its newest version's)
// to the store's retention from now: a COMPLIANCE date can be moved out,
// never in. An exempt name or a store without retention is left alone.
func (s *Store) ExtendRetention(name string) (time.Time, error) {
	if !s.retained(name) {
		return time.Time{}, nil
	}
	mode := s.lockMode
	until := time.Now().Add(s.lockFor + time.Second).Truncate(time.Second).UTC()
	w := s.watch()
	defer w.done()
	err := s.c.PutObjectRetention(w.ctx, s.bucket, s.key(name), minio.PutObjectRetentionOptions{Mode: &mode, RetainUntilDate: &until})
	if err != nil {
		return time.Time{}, w.wrap(s, "extend the retention of "+name, err)
	}
	return until, nil
}
