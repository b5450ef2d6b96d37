package configure

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/edit"
)

// DefaultRuntimeName is the name the wrapper is registered under, in Docker
// (docker run --runtime lxcfs), containerd and a Kubernetes RuntimeClass.
const DefaultRuntimeName = "lxcfs"

// DockerOptions say what to change in daemon.json.
type DockerOptions struct {
	// Name of the runtime (DefaultRuntimeName when empty).
	Name string
	// Path of the wrapper binary (lxcfs-runc).
	Path string
	// SetDefault makes it the default runtime ("default-runtime").
	SetDefault bool
	// Remove takes the runtime out again (and "default-runtime" when it
	// names it) instead of adding it.
	Remove bool
}

var runtimeName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

func checkName(name string) error {
	if !runtimeName.MatchString(name) {
		return fmt.Errorf("runtime name %q: use letters, digits, '_', '.' and '-'", name)
	}
	return nil
}

// Docker edits daemon.json (in; empty when the file does not exist) to
// register the runtime wrapper as "runtimes": {NAME: {"path": PATH}}. Every
// other key is kept, in order, and so are other keys of an existing entry
// (runtimeArgs). It returns the new file and whether it differs.
func Docker(in []byte, o DockerOptions) ([]byte, bool, error) {
	if o.Name == "" {
		o.Name = DefaultRuntimeName
	}
	if err := checkName(o.Name); err != nil {
		return nil, false, err
	}
	if !o.Remove && o.Path == "" {
		return nil, false, fmt.Errorf("no runtime path")
	}
	src := in
	if len(bytes.TrimSpace(src)) == 0 {
		src = []byte("{}")
	}
	root, err := edit.ParseObject(src)
	if err != nil {
		return nil, false, fmt.Errorf("daemon.json: %w", err)
	}
	runtimes := &edit.Object{}
	if raw, ok := root.Get("runtimes"); ok && !edit.IsNull(raw) {
		if runtimes, err = edit.ParseObject(raw); err != nil {
			return nil, false, fmt.Errorf("daemon.json: \"runtimes\": %w", err)
		}
	}
	var defaultRuntime string
	if raw, ok := root.Get("default-runtime"); ok {
		if err := json.Unmarshal(raw, &defaultRuntime); err != nil {
			return nil, false, fmt.Errorf("daemon.json: \"default-runtime\" is not a string: %w", err)
		}
	}

	if o.Remove {
		runtimes.Delete(o.Name)
		if runtimes.Len() == 0 {
			root.Delete("runtimes")
		} else {
			root.Set("runtimes", runtimes.Marshal())
		}
		if defaultRuntime == o.Name {
			root.Delete("default-runtime")
		}
	} else {
		entry := &edit.Object{}
		if raw, ok := runtimes.Get(o.Name); ok && !edit.IsNull(raw) {
			if entry, err = edit.ParseObject(raw); err != nil {
				return nil, false, fmt.Errorf("daemon.json: \"runtimes\".%q: %w", o.Name, err)
			}
		}
		path, _ := json.Marshal(o.Path)
		entry.Set("path", path)
		runtimes.Set(o.Name, entry.Marshal())
		root.Set("runtimes", runtimes.Marshal())
		if o.SetDefault {
			name, _ := json.Marshal(o.Name)
			root.Set("default-runtime", name)
		}
	}
	out, err := indentLike(in, root.Marshal())
	if err != nil {
		return nil, false, err
	}
	if sameJSON(src, out) {
		return in, false, nil
	}
	return out, true, nil
}

// indentLike indents out with the indentation of the first indented line
// of the original file (two spaces for a new one).
func indentLike(orig, out []byte) ([]byte, error) {
	indent := "  "
	if m := regexp.MustCompile(`\n([ \t]+)\S`).FindSubmatch(orig); m != nil {
		indent = string(m[1])
	}
	var b bytes.Buffer
	if err := json.Indent(&b, out, "", indent); err != nil {
		return nil, err
	}
	b.WriteByte('\n')
	return b.Bytes(), nil
}

// sameJSON compares two documents' content, ignoring layout, so re-running
// configure on a file laid out by hand reports no change and writes nothing.
func sameJSON(a, b []byte) bool {
	var ca, cb bytes.Buffer
	if json.Compact(&ca, a) != nil || json.Compact(&cb, b) != nil {
		return false
	}
	return bytes.Equal(ca.Bytes(), cb.Bytes())
}
