//go:build urfave_cli_no_docs

package main

import "github.com/urfave/cli/v2"

// manCommand stands in for the manual page printer in builds with the
// urfave_cli_no_docs tag, which make build uses: urfave/cli's manual page
// support links a Markdown library whose initialisation alone cost 0.6 ms
// of every container start. make install prints the page with a build
// that has it.
func manCommand() *cli.Command {
	return &cli.Command{
		Name:   "man",
		Usage:  "print the manual page (roff) on stdout",
		Hidden: true,
		Action: func(c *cli.Context) error {
			return cli.Exit("lxcfs-hook man: this binary was built without manual page support (-tags urfave_cli_no_docs, as make build does); print it with: go run ./cmd/lxcfs-hook-cli man", 1)
		},
	}
}
