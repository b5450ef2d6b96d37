package configure

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
)

// DefaultHooksDir is the packaged hooks directory podman and CRI-O both read.
const DefaultHooksDir = "/usr/share/containers/oci/hooks.d"

// HooksFileName is the name of the installed hooks.d file.
const HooksFileName = "lxcfs.json"

// HooksFile renders the hooks.d file for podman and CRI-O: opt-in by
// annotation, or (always) every container unless it opts out. It is the
// same file as hooks.d/lxcfs.json (and lxcfs-always.json.example) in the
// source tree, with hookPath; a test keeps them equal.
func HooksFile(hookPath string, always bool) ([]byte, error) {
	if !filepath.IsAbs(hookPath) {
		return nil, fmt.Errorf("hook path %q is not absolute: podman and CRI-O reject a hook they cannot find", hookPath)
	}
	path, _ := json.Marshal(hookPath)
	args, when := `["lxcfs-hook", "create-runtime"]`, `"annotations": {
			"^io\\.(kubernetes\\.)?lxcfs\\.enabled$": "^true$"
		}`
	if always {
		args, when = `["lxcfs-hook", "--always", "create-runtime"]`, `"always": true`
	}
	s := `{
	"version": "1.0.0",
	"hook": {
		"path": PATH,
		"args": ARGS,
		"timeout": 5
	},
	"when": {
		WHEN
	},
	"stages": ["createRuntime"]
}
`
	s = strings.NewReplacer("PATH", string(path), "ARGS", args, "WHEN", when).Replace(s)
	if !json.Valid([]byte(s)) {
		return nil, fmt.Errorf("rendered hooks.d file is not valid JSON")
	}
	return []byte(s), nil
}
