// Package hookcmd is the command lines lxcfs-hook's binaries are started
// with at container start: create-runtime with its flags (hooks.d, inject,
// the wrapper and the NRI plugin write them) and the runtime wrapper's
// names. lxcfs-hook, which runtimes run at every container start, links
// little beyond this and pkg/delegate: every package a binary links is
// initialised, and its code paged in, at every start.
package hookcmd

import (
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Defaults of the flags (lxcfs-hook-cli's help shows the same values).
const (
	// DefaultRoot is where lxcfs-fused (and LXCFS) serve by default.
	DefaultRoot = "/var/lib/lxcfs"
	// DefaultStateDir is the daemon's and the hook's state: tmpfs, so a
	// reboot (which ends every container) forgets it.
	DefaultStateDir = "/run/lxcfs-oci"
	// DefaultLogFile is appended to on every run: runtimes throw hook
	// output away when the hook succeeds, so stderr alone would lose
	// every warning.
	DefaultLogFile = "/var/log/lxcfs-hook.log"
)

// CLIName is the binary holding lxcfs-hook's full command line (and
// create-runtime run in the hook's own process), installed beside
// lxcfs-hook.
const CLIName = "lxcfs-hook-cli"

// EnvUndelegated carries, from lxcfs-hook to the lxcfs-hook-cli it hands
// create-runtime to, why the daemon did not run it: logged, and the
// daemon is not asked again.
const EnvUndelegated = "LXCFS_HOOK_UNDELEGATED"

// WriteLogCommand is lxcfs-hook-cli's hidden command that writes log lines
// given on stdin to the journal or syslog when --log-file cannot be
// opened, for lxcfs-hook, which links neither.
const WriteLogCommand = "write-log"

// Options are what create-runtime is told on its command line.
type Options struct {
	Root       string // --lxcfs-root
	FailClosed bool   // --fail-closed
	Always     bool   // --always
	LogFile    string // --log-file
	LogLevel   string // --log-level
	StateDir   string // --state-dir
}

// Default are the flags' defaults.
func Default() Options {
	return Options{Root: DefaultRoot, LogFile: DefaultLogFile, LogLevel: "info", StateDir: DefaultStateDir}
}

// Commands are create-runtime's name and aliases.
var Commands = map[string]bool{"create-runtime": true, "createRuntime": true, "prestart": true}

// Parse recognises the command lines runtimes run the hook with: hook flags
// on either side of create-runtime. Anything else, --help included, is left
// to lxcfs-hook-cli (ok false), whose urfave/cli command tree costs
// start-up time every container start would pay for nothing. As in
// urfave/cli, -flag and --flag are alike, and a flag after the command wins
// over the same flag before it.
func Parse(args []string) (o Options, ok bool) {
	o = Default()
	command := false
	for i := 0; i < len(args); i++ {
		a := args[i]
		if Commands[a] && !command {
			command = true
			continue
		}
		name, ok := strings.CutPrefix(a, "--")
		if !ok {
			if name, ok = strings.CutPrefix(a, "-"); !ok || name == "" || name[0] == '-' {
				return o, false
			}
		}
		name, value, hasValue := strings.Cut(name, "=")
		var dst *string
		switch name {
		case "lxcfs-root":
			dst = &o.Root
		case "log-file":
			dst = &o.LogFile
		case "log-level":
			dst = &o.LogLevel
		case "state-dir":
			dst = &o.StateDir
		case "fail-closed", "always":
			b := true
			if hasValue {
				var err error
				if b, err = strconv.ParseBool(value); err != nil {
					return o, false
				}
			}
			if name == "always" {
				o.Always = b
			} else {
				o.FailClosed = b
			}
			continue
		default:
			return o, false
		}
		if !hasValue {
			if i+1 >= len(args) {
				return o, false
			}
			i++
			value = args[i]
		}
		*dst = value
	}
	return o, command
}

// NameRuntimes maps the names the runtime wrapper answers to (lxcfs-runc,
// and the links made to it) to the runtime each wraps by default.
var NameRuntimes = map[string]string{"lxcfs-runc": "runc", "lxcfs-crun": "crun"}

// RuntimeForName returns the default runtime when argv0 names the wrapper,
// and ok=false when the binary was started under another name.
func RuntimeForName(argv0 string) (runtime string, ok bool) {
	rt, ok := NameRuntimes[filepath.Base(argv0)]
	return rt, ok
}

// WriteRecords writes log lines to w one line a write: each record reaches
// a file whole between other processes' appends, and the journal or syslog
// as one entry.
func WriteRecords(w io.Writer, lines string) {
	for line := range strings.Lines(lines) {
		io.WriteString(w, line)
	}
}

// OpenLogFile opens the hook's log file for appending, creating it. Not
// through a symlink: the hook runs as root, and a link planted at the
// log's path would have it append to any file.
func OpenLogFile(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NOFOLLOW, 0o640)
}
