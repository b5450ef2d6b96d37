package main

import (
	"context"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/hook"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/remount"
)

func stateDirFlag() cli.Flag {
	return &cli.StringFlag{
		Name:  "state-dir",
		Value: remount.DefaultStateDir,
		Usage: "where served containers are recorded, so their views can be re-attached after the daemon's connection is lost (lxcfs-fused reads the same directory at start; \"lxcfs-hook remount\" on demand), where each run counts its outcome (hook.counts) for the daemon's metrics, and where lxcfs-fused listens for registrations (register.sock) that give a container files of its own; use the daemon's --state-dir",
	}
}

func remountCommand() *cli.Command {
	return &cli.Command{
		Name:  "remount",
		Usage: "re-attach dead views in every running container the hook served",
		Description: `After the daemon's FUSE connection was lost (the daemon was stopped, or
killed together with its supervisor), views in running containers answer
"transport endpoint is not connected". lxcfs-fused re-attaches them when it
starts; this command does the same on demand, once the daemon serves again:
for every recorded container still running, each dead view is replaced by a
fresh read-only bind of the daemon's file (open_tree + move_mount, so no host
directory is exposed inside the container); records of containers that are
gone are dropped. It goes through the hook's own mount path. Each container
gets at most --timeout. Prints what it did.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "lxcfs-root", Value: hook.DefaultRoot, Usage: "the daemon's mountpoint; only containers served from it are handled"},
			stateDirFlag(),
			&cli.DurationFlag{Name: "timeout", Value: remount.DefaultTimeout, Usage: "how long one container may take; a container whose namespace does not answer (a file system of its own on a view's path that stalls) is reported as failed after this, and the others are still handled"},
		},
		Action: func(c *cli.Context) error {
			root := c.String("lxcfs-root")
			if err := hook.Serving(root); err != nil {
				return cli.Exit(fmt.Sprintf("lxcfs-hook remount: %v: start lxcfs-fused first", err), 1)
			}
			outcomes, errs := remount.Run(context.Background(), c.String("state-dir"), root, c.Duration("timeout"))
			for _, err := range errs {
				fmt.Fprintln(c.App.ErrWriter, "warning:", err)
			}
			failed := 0
			for _, o := range outcomes {
				switch {
				case o.Gone:
					fmt.Fprintf(c.App.Writer, "%s: gone, record dropped\n", o.ID)
				case o.Err != nil:
					failed++
					fmt.Fprintf(c.App.Writer, "%s: FAILED after re-attaching %d: %v\n", o.ID, len(o.Reattached), o.Err)
				default:
					fmt.Fprintf(c.App.Writer, "%s: re-attached %d, already live %d\n", o.ID, len(o.Reattached), len(o.Alive))
				}
			}
			if failed > 0 {
				return cli.Exit(fmt.Sprintf("lxcfs-hook remount: %d container(s) failed", failed), 1)
			}
			return nil
		},
	}
}
