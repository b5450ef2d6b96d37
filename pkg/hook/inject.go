package hook

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/edit"
)

// HookTimeout is the timeout, in seconds, written with the injected hook:
// the hook takes milliseconds, the margin covers a loaded host.
const HookTimeout = 5

// Inject adds lxcfs-hook to the createRuntime hooks of the config.json at
// configPath. It returns changed=false when the same hook (path and args) is
// already there. A createRuntime entry with the same path but other args is
// replaced, so re-injecting with new flags updates it rather than running the
// hook twice. Every other key and value of the file is kept, in its order:
// the file is edited as raw JSON, never round-tripped through specs.Spec,
// which would drop fields it does not know. The file is replaced atomically
// and keeps its mode.
func Inject(configPath, hookPath string, args []string) (changed bool, err error) {
	if !filepath.IsAbs(hookPath) {
		return false, fmt.Errorf("hook path %q is not absolute: runtimes run hooks by absolute path", hookPath)
	}
	data, err := readCapped(configPath, MaxConfigSize)
	if err != nil {
		return false, err
	}
	fi, err := os.Stat(configPath)
	if err != nil {
		return false, fmt.Errorf("stat %s: %w", configPath, err)
	}
	root, err := edit.ParseObject(data)
	if err != nil {
		return false, fmt.Errorf("parse %s: %w", configPath, err)
	}
	hooks := &edit.Object{}
	if raw, ok := root.Get("hooks"); ok && !edit.IsNull(raw) {
		if hooks, err = edit.ParseObject(raw); err != nil {
			return false, fmt.Errorf("parse %s: hooks: %w", configPath, err)
		}
	}
	var list []json.RawMessage
	if raw, ok := hooks.Get("createRuntime"); ok && !edit.IsNull(raw) {
		if err := json.Unmarshal(raw, &list); err != nil {
			return false, fmt.Errorf("parse %s: hooks.createRuntime: %w", configPath, err)
		}
	}

	type entry struct {
		Path    string   `json:"path"`
		Args    []string `json:"args,omitempty"`
		Timeout *int     `json:"timeout,omitempty"`
	}
	timeout := HookTimeout
	ours, err := json.Marshal(entry{Path: hookPath, Args: args, Timeout: &timeout})
	if err != nil {
		return false, err
	}
	found := false
	kept := make([]json.RawMessage, 0, len(list)+1)
	for i, raw := range list {
		var e entry
		if err := json.Unmarshal(raw, &e); err != nil {
			return false, fmt.Errorf("parse %s: hooks.createRuntime[%d]: %w", configPath, i, err)
		}
		switch {
		case e.Path != hookPath:
			kept = append(kept, raw)
		case found:
			// A second copy would mount everything twice: drop it.
			changed = true
		case slices.Equal(e.Args, args):
			found = true
			kept = append(kept, raw)
		default:
			found, changed = true, true
			kept = append(kept, ours)
		}
	}
	if !found {
		kept, changed = append(kept, ours), true
	}
	if !changed {
		return false, nil
	}
	list = kept
	return injectWrite(configPath, fi.Mode().Perm(), root, hooks, list)
}

func injectWrite(configPath string, mode os.FileMode, root, hooks *edit.Object, list []json.RawMessage) (bool, error) {
	rawList, err := json.Marshal(list)
	if err != nil {
		return false, err
	}
	hooks.Set("createRuntime", rawList)
	root.Set("hooks", hooks.Marshal())
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, root.Marshal(), "", "\t"); err != nil {
		return false, err
	}
	pretty.WriteByte('\n')
	if err := edit.WriteAtomic(configPath, pretty.Bytes(), mode); err != nil {
		return false, err
	}
	return true, nil
}
