package main

import (
	"runtime/debug"

	"github.com/smartcloudops/smartcloudops/internal/httpapi"
)

func buildInfo() httpapi.BuildInfo {
	bi, _ := debug.ReadBuildInfo()
	return buildInfoFrom(bi, version, revision)
}

// buildInfoFrom picks the version and revision: what the release build set
// with -ldflags wins; else the module version go install records (a build
// inside a checkout says "(devel)", which is no version) and the VCS stamp.
func buildInfoFrom(bi *debug.BuildInfo, ldVersion, ldRevision string) httpapi.BuildInfo {
	b := httpapi.BuildInfo{Version: ldVersion, Revision: ldRevision}
	if bi != nil {
		b.GoVersion = bi.GoVersion
		if b.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			b.Version = bi.Main.Version
		}
		modified := false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if b.Revision == "" {
					b.Revision = s.Value
				}
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if modified && ldRevision == "" && b.Revision != "" {
			b.Revision += "-dirty"
		}
	}
	if b.Version == "" {
		b.Version = "dev"
	}
	if b.Revision == "" {
		b.Revision = "unknown"
	}
	return b
}
