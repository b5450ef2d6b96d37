//go:build !urfave_cli_no_docs

package main

import (
	"fmt"

	"github.com/urfave/cli/v2"
)

// manCommand prints the manual page, made from the same text as --help so
// the two never disagree; make install writes it to man8/lxcfs-hook.8.
// The hook that runtimes run is built without it (see man_nodocs.go).
func manCommand() *cli.Command {
	return &cli.Command{
		Name:   "man",
		Usage:  "print the manual page (roff) on stdout",
		Hidden: true,
		Action: func(c *cli.Context) error {
			page, err := c.App.ToManWithSection(8)
			if err != nil {
				return cli.Exit(fmt.Sprintf("lxcfs-hook man: %v", err), 1)
			}
			_, err = fmt.Fprint(c.App.Writer, page)
			return err
		},
	}
}
