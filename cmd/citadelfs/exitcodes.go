package main

import (
	"errors"
	"fmt"
	"io"

	"citadelfs/index"
	"citadelfs/snapshot"
)

// Exit codes. This table is the documented contract (README "Exit codes"):
// scripts and systemd units act on these numbers.
const (
	exitOK          = 0
	exitFatal       = 1
	exitUsage       = 2
	exitPartial     = 3 // snapshot completed, but some files could not be read
	exitDamaged     = 4 // check, restore, repair, test-restore or snapshot --verify found corrupt or missing data
	exitCritical    = 5 // monitor/status: at least one critical condition
	exitNoRepo      = 10
	exitLocked      = 11
	exitBadVersion  = 12
	exitDiskFull    = 13 // no space left (the repository's disk, or a restore target)
	exitStore       = 14 // an s3:// repository's store could not be reached or refused
	exitWrongKey    = 15 // the passphrase or key file opens no key slot of an encrypted repository
	exitInterrupted = 130
)

var exitTable = []struct {
	code    int
	meaning string
}{
	{exitOK, "success"},
	{exitFatal, "fatal error (message says why)"},
	{exitUsage, "bad flag, argument or configuration file"},
	{exitPartial, "snapshot completed, but some files were unreadable or vanished (listed as warnings)"},
	{exitDamaged, "check, restore, repair, test-restore or snapshot --verify found corrupt or missing data (repair: some of it could not be saved; snapshot --verify: the snapshot is saved, its damaged chunks quarantined); any command: citadel.json or the index is damaged"},
	{exitCritical, "monitor/status: a critical alert is active"},
	{exitNoRepo, "no repository at the given path"},
	{exitLocked, "repository is locked by another process"},
	{exitBadVersion, "repository format version not supported by this binary"},
	{exitDiskFull, "disk full (the repository's, or a restore target's); nothing partial was committed, and forget --prune still runs"},
	{exitStore, "the repository's store (S3) could not be reached or refused the request, after retries; nothing partial was committed"},
	{exitWrongKey, "wrong passphrase or key file: it opens no key slot of the encrypted repository; nothing was written"},
	{exitInterrupted, "interrupted (SIGINT/SIGTERM); nothing partial was committed"},
}

// exitError carries an explicit exit code through the error chain.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }
func (e exitError) Unwrap() error { return e.err }

func withExit(code int, err error) error { return exitError{code, err} }

// exitCode maps an error to the documented exit code.
func exitCode(err error) int {
	var ee exitError
	var ue usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ee):
		return ee.code
	case errors.As(err, &ue):
		return exitUsage
	case errors.Is(err, index.ErrWrongKey):
		return exitWrongKey
	case errors.Is(err, index.ErrNoRepository):
		return exitNoRepo
	case errors.Is(err, index.ErrLocked):
		return exitLocked
	case errors.Is(err, index.ErrVersion):
		return exitBadVersion
	case errors.Is(err, index.ErrStoreUnavailable):
		return exitStore
	case errors.Is(err, snapshot.ErrCorrupt), errors.Is(err, index.ErrCorrupt):
		// index.ErrCorrupt reaches here from open: a damaged
		// citadel.json, a missing or unreadable index.
		return exitDamaged
	case errors.Is(err, errInterrupted):
		return exitInterrupted
	case index.IsDiskFull(err):
		return exitDiskFull
	}
	return exitFatal
}

var errInterrupted = errors.New("interrupted")

// reportError prints one actionable line for err and returns the exit code.
func reportError(w io.Writer, name string, err error) int {
	code := exitCode(err)
	if err != nil {
		var ee exitError
		if !(errors.As(err, &ee) && ee.err == errSilent) {
			fmt.Fprintf(w, "citadelfs %s: %v\n", name, err)
		}
	}
	return code
}

// errSilent is used with withExit when the command already printed its result.
var errSilent = errors.New("")
