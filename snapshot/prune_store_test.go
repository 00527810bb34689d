package snapshot

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"citadelfs/index"
)

// retainedStore stands in for a bucket with Object Lock: every object but
// locks/ and forgotten/ is retained until until (Info says so), and a
// Delete of one is refused as s3store refuses it (before any request).
type retainedStore struct {
	index.Store
	mu          sync.Mutex
	until       time.Time
	packDeletes int      // deletes that reached a retained pack
	renewed     []string // names whose retention was extended
	hideInfo    bool     // Info says nothing of the retention; only Delete refuses
}

func (s *retainedStore) retained(name string) bool {
	return !strings.HasPrefix(name, "locks/") && !strings.HasPrefix(name, "forgotten/")
}

func (s *retainedStore) Info(name string) (index.ObjectInfo, error) {
	info, _, err := index.StoreInfo(s.Store, name)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.retained(name) && !s.hideInfo {
		info.RetainUntil = s.until
	}
	return info, err
}

func (s *retainedStore) SetRetention(string, time.Duration, ...string) error { return nil }

func (s *retainedStore) ExtendRetention(name string) (time.Time, error) {
	if _, err := s.Store.Stat(name); err != nil {
		return time.Time{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.renewed = append(s.renewed, name)
	return time.Now().Add(24 * time.Hour), nil
}

func (s *retainedStore) Delete(name string) error {
	s.mu.Lock()
	until := s.until
	if s.retained(name) && until.After(time.Now()) {
		if strings.HasPrefix(name, "packs/") {
			s.packDeletes++
		}
		s.mu.Unlock()
		return &index.ObjectLockedError{Name: name, Until: until}
	}
	s.mu.Unlock()
	return s.Store.Delete(name)
}

// bucketLike hides the LocalStore under it, which stands in for a bucket
// here: prune gives a directory no grace.
type bucketLike struct{ index.Store }

func (b bucketLike) Info(name string) (index.ObjectInfo, error) {
	info, _, err := index.StoreInfo(b.Store, name)
	return info, err
}

// newStoreRepo is a repository in a store (a LocalStore standing in for
// the bucket) with its own cache, as a remote host opens it.
func newStoreRepo(t *testing.T, wrap func(index.Store) index.Store) (*Repository, string) {
	return newStoreRepoLocked(t, nil, wrap)
}

// newStoreRepoLocked is newStoreRepo with an Object Lock recorded at init
// through rs (which must then also be what wrap returns).
func newStoreRepoLocked(t *testing.T, rs *retainedStore, wrap func(index.Store) index.Store) (*Repository, string) {
	t.Helper()
	dir := t.TempDir()
	s := index.NewLocalStore(dir, 8)
	var init index.Store = s
	var lock *index.ObjectLock
	if rs != nil {
		rs.Store = s
		init, lock = rs, &index.ObjectLock{Mode: index.RetentionCompliance, Days: 2}
	}
	if err := InitStore(init, "fake://bucket", Options{ObjectLock: lock}); err != nil {
		t.Fatal(err)
	}
	r, err := OpenStore(s, "fake://bucket", Options{PackSize: 1 << 20, CacheDir: filepath.Join(t.TempDir(), "cache"), WrapStore: wrap})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, dir
}

// twoSnapshots stores two snapshots of different content and returns
// their ids; forgetting the first leaves its packs unreferenced.
func twoSnapshots(t *testing.T, r *Repository) (index.ID, index.ID) {
	t.Helper()
	ctx := context.Background()
	var ids []index.ID
	for i := range 2 {
		src := t.TempDir()
		writeRandom(t, filepath.Join(src, "f"), 300<<10, uint64(i+1))
		res, err := r.TakeSnapshot(ctx, Request{Sources: []SourceSpec{{Label: "t", Path: src}}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.Snapshot.ID)
	}
	return ids[0], ids[1]
}

// packsOf names the packs snapshot id's blobs are in.
func packsOf(t *testing.T, r *Repository, id index.ID) []string {
	t.Helper()
	snaps, err := r.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	seen := map[index.ID]bool{}
	for _, s := range snaps {
		if s.ID != id {
			continue
		}
		blobs := []index.ID{s.ID}
		for _, src := range s.Sources {
			tr, err := r.LoadTree(context.Background(), src.Tree)
			if err != nil {
				t.Fatal(err)
			}
			blobs = append(blobs, src.Tree)
			for _, n := range tr.Nodes {
				for _, c := range n.Content {
					blobs = append(blobs, c.ID)
				}
			}
		}
		for _, b := range blobs {
			ref, err := r.idx.Lookup(b)
			if err != nil {
				t.Fatal(err)
			}
			if !seen[ref.Pack] {
				seen[ref.Pack] = true
				out = append(out, index.PackName(ref.Pack))
			}
		}
	}
	return out
}

func mustRestoreAll(t *testing.T, r *Repository) {
	t.Helper()
	snaps, err := r.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range snaps {
		if _, err := r.Restore(context.Background(), s, nil, t.TempDir(), RestoreOptions{}); err != nil {
			t.Fatalf("restore %s: %v", s.ID.Short(), err)
		}
	}
}

// ageStore sets every pack's mtime (LocalStore's LastModified) back by d.
func ageStore(t *testing.T, dir string, d time.Duration) {
	t.Helper()
	old := time.Now().Add(-d)
	filepath.Walk(filepath.Join(dir, "packs"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			os.Chtimes(p, old, old)
		}
		return err
	})
}

// In a repository in a bucket, an unreferenced pack younger than the
// grace stays (another host's running snapshot may be about to name it);
// once older, prune deletes it. --grace 0 turns this off, and a directory
// (even in the store layout) has none.
func TestPruneGraceKeepsYoungPacks(t *testing.T) {
	ctx := context.Background()
	r, dir := newStoreRepo(t, nil)
	first, _ := twoSnapshots(t, r)
	if err := r.Forget(ctx, []index.ID{first}); err != nil {
		t.Fatal(err)
	}
	res, err := r.Prune(ctx, false) // the default grace
	if err != nil {
		t.Fatal(err)
	}
	if res.PacksDeleted == 0 || res.PacksKeptYoung != 0 {
		t.Fatalf("a directory got a grace: %+v", res)
	}
	r, dir = newStoreRepo(t, func(s index.Store) index.Store { return bucketLike{s} })
	first, _ = twoSnapshots(t, r)
	if err := r.Forget(ctx, []index.ID{first}); err != nil {
		t.Fatal(err)
	}
	res, err = r.Prune(ctx, false) // the default grace
	if err != nil {
		t.Fatal(err)
	}
	if res.PacksDeleted+res.PacksRepacked != 0 || res.PacksKeptYoung == 0 || res.Grace != DefaultPruneGrace.String() {
		t.Fatalf("prune of packs a minute old: %+v", res)
	}
	ageStore(t, dir, DefaultPruneGrace-time.Minute)
	if res, err = r.Prune(ctx, false); err != nil || res.PacksDeleted != 0 || res.PacksKeptYoung == 0 {
		t.Fatalf("prune of packs just inside the grace: %+v %v", res, err)
	}
	ageStore(t, dir, DefaultPruneGrace+time.Minute)
	if res, err = r.Prune(ctx, false); err != nil || res.PacksDeleted == 0 || res.PacksKeptYoung != 0 {
		t.Fatalf("prune of packs past the grace: %+v %v", res, err)
	}
	mustRestoreAll(t, r)

	r2, _ := newStoreRepo(t, func(s index.Store) index.Store { return bucketLike{s} })
	first, _ = twoSnapshots(t, r2)
	r2.Forget(ctx, []index.ID{first})
	if res, err = r2.PruneWith(ctx, PruneOptions{Grace: 0}); err != nil || res.PacksDeleted == 0 || res.PacksKeptYoung != 0 {
		t.Fatalf("prune --grace 0: %+v %v", res, err)
	}
	mustRestoreAll(t, r2)
}

// Under Object Lock prune never sends a delete of a retained object: it
// keeps such packs (and does not rewrite them), counts them with the date
// their retention ends, and a forget of a retained manifest leaves a
// forgotten/ marker that hides the snapshot; once the retention has ended
// the next prune deletes the packs, the manifest and the marker.
func TestPruneKeepsObjectLockedData(t *testing.T) {
	ctx := context.Background()
	until := time.Now().Add(48 * time.Hour).Truncate(time.Second)
	rs := &retainedStore{until: until}
	r, dir := newStoreRepoLocked(t, rs, func(s index.Store) index.Store { rs.Store = s; return rs })
	first, second := twoSnapshots(t, r)
	firstPacks := packsOf(t, r, first)
	secondPacks := packsOf(t, r, second)
	if err := r.Forget(ctx, []index.ID{first}); err != nil {
		t.Fatalf("forget of a retained snapshot: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "forgotten", first.String())); err != nil {
		t.Fatalf("no forgotten/ marker: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "snapshots", first.String())); err != nil {
		t.Fatalf("the retained manifest went: %v", err)
	}
	snaps, _ := r.Snapshots()
	if len(snaps) != 1 || snaps[0].ID != second {
		t.Fatalf("snapshots after forget: %d", len(snaps))
	}
	ageStore(t, dir, 3*time.Hour) // past the grace: only the retention holds them
	rs.mu.Lock()
	rs.packDeletes = 0 // forget's try at the manifest's pack
	rs.mu.Unlock()
	res, err := r.Prune(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if res.PacksDeleted+res.PacksRepacked != 0 || res.ObjectsKeptLocked < 2 || res.LockedUntil == nil || !res.LockedUntil.Equal(until) {
		t.Fatalf("prune under retention: %+v", res)
	}
	if rs.packDeletes != 0 {
		t.Fatalf("prune tried to delete %d retained packs", rs.packDeletes)
	}
	// What stays in use had its retention renewed; the forgotten
	// snapshot's own packs did not (they must be able to expire).
	renewed := map[string]bool{}
	for _, n := range rs.renewed {
		renewed[n] = true
	}
	for _, want := range append([]string{"citadel.json", "snapshots/" + second.String()}, secondPacks...) {
		if !renewed[want] {
			t.Errorf("%s in use, its retention not renewed (renewed: %v)", want, rs.renewed)
		}
	}
	for _, p := range firstPacks {
		if renewed[p] && !slices.Contains(secondPacks, p) {
			t.Errorf("the forgotten snapshot's pack %s had its retention renewed", p)
		}
	}
	if res.RetentionRenewed != len(rs.renewed) || res.RetainedUntil == nil {
		t.Errorf("prune reported %d renewed until %v, the store saw %d", res.RetentionRenewed, res.RetainedUntil, len(rs.renewed))
	}
	mustRestoreAll(t, r)

	rs.mu.Lock()
	rs.until = time.Now().Add(-time.Second)
	rs.mu.Unlock()
	if res, err = r.Prune(ctx, false); err != nil || res.PacksDeleted == 0 || res.ObjectsKeptLocked != 0 {
		t.Fatalf("prune after the retention: %+v %v", res, err)
	}
	for _, p := range []string{filepath.Join("forgotten", first.String()), filepath.Join("snapshots", first.String())} {
		if _, err := os.Stat(filepath.Join(dir, p)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s after the retention ended: %v", p, err)
		}
	}
	mustRestoreAll(t, r)
}

// A retention prune could not see beforehand (the store's HEAD did not
// say) stops the delete itself: the pack stays, and prune counts it as
// kept, not as freed.
func TestPruneCountsAPackTheStoreRefusesAsKept(t *testing.T) {
	ctx := context.Background()
	rs := &retainedStore{until: time.Now().Add(time.Hour), hideInfo: true}
	r, dir := newStoreRepoLocked(t, rs, func(s index.Store) index.Store { rs.Store = s; return rs })
	first, _ := twoSnapshots(t, r)
	if err := r.Forget(ctx, []index.ID{first}); err != nil {
		t.Fatal(err)
	}
	ageStore(t, dir, 3*time.Hour)
	res, err := r.Prune(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if res.PacksDeleted != 0 || res.BytesFreed != 0 || res.BlobsDeleted != 0 || res.ObjectsKeptLocked == 0 {
		t.Fatalf("prune refused by the store: %+v", res)
	}
	mustRestoreAll(t, r)
}
