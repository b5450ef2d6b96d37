package main

import (
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/hook"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/remount"
)

// hookOptions are what create-runtime is told on its command line.
type hookOptions struct {
	root       string
	failClosed bool
	always     bool
	logFile    string
	logLevel   string
	stateDir   string
}

// The defaults match hookFlags' values.
func defaultHookOptions() hookOptions {
	return hookOptions{root: hook.DefaultRoot, logFile: DefaultLogFile, logLevel: "info", stateDir: remount.DefaultStateDir}
}

// hookOptionsFrom reads the options urfave/cli parsed, taking each flag
// from the command when given there and from the app otherwise.
func hookOptionsFrom(c *cli.Context) hookOptions {
	return hookOptions{
		root:       setFlag(c, "lxcfs-root").String("lxcfs-root"),
		failClosed: setFlag(c, "fail-closed").Bool("fail-closed"),
		always:     setFlag(c, "always").Bool("always"),
		logFile:    setFlag(c, "log-file").String("log-file"),
		logLevel:   setFlag(c, "log-level").String("log-level"),
		stateDir:   setFlag(c, "state-dir").String("state-dir"),
	}
}

// hookCommands are create-runtime's name and aliases.
var hookCommands = map[string]bool{"create-runtime": true, "createRuntime": true, "prestart": true}

// parseHookArgs recognises the command lines runtimes run the hook with
// (hooks.d, inject, the wrapper and the NRI plugin write them): hook flags
// on either side of create-runtime. Anything else, --help included, is
// left to urfave/cli (ok false), which builds the whole command tree
// first: a cost every container start would pay for nothing. A flag after
// the command wins over the same flag before it, as in urfave/cli.
func parseHookArgs(args []string) (hookOptions, bool) {
	o := defaultHookOptions()
	command := false
	for i := 0; i < len(args); i++ {
		a := args[i]
		if hookCommands[a] && !command {
			command = true
			continue
		}
		// urfave/cli takes -flag and --flag alike.
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
			dst = &o.root
		case "log-file":
			dst = &o.logFile
		case "log-level":
			dst = &o.logLevel
		case "state-dir":
			dst = &o.stateDir
		case "fail-closed", "always":
			b := true
			if hasValue {
				var err error
				if b, err = strconv.ParseBool(value); err != nil {
					return o, false
				}
			}
			if name == "always" {
				o.always = b
			} else {
				o.failClosed = b
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
