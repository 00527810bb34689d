// Command s3put is bench/s3.sh's S3 helper, through the project's own
// client:
//
//   - `s3put -put SRC DST` is the reference: the time to PUT the bytes
//     citadelfs stored in bucket SRC (its packs, read back first, then PUT
//     to the new bucket DST, 4 in flight, single-part as citadelfs does),
//     the physical floor for the initial snapshot. It prints the bytes and
//     the seconds.
//   - `s3put -du BUCKET [PREFIX]` prints the bytes a bucket (or the objects
//     under PREFIX) holds, `-objects BUCKET` how many objects.
//   - `s3put -rm BUCKET...` deletes buckets (missing ones are skipped). RGW
//     frees deleted objects only at its garbage collection, hours later by
//     default, so bench/s3.sh purges with radosgw-admin where it can: a few
//     runs filled the single 16 GiB OSD the tests share.
package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"citadelfs/index/s3store"
)

func store(bucket, prefix string) *s3store.Store {
	s, err := s3store.New(s3store.Config{Bucket: bucket, Prefix: prefix, Endpoint: os.Getenv("EP")})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	return s
}

func size(s *s3store.Store) (n int64, objs int) {
	s.List("", func(_ string, sz int64) error { n += sz; objs++; return nil })
	return
}

func main() {
	if len(os.Args) > 1 {
		os.Exit(tool(os.Args[1], os.Args[2:]))
	}
	fmt.Fprintln(os.Stderr, usage)
	os.Exit(2)
}

const usage = "usage: s3put -put SRC_BUCKET DST_BUCKET | -du BUCKET [PREFIX] | -objects BUCKET | -rm BUCKET..."

// put reads every pack of the citadelfs repository in src (prefix r/)
// into memory, then PUTs them to the new bucket dst, 4 in flight, and
// prints the bytes and the seconds of the PUTs alone.
func put(src, dst string) error {
	cfs := store(src, "r/")
	var names []string
	var sizes []int64
	if err := cfs.List("packs/", func(name string, sz int64) error {
		names, sizes = append(names, name), append(sizes, sz)
		return nil
	}); err != nil {
		return err
	}
	data := make([][]byte, len(names))
	for i, n := range names {
		b, err := cfs.ReadRange(n, 0, int(sizes[i]), nil)
		if err != nil {
			return err
		}
		data[i] = b
	}
	to := store(dst, "")
	if err := to.MakeBucket(); err != nil {
		return err
	}
	t0 := time.Now()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	var total int64
	errs := make(chan error, len(names))
	for i := range names {
		total += int64(len(data[i]))
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := to.Put(strings.ReplaceAll(names[i], "/", "_"), data[i]); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	d := time.Since(t0)
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	fmt.Printf("%d %.2f\n", total, d.Seconds())
	return nil
}

// tool runs one of the usage's commands.
func tool(cmd string, buckets []string) int {
	switch {
	case cmd == "-put" && len(buckets) == 2:
		if err := put(buckets[0], buckets[1]); err != nil {
			fmt.Fprintln(os.Stderr, "s3put:", err)
			return 1
		}
	case cmd == "-objects" && len(buckets) == 1:
		_, objs := size(store(buckets[0], ""))
		fmt.Println(objs)
	case cmd == "-du" && (len(buckets) == 1 || len(buckets) == 2):
		prefix := ""
		if len(buckets) == 2 {
			prefix = buckets[1]
		}
		n, _ := size(store(buckets[0], prefix))
		fmt.Println(n)
	case cmd == "-rm":
		for _, b := range buckets {
			if err := removeBucket(b); err != nil && minio.ToErrorResponse(err).Code != "NoSuchBucket" {
				fmt.Fprintln(os.Stderr, "s3put: remove bucket", b, err)
				return 1
			}
		}
	default:
		fmt.Fprintln(os.Stderr, usage)
		return 2
	}
	return 0
}

// removeBucket deletes every object of bucket, then the bucket.
func removeBucket(bucket string) error {
	u, err := url.Parse(os.Getenv("EP"))
	if err != nil {
		return err
	}
	c, err := minio.New(u.Host, &minio.Options{Creds: credentials.NewEnvAWS(), Secure: u.Scheme == "https", BucketLookup: minio.BucketLookupPath})
	if err != nil {
		return err
	}
	ctx := context.Background()
	objs := c.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true})
	for e := range c.RemoveObjects(ctx, bucket, objs, minio.RemoveObjectsOptions{}) {
		if e.Err != nil {
			return e.Err
		}
	}
	return c.RemoveBucket(ctx, bucket)
}
