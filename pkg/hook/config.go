package hook

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// MaxConfigSize caps config.json. Real ones are tens of kilobytes; the cap is
// generous for big annotation sets but keeps a hostile bundle from making the
// hook, which runs on every container start, read and decode without bound.
const MaxConfigSize = 16 << 20

// Config is the part of a bundle's config.json the hook reads: the root, the
// process environment (the runtime wrapper's opt-in) and the annotations,
// with specs-go's field names and types. Decoding only these, rather than a
// whole specs.Spec, spares encoding/json building decoders for the dozens of
// types a full spec holds, on every container start.
type Config struct {
	Root        *specs.Root       `json:"root,omitempty"`
	Process     *Process          `json:"process,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Process is the part of specs.Process the hook reads.
type Process struct {
	Env []string `json:"env,omitempty"`
}

// LoadConfig reads BUNDLE/config.json.
func LoadConfig(bundle string) (*Config, error) {
	path := filepath.Join(bundle, "config.json")
	data, err := readCapped(path, MaxConfigSize)
	if err != nil {
		return nil, err
	}
	var cfg Config
	if err := json.Unmarshal(data, &cfg); err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	return &cfg, nil
}

// RootfsPath returns the container's root file system on the host: root.path
// from the config, relative to the bundle unless absolute. It returns "" when
// the config names no root.
func RootfsPath(bundle string, spec *Config) string {
	if spec == nil || spec.Root == nil || spec.Root.Path == "" {
		return ""
	}
	if filepath.IsAbs(spec.Root.Path) {
		return filepath.Clean(spec.Root.Path)
	}
	return filepath.Join(bundle, spec.Root.Path)
}

// readCapped reads a regular file of at most max bytes.
func readCapped(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("read %s: not a regular file", path)
	}
	if fi.Size() > max {
		return nil, fmt.Errorf("read %s: %d bytes is more than the %d allowed for a config.json", path, fi.Size(), max)
	}
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("read %s: more than the %d bytes allowed for a config.json", path, max)
	}
	return data, nil
}
