package hook

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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
	root, err := parseObject(data)
	if err != nil {
		return false, fmt.Errorf("parse %s: %w", configPath, err)
	}
	hooks := &object{}
	if raw, ok := root.get("hooks"); ok && !isNull(raw) {
		if hooks, err = parseObject(raw); err != nil {
			return false, fmt.Errorf("parse %s: hooks: %w", configPath, err)
		}
	}
	var list []json.RawMessage
	if raw, ok := hooks.get("createRuntime"); ok && !isNull(raw) {
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
		case equalArgs(e.Args, args):
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

func injectWrite(configPath string, mode os.FileMode, root, hooks *object, list []json.RawMessage) (bool, error) {
	rawList, err := json.Marshal(list)
	if err != nil {
		return false, err
	}
	hooks.set("createRuntime", rawList)
	rawHooks, err := hooks.marshal()
	if err != nil {
		return false, err
	}
	root.set("hooks", rawHooks)
	out, err := root.marshal()
	if err != nil {
		return false, err
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, out, "", "\t"); err != nil {
		return false, err
	}
	pretty.WriteByte('\n')
	if err := writeAtomic(configPath, pretty.Bytes(), mode); err != nil {
		return false, err
	}
	return true, nil
}

func equalArgs(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func isNull(raw json.RawMessage) bool {
	return string(bytes.TrimSpace(raw)) == "null"
}

// writeAtomic replaces path with data through a temporary file in the same
// directory, so a runtime reading config.json concurrently never sees half a
// file.
func writeAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("chmod %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("sync %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("replace %s: %w", path, err)
	}
	return nil
}

// object is a JSON object that keeps its keys in order and its values as
// they were, so editing one key leaves the rest of the file alone.
type object struct {
	keys   []string
	values map[string]json.RawMessage
}

func parseObject(data []byte) (*object, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("not a JSON object")
	}
	o := &object{values: make(map[string]json.RawMessage)}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("unexpected %v where a key was expected", tok)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
		// A duplicate key keeps its first place and, as encoding/json
		// does, its last value.
		if _, dup := o.values[key]; !dup {
			o.keys = append(o.keys, key)
		}
		o.values[key] = raw
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err == nil {
		return nil, errors.New("trailing data after the JSON object")
	}
	return o, nil
}

func (o *object) get(key string) (json.RawMessage, bool) {
	v, ok := o.values[key]
	return v, ok
}

func (o *object) set(key string, v json.RawMessage) {
	if o.values == nil {
		o.values = make(map[string]json.RawMessage)
	}
	if _, ok := o.values[key]; !ok {
		o.keys = append(o.keys, key)
	}
	o.values[key] = v
}

func (o *object) marshal() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range o.keys {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, err := json.Marshal(k)
		if err != nil {
			return nil, err
		}
		b.Write(kb)
		b.WriteByte(':')
		b.Write(o.values[k])
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}
