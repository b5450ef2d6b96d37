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

// LoadConfig reads BUNDLE/config.json.
func LoadConfig(bundle string) (*specs.Spec, error) {
	path := filepath.Join(bundle, "config.json")
	data, err := readCapped(path, MaxConfigSize)
	if err != nil {
		return nil, err
	}
	var spec specs.Spec
	if err := json.Unmarshal(data, &spec); err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	return &spec, nil
}

// RootfsPath returns the container's root file system on the host: root.path
// from the config, relative to the bundle unless absolute. It returns "" when
// the config names no root.
func RootfsPath(bundle string, spec *specs.Spec) string {
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
