package snapshot

import (
	"strings"
	"time"
)

// Compare is the one order of snapshots, oldest first; every "newest" and
// "latest" in citadelfs is the last of it: Repository.Snapshots lists in it,
// FindSnapshot("latest") and LatestSources take its last, retention keeps
// its last of a period, and the mount shows the order it is given (the
// adapter passes Snapshots through), so latest/, restore latest, diff
// latest and forget latest never disagree.
//
// Snapshots are ordered by their Time to the second, then by commit time
// (Created), then by Time and id. Times are shown to the second only
// (snapshots, the mount's folder names), so two snapshots of one shown
// second are told apart by which was committed last, not by a fraction
// the user never sees nor by their ids; a snapshot backdated with --time
// into a second that has snapshots is the newest of that second. Created
// is zero only in manifests written before it existed; ties then fall
// back to Time and id.
func Compare(a, b *Snapshot) int {
	if c := a.Time.Truncate(time.Second).Compare(b.Time.Truncate(time.Second)); c != 0 {
		return c
	}
	if c := a.Created.Compare(b.Created); c != 0 {
		return c
	}
	if c := a.Time.Compare(b.Time); c != 0 {
		return c
	}
	return strings.Compare(a.ID.String(), b.ID.String())
}
