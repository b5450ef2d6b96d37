package main

import (
	"io"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/hookcmd"
)

// viaCLI parses args as urfave/cli does and returns the options the
// create-runtime action would get, and whether the action ran.
func viaCLI(t *testing.T, args []string) (hookcmd.Options, bool) {
	t.Helper()
	app := newApp()
	app.Writer, app.ErrWriter = io.Discard, io.Discard
	app.ExitErrHandler = func(*cli.Context, error) {}
	var got hookcmd.Options
	ran := false
	for _, c := range app.Commands {
		if c.Name == "create-runtime" {
			c.Action = func(c *cli.Context) error { got, ran = hookOptionsFrom(c), true; return nil }
		}
	}
	if err := app.Run(append([]string{"lxcfs-hook"}, args...)); err != nil {
		return got, false
	}
	return got, ran
}

// lxcfs-hook's own parser must read every command line it accepts exactly
// as lxcfs-hook-cli's urfave/cli does, and leave every other one to it.
func TestParseHookArgsAgreesWithCLI(t *testing.T) {
	for _, line := range []string{
		"create-runtime",
		"createRuntime",
		"prestart",
		"--always create-runtime",
		"--lxcfs-root /var/lib/lxcfs --always --fail-closed create-runtime",
		"--lxcfs-root=/x --log-file=- --log-level=debug --state-dir=/s create-runtime",
		"-lxcfs-root /x -always create-runtime",
		"--lxcfs-root /a create-runtime --lxcfs-root /b",
		"--always create-runtime --always=false",
		"--fail-closed=true --always=0 create-runtime",
		"create-runtime --lxcfs-root /a --log-file /l --state-dir /s --log-level warn --always --fail-closed",
		"--log-file - create-runtime",
		"--lxcfs-root= create-runtime",
	} {
		args := strings.Fields(line)
		want, ran := viaCLI(t, args)
		if !ran {
			t.Fatalf("%q: urfave/cli did not run create-runtime", line)
		}
		got, ok := hookcmd.Parse(args)
		if !ok {
			t.Errorf("%q: fast path declined a hook command line", line)
			continue
		}
		if got != want {
			t.Errorf("%q: fast path %+v, urfave/cli %+v", line, got, want)
		}
	}
	for _, line := range []string{
		"",
		"--help",
		"-h",
		"create-runtime --help",
		"--version",
		"inject --bundle /b",
		"--always",
		"--lxcfs-root",
		"create-runtime --lxcfs-root",
		"--always=maybe create-runtime",
		"--unknown create-runtime",
		"create-runtime extra",
		"create-runtime create-runtime",
		"configure docker",
		"-- create-runtime",
	} {
		if o, ok := hookcmd.Parse(strings.Fields(line)); ok {
			t.Errorf("%q: fast path took it (%+v); only urfave/cli should", line, o)
		}
	}
}
