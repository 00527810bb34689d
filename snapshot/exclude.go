package snapshot

import (
	"fmt"
	"path"
	"strings"
)

// Exclude patterns, as restic and borg read them:
//
//   - A pattern without a slash matches an entry's base name at any depth:
//     "*.tmp", ".cache", "node_modules".
//   - A pattern with a slash is anchored to the source's root (for a source
//     of paths and globs, the root is "/", so "/etc/ssl/private" is that
//     directory); a leading slash is allowed and changes nothing:
//     "sub/build", "/var/tmp".
//   - "*", "?" and "[...]" match within one path component, as in
//     path.Match; "**" as a whole component matches any number of
//     components, none included: "**/cache/*.bin", "models/**/tmp".
//   - A trailing slash makes the pattern match directories only: "cache/".
//
// An excluded directory is left out whole, its subtree not walked.

// excludeRule is one compiled pattern.
type excludeRule struct {
	parts    []string // path components; one, unanchored, for a base-name rule
	anchored bool
	dirOnly  bool
}

// compileExcludes checks and compiles patterns; a malformed one is an
// error naming it.
func compileExcludes(patterns []string) ([]excludeRule, error) {
	var out []excludeRule
	for _, p := range patterns {
		orig := p
		var r excludeRule
		if strings.HasSuffix(p, "/") {
			r.dirOnly = true
			p = strings.TrimRight(p, "/")
		}
		if strings.HasPrefix(p, "/") {
			r.anchored = true
			p = strings.TrimLeft(p, "/")
		}
		p = strings.TrimPrefix(p, "./")
		if p == "" {
			return nil, fmt.Errorf("snapshot: exclude pattern %q matches nothing: give a name or a path", orig)
		}
		if strings.Contains(p, "/") {
			r.anchored = true
		}
		for _, c := range strings.Split(p, "/") {
			if c == "" || c == "." || c == ".." {
				return nil, fmt.Errorf("snapshot: exclude pattern %q: empty, . or .. component", orig)
			}
			if _, err := path.Match(c, ""); err != nil {
				return nil, fmt.Errorf("snapshot: exclude pattern %q: %v", orig, err)
			}
			r.parts = append(r.parts, c)
		}
		out = append(out, r)
	}
	return out, nil
}

// excluded reports whether the entry at rel (slash-separated, relative to
// the source root, no leading slash) is excluded.
func excluded(rules []excludeRule, rel string, isDir bool) bool {
	if len(rules) == 0 {
		return false
	}
	var comps []string
	for _, r := range rules {
		if r.dirOnly && !isDir {
			continue
		}
		if !r.anchored {
			base := rel[strings.LastIndexByte(rel, '/')+1:]
			if ok, _ := path.Match(r.parts[0], base); ok {
				return true
			}
			continue
		}
		if comps == nil {
			comps = strings.Split(rel, "/")
		}
		if matchParts(r.parts, comps) {
			return true
		}
	}
	return false
}

// excludedPrefix reports whether rel or any directory above it is
// excluded: for the roots of a source of paths, which are reached without
// walking their parents.
func excludedPrefix(rules []excludeRule, rel string, isDir bool) bool {
	for i := 0; i < len(rel); i++ {
		if rel[i] == '/' && excluded(rules, rel[:i], true) {
			return true
		}
	}
	return excluded(rules, rel, isDir)
}

func matchParts(pat, comps []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			for len(pat) > 0 && pat[0] == "**" {
				pat = pat[1:]
			}
			if len(pat) == 0 {
				return true
			}
			for i := 0; i <= len(comps); i++ {
				if matchParts(pat, comps[i:]) {
					return true
				}
			}
			return false
		}
		if len(comps) == 0 {
			return false
		}
		if ok, _ := path.Match(pat[0], comps[0]); !ok {
			return false
		}
		pat, comps = pat[1:], comps[1:]
	}
	return len(comps) == 0
}
