package main

import (
	"context"
	"fmt"

	"github.com/spf13/pflag"

	"citadelfs/index"
	"citadelfs/snapshot"
)

// migrate is copy of every snapshot, then a verification of every copy
// against its source: the way a version 1 repository (in the clear)
// becomes an encrypted version 2 one (docs/encryption.md "Migrating").
// The target is made first with `init` (its encryption, its key slot);
// migrate only reads the source. A copy between repositories that key or
// chunk differently re-chunks (snapshot/recopy.go), so the snapshots get
// new ids there; the verification then reads every file of both sides
// through the verifying reader and compares holes, bytes and metadata
// (snapshot/copyverify.go). A migrate cut short is run again: it skips
// what was copied, and verifies everything.
var migrateFlags struct {
	to, toCacheDir string
}

func init() {
	register(&command{
		name:      "migrate",
		readsOnly: true,
		summary:   "copy every snapshot into another repository (e.g. a new encrypted one) and verify each copy restores as its source",
		usage:     "--to REPO [--to-cache-dir DIR] [--to-password-file FILE|--to-key-file FILE]",
		flags: func(fs *pflag.FlagSet) {
			migrateFlags.to, migrateFlags.toCacheDir = "", ""
			fs.StringVar(&migrateFlags.to, "to", "", "the target repository, made with init first: a directory or s3://bucket/prefix")
			fs.StringVar(&migrateFlags.toCacheDir, "to-cache-dir", "", "local index cache of an s3:// or encrypted target (default /var/cache/citadelfs/<repository id>)")
			addTargetKeyFlags(fs)
		},
		run: runMigrate,
	})
}

func runMigrate(ctx context.Context, env *cmdEnv, args []string) error {
	if len(args) > 0 {
		return usagef("migrate takes no arguments: it copies every snapshot (use copy for some)")
	}
	if migrateFlags.to == "" {
		return usagef("migrate needs a target: --to DIR or --to s3://bucket/prefix (make it with init first)")
	}
	to, cacheDir, err := copyTarget(env, "migrate", migrateFlags.to, migrateFlags.toCacheDir)
	if err != nil {
		return err
	}
	repo, release, err := openRepo(ctx, env)
	if err != nil {
		return err
	}
	defer release()
	if !isRemote(to) && !isRemote(repo.Dir()) && sameDir(repo.Dir(), to) {
		return usagef("migrate: --to %s is the source repository itself", to)
	}
	snaps, err := repo.Snapshots()
	if err != nil {
		return err
	}
	dst, err := openCopyTarget(env, to, cacheDir, s3Config{})
	if err != nil {
		return err
	}
	defer dst.Close()
	dst.Index().KV.SetInterrupt(ctx.Done())

	var c counts
	pl := startProgress(env, func() string {
		blobs, bytes := c.get()
		return fmt.Sprintf("migrate: %d chunks, %s written", blobs, humanBytes(bytes))
	})
	res, err := repo.Copy(ctx, dst, snaps, func(_ index.ID, b, n int64) { c.set(b, n) })
	pl.Stop()
	if err != nil {
		if res != nil && len(res.Copied) > 0 {
			env.warnf("copied %d snapshots before the error; run migrate again to go on", len(res.Copied))
		}
		return err
	}

	v := snapshot.NewCopyVerifier(repo, dst)
	pl = startProgress(env, func() string {
		r := v.Result()
		return fmt.Sprintf("migrate: verified %d of %d snapshots", r.Snapshots, len(snaps))
	})
	var targets []index.ID
	for _, s := range snaps {
		cp, err := dst.FindCopy(s)
		if err == nil {
			err = v.Verify(ctx, s, cp)
		}
		if err != nil {
			pl.Stop()
			return err
		}
		targets = append(targets, cp.ID)
	}
	pl.Stop()
	vr := v.Result()
	if env.global.json {
		return writeJSON(env, migrateJSON{To: to, CopyResult: res, Verified: vr, Snapshots: targets})
	}
	how := "as stored (same keys and chunker: ids kept)"
	if res.Rechunked {
		how = "re-chunked for the target's keys and chunker"
	}
	fmt.Fprintf(env.stdout, "migrate: %d snapshots copied %s, %d already in %s; %d chunks (%s) written\n",
		len(res.Copied), how, len(res.Skipped), to, res.Blobs, humanBytes(res.Bytes))
	fmt.Fprintf(env.stdout, "migrate: all %d snapshots verified: %d files, %s compared with the source, identical; the source's snapshots and packs are unchanged\n",
		vr.Snapshots, vr.Files, humanBytes(vr.Bytes))
	return nil
}

type migrateJSON struct {
	To string `json:"to"`
	*snapshot.CopyResult
	Verified snapshot.VerifyResult `json:"verified"`
	// Snapshots are the target's ids of every source snapshot, in the
	// source's order (those copied now and those already there).
	Snapshots []index.ID `json:"snapshots"`
}
