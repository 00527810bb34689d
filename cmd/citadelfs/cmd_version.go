package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
)

// version is the release this source tree is; the build information adds
// the module version, the commit and the Go version.
const version = "0.1.0"

// buildCommit and buildModified are set by `make build` (-ldflags -X) from
// git, for builds the go command cannot stamp itself: it records
// vcs.revision only where .git is a directory, so never in a git worktree,
// and not at all with -buildvcs=false. The go command's own stamp wins.
var buildCommit, buildModified string

// versionInfo is `citadelfs version --json`.
type versionInfo struct {
	Version string `json:"version"`
	// Module and ModuleVersion are the main module's path and version as
	// the go command recorded them: "(devel)" for a build from a source
	// tree, vX.Y.Z for `go install citadelfs/...@vX.Y.Z`.
	Module        string `json:"module"`
	ModuleVersion string `json:"module_version"`
	// Commit is vcs.revision ("" when the build recorded none, e.g. with
	// -buildvcs=false or from a tarball); Modified is vcs.modified, true when
	// the tree had uncommitted changes.
	Commit     string `json:"commit"`
	CommitTime string `json:"commit_time,omitempty"`
	Modified   bool   `json:"modified"`
	GoVersion  string `json:"go_version"`
	Platform   string `json:"platform"`
}

func readVersionInfo() versionInfo {
	bi, _ := debug.ReadBuildInfo()
	return versionOf(bi, buildCommit, buildModified == "true")
}

// versionOf reads bi (nil when the binary has none); commit and modified
// are the -ldflags fallback.
func versionOf(bi *debug.BuildInfo, commit string, modified bool) versionInfo {
	v := versionInfo{Version: version, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH,
		Commit: commit, Modified: modified}
	if bi == nil {
		return v
	}
	v.Module, v.ModuleVersion = bi.Main.Path, bi.Main.Version
	if bi.GoVersion != "" {
		v.GoVersion = bi.GoVersion
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Commit = s.Value
		case "vcs.time":
			v.CommitTime = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}

func init() {
	register(&command{
		name:    "version",
		summary: "print the release, module version, commit and Go version of this binary",
		usage:   "[--json]",
		run: func(ctx context.Context, env *cmdEnv, args []string) error {
			v := readVersionInfo()
			if env.global.json {
				return writeJSON(env, v)
			}
			commit := v.Commit
			switch {
			case commit == "":
				commit = "unknown (built without VCS information)"
			case v.Modified:
				commit += " (modified)"
			}
			if v.CommitTime != "" {
				commit += ", " + v.CommitTime
			}
			fmt.Fprintf(env.stdout, "citadelfs %s\nmodule:  %s %s\ncommit:  %s\ngo:      %s %s\n",
				v.Version, v.Module, v.ModuleVersion, commit, v.GoVersion, v.Platform)
			return nil
		},
	})
}
