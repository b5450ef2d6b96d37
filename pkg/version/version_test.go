package version

import (
	"runtime/debug"
	"testing"
)

func TestFromBuildInfo(t *testing.T) {
	for _, tc := range []struct {
		name     string
		settings []debug.BuildSetting
		main     string
		want     string
	}{
		{"clean commit", []debug.BuildSetting{{Key: "vcs.revision", Value: "437f9eb0123456789abcdef"}, {Key: "vcs.modified", Value: "false"}}, "(devel)", "437f9eb01234"},
		{"dirty tree", []debug.BuildSetting{{Key: "vcs.revision", Value: "437f9eb0123456789abcdef"}, {Key: "vcs.modified", Value: "true"}}, "(devel)", "437f9eb01234-dirty"},
		{"short revision kept whole", []debug.BuildSetting{{Key: "vcs.revision", Value: "437f9eb"}}, "", "437f9eb"},
		{"go install at a tag", nil, "v1.2.3", "v1.2.3"},
		{"nothing recorded", nil, "(devel)", "unknown"},
		{"empty", nil, "", "unknown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			info := &debug.BuildInfo{Main: debug.Module{Version: tc.main}, Settings: tc.settings}
			if got := fromBuildInfo(info); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestStringPrefersBuildTimeVersion(t *testing.T) {
	old := Version
	t.Cleanup(func() { Version = old })
	Version = "v9.9.9-3-gabcdef0"
	if got := String(); got != Version {
		t.Errorf("String() = %q, want the -X value %q", got, Version)
	}
	Version = ""
	if got := String(); got == "" {
		t.Error("String() is empty without a -X value; want the toolchain's record or unknown")
	}
}
