package wrapper

import "strings"

// Invocation is what the wrapper needs from a runtime's argv: which
// subcommand runs and, for the ones that create a container, its bundle.
type Invocation struct {
	// Command is the subcommand ("create", "run", "exec", ...), or "" when
	// argv has none (runc --version, runc --help) or could not be told.
	Command string
	// Bundle is the value of --bundle/-b as given, "" when absent: the
	// runtime then uses its working directory.
	Bundle string
}

// Creates says whether the subcommand creates a container from a bundle,
// the only moment a createRuntime hook can still be added.
func (i Invocation) Creates() bool {
	return i.Command == "create" || i.Command == "run"
}

// globalValueFlags are the global options of runc and crun that take a
// value as the next argument. Every other option is taken as boolean: a
// wrong guess can only hide the subcommand, and then the wrapper passes the
// call through untouched rather than misread it.
var globalValueFlags = map[string]bool{
	"log": true, "log-format": true, "root": true, "criu": true, "rootless": true, // runc
	"cgroup-manager": true, "log-level": true, // crun
}

// createValueFlags are the options of create and run that take a value.
var createValueFlags = map[string]bool{
	"bundle": true, "b": true, "console-socket": true, "pid-file": true, "preserve-fds": true,
}

// Parse reads a runtime's argv, without argv[0]. It follows the two option
// syntaxes the runtimes accept: Go's flag package as used by runc's CLI
// library ("-root x", "--root=x", "-b x") and GNU getopt as used by crun
// ("--root=x", "--root x"); "--" ends the options. The global options
// before the subcommand are skipped, and the bundle is looked for anywhere
// after it, since both runtimes also take options after the container id.
func Parse(args []string) Invocation {
	var inv Invocation
	i := 0
	for ; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			i++
			break
		}
		name, hasValue, ok := option(a)
		if !ok {
			break
		}
		if !hasValue && globalValueFlags[name] {
			i++ // the value is the next argument
		}
	}
	if i >= len(args) {
		return inv
	}
	inv.Command = args[i]
	if !inv.Creates() {
		return inv
	}
	rest := args[i+1:]
	for j := 0; j < len(rest); j++ {
		a := rest[j]
		if a == "--" {
			break
		}
		name, hasValue, ok := option(a)
		if !ok {
			continue // the container id
		}
		var value string
		switch {
		case hasValue:
			value = a[strings.IndexByte(a, '=')+1:]
		case createValueFlags[name] && j+1 < len(rest):
			j++
			value = rest[j]
		}
		if name == "bundle" || name == "b" {
			// The last one wins, as in both runtimes.
			inv.Bundle = value
		}
	}
	return inv
}

// option splits "-x", "--name" or "--name=value" into the name and whether
// the value is attached. A lone "-" is an argument, not an option.
func option(a string) (name string, hasValue, ok bool) {
	if len(a) < 2 || a[0] != '-' {
		return "", false, false
	}
	name = strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
	if k := strings.IndexByte(name, '='); k >= 0 {
		return name[:k], true, true
	}
	return name, false, true
}

// AsksVersion says whether argv (without argv[0]) only asks the runtime for
// its version: runc takes --version and -v, crun --version and -V.
func AsksVersion(args []string) bool {
	if len(args) != 1 {
		return false
	}
	switch args[0] {
	case "--version", "-version", "-v", "-V":
		return true
	}
	return false
}
