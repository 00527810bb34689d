package index

import (
	"bytes"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// No prefix of the table is a prefix of another (nor equal to one): a
// scan or a DeleteRange of one namespace (the monitor's retention trims
// "m/" and "a/" by range) must never reach another's records.
func TestNamespacesDisjoint(t *testing.T) {
	for i, a := range namespaces {
		if len(a.prefix) == 0 || a.owner == "" {
			t.Errorf("namespace %d: empty prefix or owner: %+v", i, a)
		}
		for j, b := range namespaces {
			if i != j && bytes.HasPrefix(b.prefix, a.prefix) {
				t.Errorf("prefix %q (%s) is a prefix of %q (%s)", a.prefix, a.owner, b.prefix, b.owner)
			}
			// One byte decides the namespace (carriedPrefix looks at the
			// first byte only).
			if i != j && a.prefix[0] == b.prefix[0] {
				t.Errorf("prefixes %q and %q share their first byte", a.prefix, b.prefix)
			}
		}
	}
}

// namespaceOf is the entry of the table key k falls in; nil if none.
func namespaceOf(k []byte) *namespace {
	var found *namespace
	for i := range namespaces {
		if bytes.HasPrefix(k, namespaces[i].prefix) {
			if found != nil {
				return nil // two: TestNamespacesDisjoint fails too
			}
			found = &namespaces[i]
		}
	}
	return found
}

// Every key this package builds, for any package, lies in exactly one
// namespace of the table, owned by the package that writes it.
func TestKeysInTheirNamespace(t *testing.T) {
	var id, id2 ID
	id[0], id2[0] = 0xab, 0xcd
	for _, c := range []struct {
		key   []byte
		owner string
	}{
		{blobKey(id), "index"},
		{append([]byte{prefixPack}, id[:]...), "index"},
		{SnapshotKey(id), "index"},
		{quarantineKey(id, id2), "index"},
		{quarantinePackPrefix(id), "index"},
		{ProblemKey(), "index"},
		{fileCacheKey("label\x00/etc/x"), "snapshot"},
		{fileCachePrefix(), "snapshot"},
		{AttemptKey("label"), "snapshot"},
		{AttemptPrefix(), "snapshot"},
		{CheckKey(), "snapshot"},
		{TestRestoreKey(), "snapshot"},
		{MaintenanceKey("prune"), "snapshot"},
		{MaintenancePrefix(), "snapshot"},
		{CorruptReadsKey(), "snapshot"},
		{append(MetricsPrefix(), 0, 0, 0, 0, 0, 0, 0, 1), "monitor"},
		{append(AlertsPrefix(), 0, 0, 0, 0, 0, 0, 0, 1), "monitor"},
	} {
		ns := namespaceOf(c.key)
		if ns == nil || ns.owner != c.owner {
			t.Errorf("key %q: namespace %+v, want one owned by %s", c.key, ns, c.owner)
		}
	}
	// The monitor's on-disk prefixes since the first format.
	if string(MetricsPrefix()) != "m/" || string(AlertsPrefix()) != "a/" {
		t.Errorf("monitor prefixes %q %q, want m/ a/", MetricsPrefix(), AlertsPrefix())
	}
}

// What `repair index` carries over: everything but what the packs rebuild
// (b, p, s), the quarantine (filtered on its own) and the problem record;
// a prefix this version does not know is a later version's and is kept.
func TestCarriedPrefix(t *testing.T) {
	for c := 0; c < 256; c++ {
		want := !strings.ContainsRune("bpsqe", rune(c))
		if got := carriedPrefix(byte(c)); got != want {
			t.Errorf("carriedPrefix(%q) = %v, want %v", rune(c), got, want)
		}
	}
}

// docs/format.md's key table names every prefix of the table, and no
// other.
func TestNamespacesMatchFormatDoc(t *testing.T) {
	doc, err := os.ReadFile("../docs/format.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(doc)
	start := strings.Index(s, "## Pebble keys")
	if start < 0 {
		t.Fatal("docs/format.md has no \"## Pebble keys\" section")
	}
	s = s[start:]
	if end := strings.Index(s[3:], "\n## "); end >= 0 {
		s = s[:end+3]
	}
	var documented []string
	cell := regexp.MustCompile("`([^`]+)`")
	for _, line := range strings.Split(s, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		first := strings.Split(line, "|")[1]
		for _, m := range cell.FindAllStringSubmatch(first, -1) {
			documented = append(documented, m[1])
		}
	}
	var table []string
	for _, ns := range namespaces {
		table = append(table, string(ns.prefix[:1]))
	}
	slices.Sort(documented)
	slices.Sort(table)
	if !slices.Equal(documented, table) {
		t.Errorf("docs/format.md's key table lists %q; the namespace table has %q", documented, table)
	}
}
