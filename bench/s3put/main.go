// Command s3put is bench/s3.sh's reference: the sizes of the citadelfs and
// restic buckets, and the time to PUT the bytes citadelfs stored (its packs,
// read back first, then PUT to a fresh bucket, 4 in flight, single-part as
// citadelfs does): the physical floor for the initial snapshot. Then it
// deletes the three buckets: a run leaves about 1.2 GB otherwise, and a few
// runs filled the single 16 GiB OSD the tests share (RGW frees deleted
// objects only at its garbage collection, hours later by default).
//
// Two more uses for bench/s3.sh: `s3put -du BUCKET [PREFIX]` prints the bytes a
// bucket (or the objects under PREFIX) holds, `s3put -rm BUCKET...` deletes buckets (missing ones are
// skipped).
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
	cfs := store(os.Getenv("CB"), "r/")
	restic := store(os.Getenv("RB"), "")
	cn, co := size(cfs)
	rn, ro := size(restic)
	var names []string
	var sizes []int64
	cfs.List("packs/", func(name string, sz int64) error {
		names, sizes = append(names, name), append(sizes, sz)
		return nil
	})
	data := make([][]byte, len(names))
	for i, n := range names {
		b, err := cfs.ReadRange(n, 0, int(sizes[i]), nil)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		data[i] = b
	}
	dst := store(os.Getenv("CB")+"-put", "")
	if err := dst.MakeBucket(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	t0 := time.Now()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	var total int64
	for i := range names {
		total += int64(len(data[i]))
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := dst.Put(strings.ReplaceAll(names[i], "/", "_"), data[i]); err != nil {
				fmt.Fprintln(os.Stderr, err)
			}
		}()
	}
	wg.Wait()
	d := time.Since(t0)
	fmt.Printf("citadelfs bucket %d bytes in %d objects; restic bucket %d bytes in %d objects; raw PUT of citadelfs's %d pack bytes: %.2f s (%.0f MiB/s)",
		cn, co, rn, ro, total, d.Seconds(), float64(total)/d.Seconds()/(1<<20))
	if os.Getenv("KEEP") == "" {
		for _, b := range []string{os.Getenv("CB"), os.Getenv("RB"), os.Getenv("CB") + "-put"} {
			if err := removeBucket(b); err != nil {
				fmt.Fprintln(os.Stderr, "s3put: remove bucket", b, err)
			}
		}
	}
}

// tool runs `-du BUCKET [PREFIX]` or `-rm BUCKET...`.
func tool(cmd string, buckets []string) int {
	switch {
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
		fmt.Fprintln(os.Stderr, "usage: s3put [-du BUCKET [PREFIX] | -rm BUCKET...]")
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
