package main

import (
	"github.com/urfave/cli/v2"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/hookcmd"
)

// hookOptionsFrom reads the options urfave/cli parsed, taking each flag
// from the command when given there and from the app otherwise.
func hookOptionsFrom(c *cli.Context) hookcmd.Options {
	return hookcmd.Options{
		Root:       setFlag(c, "lxcfs-root").String("lxcfs-root"),
		FailClosed: setFlag(c, "fail-closed").Bool("fail-closed"),
		Always:     setFlag(c, "always").Bool("always"),
		LogFile:    setFlag(c, "log-file").String("log-file"),
		LogLevel:   setFlag(c, "log-level").String("log-level"),
		StateDir:   setFlag(c, "state-dir").String("state-dir"),
	}
}
