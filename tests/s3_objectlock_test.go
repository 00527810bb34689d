package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"citadelfs/internal/cephtest"
)

// thiefClient is a plain S3 client holding the repository's own
// credentials: what ransomware on a backup host, or whoever stole its
// keys, has.
func thiefClient(t *testing.T) *minio.Client {
	t.Helper()
	e := cephtest.Need(t)
	u, err := url.Parse(e.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	c, err := minio.New(u.Host, &minio.Options{Creds: credentials.NewStaticV4(e.AccessKey, e.SecretKey, ""),
		Region: "us-east-1", BucketLookup: minio.BucketLookupPath})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// s3Version is one version (or delete marker) in the bucket.
type s3Version struct {
	key, id string
	marker  bool
}

func listVersions(t *testing.T, c *minio.Client, bucket, prefix string) []s3Version {
	t.Helper()
	var out []s3Version
	for o := range c.ListObjects(context.Background(), bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true, WithVersions: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		out = append(out, s3Version{o.Key, o.VersionID, o.IsDeleteMarker})
	}
	return out
}

func (r *s3Repo) bucket() string {
	b, _, _ := strings.Cut(strings.TrimPrefix(r.url, "s3://"), "/")
	return b
}

// init --object-lock makes a bucket with Object Lock and records the
// retention; every object a snapshot writes carries it (COMPLIANCE, a day
// out). With the repository's own credentials a thief cannot delete a
// single version (RGW refuses each DELETE by version id, the governance
// bypass too); a plain DELETE only lays a delete marker over each object,
// under which every version still reads back byte for byte, and once the
// markers are removed the snapshot restores identical. A bucket made
// without Object Lock is refused in one line, exit 2.
func TestS3ObjectLockSurvivesStolenCredentials(t *testing.T) {
	t.Parallel() // RGW round trips overlap
	dir := t.TempDir()
	plain := newS3Repo(t)
	plain.must(t, filepath.Join(dir, "cache-plain"), "init", "--encryption", "none", "--insecure-no-encryption")
	res := citadelEnv(t, plain.env, "init", "--encryption", "none", "--insecure-no-encryption", "--repo", "s3://"+plain.bucket()+"/locked", "--s3-endpoint", plain.endpoint,
		"--cache-dir", filepath.Join(dir, "cache-x"), "--object-lock", "1")
	assertOneLineError(t, res, 2, "Object Lock")
	assertOneLineError(t, citadel(t, "init", "--repo", filepath.Join(dir, "local"), "--object-lock", "1"), 2, "s3://")
	assertOneLineError(t, citadelEnv(t, plain.env, "init", "--encryption", "none", "--insecure-no-encryption", "--repo", "s3://"+plain.bucket()+"/x",
		"--s3-endpoint", plain.endpoint, "--cache-dir", filepath.Join(dir, "cache-y"), "--object-lock", "36500"), 2, "days")
	assertOneLineError(t, plain.run(t, filepath.Join(dir, "cache-plain"), "prune", "--grace", "-1h"), 2, "--grace")
	assertOneLineError(t, plain.run(t, filepath.Join(dir, "cache-plain"), "forget", "--keep-last", "1", "--prune", "--grace", "-5m"), 2, "--grace")

	r := newS3Repo(t)
	src := smallCorpus(t, dir)
	cache := filepath.Join(dir, "cache")
	if out := r.must(t, cache, "init", "--encryption", "none", "--insecure-no-encryption", "--object-lock", "1").stdout; !strings.Contains(out, "1 days") {
		t.Fatalf("init --object-lock: %q", out)
	}
	size, err := r.store.Stat("citadel.json")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := r.store.ReadRange("citadel.json", 0, int(size), nil)
	if err != nil || !strings.Contains(string(cfg), `"mode": "COMPLIANCE"`) || !strings.Contains(string(cfg), `"days": 1`) {
		t.Fatalf("citadel.json: %v\n%s", err, cfg)
	}
	r.must(t, cache, append([]string{"snapshot"}, sourceFlags(src)...)...)
	if err := os.WriteFile(filepath.Join(src, "configs", "new.yaml"), bytes.Repeat([]byte("lr: 3e-4\n"), 4000), 0o644); err != nil {
		t.Fatal(err)
	}
	r.must(t, cache, append([]string{"snapshot"}, sourceFlags(src)...)...)
	c := thiefClient(t)
	ctx := context.Background()
	bucket := r.bucket()

	// forget --prune of a snapshot inside its retention: nothing is
	// deleted, no delete marker is laid, and prune says what it kept and
	// until when; the snapshot is gone from every host's list.
	before := listVersions(t, c, bucket, "fleet/")
	retention := func(key string) time.Time {
		t.Helper()
		_, until, err := c.GetObjectRetention(ctx, bucket, key, "")
		if err != nil || until == nil {
			t.Fatalf("retention of %s: %v", key, err)
		}
		return *until
	}
	cfgUntil := retention("fleet/citadel.json")
	time.Sleep(time.Second) // retention dates have whole seconds
	res = r.must(t, cache, "forget", "--keep-last", "1", "--prune", "--grace", "0", "--json")
	var fo struct {
		Prune struct {
			Kept    int        `json:"objects_kept_locked"`
			Until   *time.Time `json:"locked_until"`
			Freed   int64      `json:"bytes_freed"`
			Renewed int        `json:"retention_renewed"`
		} `json:"prune"`
	}
	if err := json.Unmarshal([]byte(res.stdout), &fo); err != nil || fo.Prune.Kept < 2 || fo.Prune.Until == nil ||
		fo.Prune.Until.Before(time.Now().Add(23*time.Hour)) || fo.Prune.Freed != 0 || fo.Prune.Renewed < 3 {
		t.Fatalf("forget --prune under retention: %v\n%s", err, res)
	}
	// What stays in use had its retention renewed from now.
	if got := retention("fleet/citadel.json"); !got.After(cfgUntil) {
		t.Fatalf("citadel.json retained until %v after prune, %v before", got, cfgUntil)
	}
	if res := r.must(t, cache, "prune", "--grace", "0"); !strings.Contains(res.stdout, "kept") || !strings.Contains(res.stdout, "Object Lock") {
		t.Fatalf("prune's text: %s", res)
	}
	var after []s3Version
	for _, v := range listVersions(t, c, bucket, "fleet/") {
		if v.marker {
			t.Fatalf("a delete marker on %s", v.key)
		}
		if !strings.HasPrefix(v.key, "fleet/forgotten/") && !strings.HasPrefix(v.key, "fleet/locks/") {
			after = append(after, v)
		}
	}
	if len(after) != len(before) {
		t.Fatalf("%d objects before forget --prune, %d after", len(before), len(after))
	}
	var snaps []snapInfo
	if err := json.Unmarshal([]byte(r.must(t, filepath.Join(dir, "cache-1"), "snapshots", "--json").stdout), &snaps); err != nil || len(snaps) != 1 {
		t.Fatalf("snapshots on another host after forget: %v %+v", err, snaps)
	}

	// The forget's marker has no retention, by design (deleting it only
	// undoes the forget): the thief's attack is on the rest.
	var vs []s3Version
	for _, v := range listVersions(t, c, bucket, "fleet/") {
		if !strings.HasPrefix(v.key, "fleet/forgotten/") {
			vs = append(vs, v)
		}
	}
	saved := map[string][]byte{}
	kinds := map[string]int{}
	for _, v := range vs {
		if v.marker || strings.HasPrefix(v.key, "fleet/locks/") {
			t.Fatalf("after a snapshot: %+v", v)
		}

		mode, until, err := c.GetObjectRetention(ctx, bucket, v.key, v.id)
		if err != nil || mode == nil || *mode != minio.Compliance || until == nil || until.Before(time.Now().Add(23*time.Hour)) {
			t.Fatalf("%s: retention %v until %v (%v), want COMPLIANCE a day out", v.key, mode, until, err)
		}
		saved[v.id] = readVersion(t, c, bucket, v)
		kinds[strings.SplitN(strings.TrimPrefix(v.key, "fleet/"), "/", 2)[0]]++
	}
	for _, k := range []string{"citadel.json", "packs", "snapshots", "index"} {
		if kinds[k] == 0 {
			t.Fatalf("no %s object among %v", k, kinds)
		}
	}

	// The thief deletes every version by id (with the governance bypass
	// too), then every object plainly.
	for _, v := range vs {
		for _, bypass := range []bool{false, true} {
			if err := c.RemoveObject(ctx, bucket, v.key, minio.RemoveObjectOptions{VersionID: v.id, GovernanceBypass: bypass}); err == nil {
				t.Fatalf("RGW deleted locked version %s of %s", v.id, v.key)
			}
		}
		if err := c.RemoveObject(ctx, bucket, v.key, minio.RemoveObjectOptions{}); err != nil {
			t.Fatalf("plain delete of %s: %v", v.key, err)
		}
	}
	// What the thief achieved: the repository looks empty...
	if res := r.run(t, filepath.Join(dir, "cache-2"), "snapshots"); res.code != 10 || !strings.Contains(res.stderr, "repair undelete") {
		t.Fatalf("snapshots with citadel.json under a delete marker: %s", res)
	}
	// ...but every locked version is there and reads back unchanged.
	after = nil
	for _, v := range listVersions(t, c, bucket, "fleet/") {
		if !strings.HasPrefix(v.key, "fleet/forgotten/") {
			after = append(after, v)
		}
	}
	markers := 0
	for _, v := range after {
		if v.marker {
			markers++
			continue
		}
		if b, ok := saved[v.id]; !ok || !bytes.Equal(readVersion(t, c, bucket, v), b) {
			t.Fatalf("version %s of %s changed or is new", v.id, v.key)
		}
		delete(saved, v.id)
	}
	if len(saved) != 0 || markers != len(vs) {
		t.Fatalf("%d versions lost, %d markers for %d objects", len(saved), markers, len(vs))
	}

	// Recovery: repair undelete removes the delete markers (any
	// credential may), and the snapshot restores identical from a fresh
	// cache.
	undelete := func(args ...string) (u struct {
		Restored int            `json:"restored"`
		ByPrefix map[string]int `json:"by_prefix"`
		Markers  int            `json:"markers_removed"`
	}) {
		t.Helper()
		res := r.must(t, filepath.Join(dir, "cache-3"), append([]string{"repair", "undelete", "--json"}, args...)...)
		if err := json.Unmarshal([]byte(res.stdout), &u); err != nil {
			t.Fatalf("repair undelete --json: %v\n%s", err, res)
		}
		return u
	}
	if u := undelete("--dry-run"); u.Restored != len(vs) || u.Markers != len(vs) || u.ByPrefix["packs"] != kinds["packs"] {
		t.Fatalf("repair undelete --dry-run: %+v for %d objects", u, len(vs))
	}
	if n := len(listVersions(t, c, bucket, "fleet/")); n != len(vs)*2+1 {
		t.Fatalf("the dry run changed the bucket: %d entries", n)
	}
	if u := undelete(); u.Restored != len(vs) || u.ByPrefix["citadel.json"] != 1 {
		t.Fatalf("repair undelete: %+v for %d objects", u, len(vs))
	}
	out := filepath.Join(t.TempDir(), "restore")
	r.must(t, filepath.Join(dir, "cache-3"), "restore", "latest", out)
	for _, l := range labels {
		assertSameTree(t, filepath.Join(src, l), filepath.Join(out, l))
	}
}

func readVersion(t *testing.T, c *minio.Client, bucket string, v s3Version) []byte {
	t.Helper()
	o, err := c.GetObject(context.Background(), bucket, v.key, minio.GetObjectOptions{VersionID: v.id})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	b, err := io.ReadAll(o)
	if err != nil {
		t.Fatalf("read version %s of %s: %v", v.id, v.key, err)
	}
	return b
}
