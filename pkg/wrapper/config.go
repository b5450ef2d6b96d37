package wrapper

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// DefaultConfigFile is read by lxcfs-runc on every call, when present. Engines
// start runtimes with a bare path (Docker's "runtimes", containerd's
// BinaryName), so a file is the one place an admin can configure it.
const DefaultConfigFile = "/etc/lxcfs-oci/runtime.json"

// Environment variables read by the wrapper; they win over the file.
const (
	EnvConfig  = "LXCFS_RUNTIME_CONFIG" // another config file; "" or "none" reads none
	EnvRuntime = "LXCFS_RUNTIME"        // the real runtime, a name on $PATH or a path
	EnvMode    = "LXCFS_MODE"           // "all" or "opt-in"
)

// Modes of the wrapper.
const (
	// ModeAll serves every container created through the wrapper unless it
	// opts out (annotation or environment io.lxcfs.enabled=false): choosing
	// the runtime is the opt-in.
	ModeAll = "all"
	// ModeOptIn adds the hook only to containers that opt in.
	ModeOptIn = "opt-in"
)

// Config is the wrapper's configuration, as a file and after resolution.
type Config struct {
	// Runtime is the real runtime, a name looked up on $PATH or an absolute
	// path (default runc, or crun when invoked as lxcfs-crun).
	Runtime string `json:"runtime,omitempty"`
	// Mode is ModeAll (default) or ModeOptIn.
	Mode string `json:"mode,omitempty"`
	// LXCFSRoot is where the views are served (default /var/lib/lxcfs).
	LXCFSRoot string `json:"lxcfsRoot,omitempty"`
	// FailClosed writes --fail-closed into the hook's arguments.
	FailClosed bool `json:"failClosed,omitempty"`
	// HookPath is the hook binary written into config.json (default: the
	// wrapper's own binary, which is lxcfs-hook).
	HookPath string `json:"hookPath,omitempty"`
	// LogFile is where the wrapper and the hook append what they did
	// (default: the hook's default log file).
	LogFile string `json:"logFile,omitempty"`
	// StateDir is passed to the hook as --state-dir, where it records the
	// containers it served (default: the hook's own default).
	StateDir string `json:"stateDir,omitempty"`
	// Sysinfo sends served containers' sysinfo(2) to lxcfs-fused (a seccomp
	// rule and listener in config.json) unless io.lxcfs.sysinfo=false, when
	// lxcfs-fused listens; unset means on. false: only containers with
	// io.lxcfs.sysinfo=true get it.
	Sysinfo *bool `json:"sysinfo,omitempty"`
}

// SysinfoOn reports the sysinfo setting, on unless set to false.
func (c Config) SysinfoOn() bool { return c.Sysinfo == nil || *c.Sysinfo }

// maxConfigFile caps the config file, read on every runtime call.
const maxConfigFile = 64 << 10

// ParseConfig decodes a config file strictly: a misspelt key is an error,
// not a silently ignored setting.
func ParseConfig(data []byte) (Config, error) {
	var c Config
	if len(bytes.TrimSpace(data)) == 0 {
		return c, nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Config{}, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Config{}, errors.New("trailing data after the JSON object")
	}
	if err := c.validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

func (c Config) validate() error {
	switch c.Mode {
	case "", ModeAll, ModeOptIn:
	default:
		return fmt.Errorf("mode %q: want %q or %q", c.Mode, ModeAll, ModeOptIn)
	}
	for name, p := range map[string]string{"lxcfsRoot": c.LXCFSRoot, "hookPath": c.HookPath, "stateDir": c.StateDir} {
		if p != "" && !filepath.IsAbs(p) {
			return fmt.Errorf("%s %q is not an absolute path", name, p)
		}
	}
	return nil
}

// LoadConfigFile reads a config file; a missing file is an empty config.
func LoadConfigFile(path string) (Config, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return Config{}, nil
	}
	if err != nil {
		return Config{}, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigFile+1))
	if err != nil {
		return Config{}, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > maxConfigFile {
		return Config{}, fmt.Errorf("read %s: larger than %d bytes", path, maxConfigFile)
	}
	c, err := ParseConfig(data)
	if err != nil {
		return Config{}, fmt.Errorf("parse %s: %w (see lxcfs-hook runtime --help)", path, err)
	}
	return c, nil
}

// ConfigFile says which config file to read given the environment.
func ConfigFile(getenv func(string) string) string {
	switch v := getenv(EnvConfig); v {
	case "":
		return DefaultConfigFile
	case "none":
		return ""
	default:
		return v
	}
}

// Resolve layers the sources, most important first (flags, environment,
// file), over the defaults, and checks the result.
func Resolve(layers ...Config) (Config, error) {
	var c Config
	for i := len(layers) - 1; i >= 0; i-- {
		l := layers[i]
		set(&c.Runtime, l.Runtime)
		set(&c.Mode, l.Mode)
		set(&c.LXCFSRoot, l.LXCFSRoot)
		set(&c.HookPath, l.HookPath)
		set(&c.LogFile, l.LogFile)
		set(&c.StateDir, l.StateDir)
		c.FailClosed = c.FailClosed || l.FailClosed
		if l.Sysinfo != nil {
			c.Sysinfo = l.Sysinfo
		}
	}
	if c.Runtime == "" {
		c.Runtime = "runc"
	}
	if c.Mode == "" {
		c.Mode = ModeAll
	}
	return c, c.validate()
}

func set(dst *string, v string) {
	if v != "" {
		*dst = v
	}
}

// FromEnv is the layer the environment gives.
func FromEnv(getenv func(string) string) Config {
	return Config{Runtime: getenv(EnvRuntime), Mode: getenv(EnvMode)}
}

// HookOptions are the hook's settings written into config.json; empty ones
// are left to the hook's defaults.
type HookOptions struct {
	LXCFSRoot string
	// Always makes the hook serve unless the container's annotations opt out.
	Always     bool
	FailClosed bool
	LogFile    string
	StateDir   string
}

// HookArgs are the hook's arguments as written into config.json.
func HookArgs(o HookOptions) []string {
	args := []string{"lxcfs-hook"}
	if o.LXCFSRoot != "" {
		args = append(args, "--lxcfs-root", o.LXCFSRoot)
	}
	if o.Always {
		args = append(args, "--always")
	}
	if o.FailClosed {
		args = append(args, "--fail-closed")
	}
	if o.LogFile != "" {
		args = append(args, "--log-file", o.LogFile)
	}
	if o.StateDir != "" {
		args = append(args, "--state-dir", o.StateDir)
	}
	return append(args, "create-runtime")
}

// EnvAnnotations turns the container's environment variables
// LXCFS_ENABLED, LXCFS_REQUIRED and LXCFS_SYSINFO into the annotations the hook reads.
// Docker before 24 cannot set annotations (no --annotation), so with it the
// environment (docker run -e LXCFS_ENABLED=false) is the only per-container
// switch; the names are upper case as environment variables are.
func EnvAnnotations(env []string) map[string]string {
	out := map[string]string{}
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		switch k {
		case "LXCFS_ENABLED":
			out["io.lxcfs.enabled"] = v
		case "LXCFS_REQUIRED":
			out["io.lxcfs.required"] = v
		case "LXCFS_SYSINFO":
			out["io.lxcfs.sysinfo"] = v
		}
	}
	return out
}
