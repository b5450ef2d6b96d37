package hook

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/lxcfs-oci/lxcfs-oci/internal/linux"
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

// readCapped reads a regular file of at most max bytes. It runs at every
// container start: plain system calls, not an *os.File with its poller
// checks, and one read for a file no larger than its size said. The open
// does not block, so a FIFO planted as config.json cannot hold it.
func readCapped(path string, max int64) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("stat %s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, fmt.Errorf("read %s: not a regular file", path)
	}
	if st.Size > max {
		return nil, fmt.Errorf("read %s: %d bytes is more than the %d allowed for a config.json", path, st.Size, max)
	}
	data := make([]byte, 0, st.Size+1)
	for {
		if len(data) == cap(data) {
			data = slices.Grow(data, 4096) // grown since the stat
		}
		n, err := linux.Read(fd, data[len(data):cap(data)])
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
		if n == 0 {
			return data, nil
		}
		data = data[:len(data)+n]
		if int64(len(data)) > max {
			return nil, fmt.Errorf("read %s: more than the %d bytes allowed for a config.json", path, max)
		}
	}
}
