package configure

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// ShimRuncV2 is the containerd shim that runs runc-compatible binaries; its
// option BinaryName picks the binary.
const ShimRuncV2 = "io.containerd.runc.v2"

// ContainerdOptions say what to change in config.toml.
type ContainerdOptions struct {
	// Name of the runtime (DefaultRuntimeName when empty): the handler of
	// a Kubernetes RuntimeClass, or ctr/nerdctl's --runtime.
	Name string
	// BinaryName is the wrapper binary (lxcfs-runc) the shim runs.
	BinaryName string
	// Remove takes out the block an earlier run added.
	Remove bool
}

// criRuntimes is where the CRI plugin's runtimes live in each config
// version: 1 (containerd 1.x without "version"), 2 (containerd 1.x) and 3
// (containerd 2.x).
var criRuntimes = map[int64][]string{
	1: {"plugins", "cri", "containerd", "runtimes"},
	2: {"plugins", "io.containerd.grpc.v1.cri", "containerd", "runtimes"},
	3: {"plugins", "io.containerd.cri.v1.runtime", "containerd", "runtimes"},
}

// blockBegin and blockEnd delimit what Containerd adds, so a later run can
// update or remove exactly that and leave the rest of the file, comments
// included, as the admin wrote it.
func blockBegin(name string) string { return "# BEGIN lxcfs-oci runtime " + name }
func blockEnd(name string) string   { return "# END lxcfs-oci runtime " + name }

// Containerd edits config.toml (in; empty when the file does not exist) to
// add a CRI runtime NAME run by the runc shim through BinaryName. The file
// is not re-encoded, which would lose comments and order: a delimited block
// is appended (or replaced, or removed), and the result is parsed again to
// check containerd will read the entry where it looks for it. An entry the
// admin wrote by hand is left alone: equal, it is no change; different, an
// error says so.
func Containerd(in []byte, o ContainerdOptions) ([]byte, bool, error) {
	if o.Name == "" {
		o.Name = DefaultRuntimeName
	}
	if err := checkName(o.Name); err != nil {
		return nil, false, err
	}
	if !o.Remove && o.BinaryName == "" {
		return nil, false, fmt.Errorf("no BinaryName")
	}
	doc, version, err := parseContainerd(in)
	if err != nil {
		return nil, false, err
	}
	rest, hadBlock, err := cutBlock(in, o.Name)
	if err != nil {
		return nil, false, err
	}
	if o.Remove {
		if !hadBlock {
			if _, ok := lookup(doc, append(criRuntimes[version], o.Name)...); ok {
				return nil, false, fmt.Errorf("runtime %q was not added by lxcfs-hook (no %q block): remove its tables by hand", o.Name, blockBegin(o.Name))
			}
			return in, false, nil
		}
		return rest, true, nil
	}

	if !hadBlock {
		if existing, ok := lookup(doc, append(criRuntimes[version], o.Name)...); ok {
			if sameRuntime(existing, o.BinaryName) {
				return in, false, nil
			}
			return nil, false, fmt.Errorf("runtime %q is already defined, by hand (no %q block), and differs: edit it to runtime_type = %q, options.BinaryName = %q, or choose another --runtime-name", o.Name, blockBegin(o.Name), ShimRuncV2, o.BinaryName)
		}
	}
	restDoc, _, err := parseContainerd(rest)
	if err != nil {
		return nil, false, err
	}
	out := bytes.TrimRight(rest, "\n")
	if len(bytes.TrimSpace(out)) == 0 {
		// containerd 1.x reads a file without "version" as version 1.
		out = []byte("version = 2")
		version = 2
	}
	out = append(out, "\n\n"...)
	out = append(out, block(version, o.Name, o.BinaryName, systemdCgroup(restDoc, version))...)

	check, v2, err := parseContainerd(out)
	if err != nil {
		return nil, false, fmt.Errorf("the file does not parse with the runtime appended (%v): is %s an inline table? add it by hand:\n%s", err, tablePath(criRuntimes[version]), block(version, o.Name, o.BinaryName, false))
	}
	if e, ok := lookup(check, append(criRuntimes[v2], o.Name)...); !ok || !sameRuntime(e, o.BinaryName) {
		return nil, false, fmt.Errorf("appending the runtime did not give the expected entry: add it by hand:\n%s", block(version, o.Name, o.BinaryName, false))
	}
	if bytes.Equal(out, in) {
		return in, false, nil
	}
	return out, true, nil
}

func parseContainerd(in []byte) (map[string]any, int64, error) {
	doc := map[string]any{}
	if err := toml.Unmarshal(in, &doc); err != nil {
		return nil, 0, fmt.Errorf("config.toml: %w", err)
	}
	version := int64(1)
	if v, ok := doc["version"]; ok {
		n, isInt := v.(int64)
		if _, known := criRuntimes[n]; !isInt || !known {
			return nil, 0, fmt.Errorf("config.toml: version = %v: want 1, 2 or 3", v)
		}
		version = n
	}
	return doc, version, nil
}

// cutBlock returns in without the delimited block for name.
func cutBlock(in []byte, name string) ([]byte, bool, error) {
	lines := strings.SplitAfter(string(in), "\n")
	begin, end := -1, -1
	for i, l := range lines {
		switch strings.TrimSpace(l) {
		case blockBegin(name):
			if begin >= 0 {
				return nil, false, fmt.Errorf("config.toml: %q appears twice: remove one block by hand", blockBegin(name))
			}
			begin = i
		case blockEnd(name):
			if begin >= 0 && end < 0 {
				end = i
			}
		}
	}
	if begin < 0 {
		return in, false, nil
	}
	if end < 0 {
		return nil, false, fmt.Errorf("config.toml: %q without %q: fix the block by hand", blockBegin(name), blockEnd(name))
	}
	// The blank line written before the block goes with it.
	from := begin
	if from > 0 && strings.TrimSpace(lines[from-1]) == "" {
		from--
	}
	out := strings.Join(lines[:from], "") + strings.Join(lines[end+1:], "")
	return []byte(out), true, nil
}

func block(version int64, name, binary string, systemd bool) string {
	table := tablePath(append(criRuntimes[version], name))
	bin, _ := json.Marshal(binary) // a JSON string is a valid TOML basic string
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n", blockBegin(name))
	b.WriteString("# Added by lxcfs-hook configure containerd; remove with --remove.\n")
	fmt.Fprintf(&b, "[%s]\n", table)
	fmt.Fprintf(&b, "  runtime_type = %q\n", ShimRuncV2)
	fmt.Fprintf(&b, "  [%s.options]\n", table)
	fmt.Fprintf(&b, "    BinaryName = %s\n", bin)
	if systemd {
		b.WriteString("    SystemdCgroup = true\n")
	}
	fmt.Fprintf(&b, "%s\n", blockEnd(name))
	return b.String()
}

// tablePath writes a TOML table name, quoting the parts that need it.
func tablePath(parts []string) string {
	q := make([]string, len(parts))
	for i, p := range parts {
		if bareKey(p) {
			q[i] = p
		} else {
			b, _ := json.Marshal(p)
			q[i] = string(b)
		}
	}
	return strings.Join(q, ".")
}

func bareKey(s string) bool {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return s != ""
}

func lookup(doc map[string]any, path ...string) (any, bool) {
	var cur any = doc
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[p]; !ok {
			return nil, false
		}
	}
	return cur, true
}

func sameRuntime(entry any, binary string) bool {
	rt, _ := lookup(asMap(entry), "runtime_type")
	bin, _ := lookup(asMap(entry), "options", "BinaryName")
	return rt == ShimRuncV2 && bin == binary
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

// systemdCgroup tells whether the default runtime runs with the systemd
// cgroup driver. The wrapper's runtime must match it: the kubelet's cgroup
// paths are written for one driver, and runc rejects the other's.
func systemdCgroup(doc map[string]any, version int64) bool {
	cri := criRuntimes[version]
	name := "runc"
	if n, ok := lookup(doc, append(cri[:len(cri)-1:len(cri)-1], "default_runtime_name")...); ok {
		if s, ok := n.(string); ok && s != "" {
			name = s
		}
	}
	v, _ := lookup(doc, append(append([]string{}, cri...), name, "options", "SystemdCgroup")...)
	b, _ := v.(bool)
	return b
}
