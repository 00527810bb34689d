package s3store_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/url"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"citadelfs/index"
	"citadelfs/index/s3store"
	"citadelfs/internal/cephtest"
)

// newLockedStore makes a fresh bucket with Object Lock on the real RGW,
// its PUTs retained for d (locks/ exempt).
func newLockedStore(t *testing.T, d time.Duration) (*s3store.Store, string) {
	t.Helper()
	e := cephtest.Need(t)
	t.Setenv("AWS_ACCESS_KEY_ID", e.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", e.SecretKey)
	bucket := cephtest.Bucket(t)
	s, err := s3store.New(s3store.Config{Bucket: bucket, Prefix: "repo/", Endpoint: e.Endpoint})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.MakeLockedBucket(); err != nil {
		t.Fatal(err)
	}
	if err := s.SetRetention(index.RetentionCompliance, d, "locks/"); err != nil {
		t.Fatal(err)
	}
	return s, bucket
}

// thief is a plain S3 client with the same credentials as the store:
// what someone who stole a backup host's keys holds.
func thief(t *testing.T) *minio.Client {
	t.Helper()
	e := cephtest.Need(t)
	u, err := url.Parse(e.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	c, err := minio.New(u.Host, &minio.Options{Creds: credentials.NewStaticV4(e.AccessKey, e.SecretKey, ""), Region: "us-east-1", BucketLookup: minio.BucketLookupPath})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Every object but a lock is PUT under COMPLIANCE retention; Delete of a
// retained one is refused before any DELETE is sent, and the credentials
// themselves cannot remove a version: RGW refuses a DELETE by version id,
// and a plain DELETE only adds a delete marker, under which the version
// is still there to be read.
func TestS3ObjectLockRetention(t *testing.T) {
	s, bucket := newLockedStore(t, 24*time.Hour)
	data := bytes.Repeat([]byte("weights"), 1000)
	if err := s.Put("packs/aa/p.pack", data); err != nil {
		t.Fatal(err)
	}
	// The condition still holds in a versioned bucket: no second version.
	if err := s.Put("packs/aa/p.pack", []byte("other")); !errors.Is(err, index.ErrObjectExists) {
		t.Fatalf("second PUT of a name: %v, want ErrObjectExists", err)
	}
	if err := s.Put("locks/l1", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	info, err := s.Info("packs/aa/p.pack")
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Now().Add(24 * time.Hour); info.RetainUntil.Before(want.Add(-time.Minute)) || info.RetainUntil.After(want.Add(time.Minute)) {
		t.Fatalf("pack retained until %v, want about %v", info.RetainUntil, want)
	}
	if info.Size != int64(len(data)) || info.Modified.IsZero() {
		t.Fatalf("info %+v", info)
	}
	if li, err := s.Info("locks/l1"); err != nil || !li.RetainUntil.IsZero() {
		t.Fatalf("lock object: %+v, %v (want no retention)", li, err)
	}
	// A renewal moves the date out (whole seconds: wait one) and never in.
	time.Sleep(1100 * time.Millisecond)
	renewed, err := s.ExtendRetention("packs/aa/p.pack")
	if err != nil || !renewed.After(info.RetainUntil) {
		t.Fatalf("renewal: %v, %v (was %v)", renewed, err, info.RetainUntil)
	}
	if again, err := s.Info("packs/aa/p.pack"); err != nil || !again.RetainUntil.Equal(renewed) {
		t.Fatalf("after the renewal: %+v, %v, want until %v", again, err, renewed)
	}
	if u, err := s.ExtendRetention("locks/l1"); err != nil || !u.IsZero() {
		t.Fatalf("renewal of a lock object: %v %v", u, err)
	}
	err = s.Delete("packs/aa/p.pack")
	if until, ok := index.LockedUntil(err); !ok || !errors.Is(err, index.ErrObjectLocked) || until.Before(time.Now().Add(23*time.Hour)) {
		t.Fatalf("delete of a locked pack: %v", err)
	}
	if got, err := s.ReadRange("packs/aa/p.pack", 0, len(data), nil); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("after the refused delete: %v", err)
	}
	// A lock object goes entirely: no version, no delete marker left.
	if err := s.Delete("locks/l1"); err != nil {
		t.Fatal(err)
	}
	c := thief(t)
	ctx := context.Background()
	versions := func(key string) (vs []minio.ObjectInfo) {
		for o := range c.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: key, WithVersions: true, Recursive: true}) {
			if o.Err != nil {
				t.Fatal(o.Err)
			}
			vs = append(vs, o)
		}
		return vs
	}
	if vs := versions("repo/locks/"); len(vs) != 0 {
		t.Fatalf("a released lock left %d versions", len(vs))
	}

	// The thief: delete every version by id, then plainly.
	vs := versions("repo/packs/aa/p.pack")
	if len(vs) != 1 {
		t.Fatalf("%d versions of the pack", len(vs))
	}
	err = c.RemoveObject(ctx, bucket, "repo/packs/aa/p.pack", minio.RemoveObjectOptions{VersionID: vs[0].VersionID})
	if err == nil {
		t.Fatal("RGW deleted a version under COMPLIANCE retention")
	}
	t.Logf("delete by version id: %v", err)
	err = c.RemoveObject(ctx, bucket, "repo/packs/aa/p.pack", minio.RemoveObjectOptions{VersionID: vs[0].VersionID, GovernanceBypass: true})
	if err == nil {
		t.Fatal("RGW deleted a COMPLIANCE version with the governance bypass")
	}
	if err := c.RemoveObject(ctx, bucket, "repo/packs/aa/p.pack", minio.RemoveObjectOptions{}); err != nil {
		t.Fatalf("plain delete: %v", err)
	}
	if _, err := s.Stat("packs/aa/p.pack"); err == nil {
		t.Fatal("the pack is still visible under a delete marker")
	}
	obj, err := c.GetObject(ctx, bucket, "repo/packs/aa/p.pack", minio.GetObjectOptions{VersionID: vs[0].VersionID})
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(obj)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the locked version read back: %d bytes, %v", len(got), err)
	}
}

// An expired retention no longer stops Delete, which then removes every
// version (no delete marker is left behind to fill the bucket).
func TestS3ObjectLockExpiredDeletesAllVersions(t *testing.T) {
	s, bucket := newLockedStore(t, 2*time.Second)
	if err := s.Put("snapshots/x", []byte("manifest")); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete("snapshots/x"); !errors.Is(err, index.ErrObjectLocked) {
		t.Fatalf("delete inside the retention: %v", err)
	}
	time.Sleep(4 * time.Second) // past the retain-until date (whole seconds)
	if err := s.Delete("snapshots/x"); err != nil {
		t.Fatalf("delete after the retention: %v", err)
	}
	n := 0
	for o := range thief(t).ListObjects(context.Background(), bucket, minio.ListObjectsOptions{Prefix: "repo/", WithVersions: true, Recursive: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		n++
	}
	if n != 0 {
		t.Fatalf("%d versions or markers left", n)
	}
}

// init --object-lock refuses a bucket made without Object Lock.
func TestS3ObjectLockRefusesPlainBucket(t *testing.T) {
	s := newStore(t, "repo/")
	if err := s.MakeLockedBucket(); !errors.Is(err, s3store.ErrNoObjectLock) {
		t.Fatalf("MakeLockedBucket on a plain bucket: %v", err)
	}
}
