package hookrun

import (
	"strconv"
	"strings"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/hook"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/remount"
)

// Options are what create-runtime is told on its command line.
type Options struct {
	Root       string // --lxcfs-root
	FailClosed bool   // --fail-closed
	Always     bool   // --always
	LogFile    string // --log-file
	LogLevel   string // --log-level
	StateDir   string // --state-dir
}

// DefaultOptions are the flags' defaults (lxcfs-hook-cli's flags show the
// same values).
func DefaultOptions() Options {
	return Options{Root: hook.DefaultRoot, LogFile: DefaultLogFile, LogLevel: "info", StateDir: remount.DefaultStateDir}
}

// Commands are create-runtime's name and aliases.
var Commands = map[string]bool{"create-runtime": true, "createRuntime": true, "prestart": true}

// ParseArgs recognises the command lines runtimes run the hook with
// (hooks.d, inject, the wrapper and the NRI plugin write them): hook flags
// on either side of create-runtime. Anything else, --help included, is
// left to lxcfs-hook-cli (ok false), whose urfave/cli command tree costs
// start-up time every container start would pay for nothing. As in
// urfave/cli, -flag and --flag are alike, and a flag after the command wins
// over the same flag before it.
func ParseArgs(args []string) (o Options, ok bool) {
	o = DefaultOptions()
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
