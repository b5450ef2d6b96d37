// Command lxcfs-nri is an NRI plugin: it registers with the container
// runtime's node resource interface (containerd 1.7+, CRI-O 1.26+) and adds
// lxcfs-hook as a createRuntime hook to the containers of pods that opt in,
// so Kubernetes pods are served by an annotation alone, with no change to
// the runtime's configuration. It is its own binary so that lxcfs-hook,
// which runs on every container start, does not pay for NRI's libraries.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/containerd/nri/pkg/api"
	"github.com/urfave/cli/v2"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/hook"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/nriplugin"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/version"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/wrapper"
)

func main() {
	if err := newApp().Run(os.Args); err != nil {
		var ec cli.ExitCoder
		if !errors.As(err, &ec) {
			fmt.Fprintln(os.Stderr, "lxcfs-nri:", err)
			os.Exit(1)
		}
	}
}

func newApp() *cli.App {
	return &cli.App{
		Name:    "lxcfs-nri",
		Version: version.String(),
		Usage:   "NRI plugin that adds lxcfs-hook to the containers of pods that opt in",
		Description: `Registers with the runtime's NRI socket and, for every container created,
adds {"path": HOOK, "args": ["lxcfs-hook", "--always", ..., "create-runtime"]}
to its createRuntime hooks when the pod opts in: pod annotation
io.lxcfs.enabled=true or io.kubernetes.lxcfs.enabled=true, or, with
--mode all, unless it says io.lxcfs.enabled=false. A container's own
annotations, and pod annotations KEY/container.NAME, win over the pod's.
When the runtime restarts, the plugin registers again. Containers are never
failed by the plugin; the hook starts them with the host's files when the
views are not served (unless --fail-closed or io.lxcfs.required=true).`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "socket", Value: api.DefaultSocketPath, Usage: "the runtime's NRI socket"},
			&cli.StringFlag{Name: "plugin-name", Value: "lxcfs", Usage: "name the plugin registers under"},
			&cli.StringFlag{Name: "plugin-index", Value: "50", Usage: "two-digit index ordering the plugin among the runtime's NRI plugins"},
			&cli.StringFlag{Name: "mode", Value: wrapper.ModeOptIn, Usage: "\"opt-in\": serve pods that carry io.lxcfs.enabled=true (or io.kubernetes.lxcfs.enabled=true); \"all\": serve every pod unless it carries io.lxcfs.enabled=false"},
			&cli.StringFlag{Name: "hook-path", Value: nriplugin.DefaultHookPath, Usage: "absolute path of lxcfs-hook on the node, which the runtime runs"},
			&cli.StringFlag{Name: "lxcfs-root", Value: hook.DefaultRoot, Usage: "views directory written into the hook's arguments"},
			&cli.BoolFlag{Name: "fail-closed", Usage: "write --fail-closed into the hook's arguments: a served container does not start without the views"},
			&cli.StringFlag{Name: "hook-log-file", Usage: "write --log-file FILE into the hook's arguments (default: the hook's own, /var/log/lxcfs-hook.log)"},
			&cli.StringFlag{Name: "state-dir", Usage: "write --state-dir DIR into the hook's arguments (default: the hook's own, /run/lxcfs-oci)"},
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "least severe level logged to stderr: debug, info, warn or error"},
		},
		Action: run,
	}
}

func run(c *cli.Context) error {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.String("log-level"))); err != nil {
		return cli.Exit(fmt.Sprintf("lxcfs-nri: --log-level %q: want debug, info, warn or error", c.String("log-level")), 2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	p := &nriplugin.Plugin{
		Config: nriplugin.Config{
			HookPath:   c.String("hook-path"),
			Mode:       c.String("mode"),
			LXCFSRoot:  c.String("lxcfs-root"),
			FailClosed: c.Bool("fail-closed"),
			LogFile:    c.String("hook-log-file"),
			StateDir:   c.String("state-dir"),
		},
		Log: log,
	}
	if err := p.Config.Validate(); err != nil {
		return cli.Exit(fmt.Sprintf("lxcfs-nri: %v", err), 2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	log.Info("starting", "version", version.String(), "socket", c.String("socket"), "mode", p.Config.Mode, "hook", p.Config.HookPath)
	err := nriplugin.Run(ctx, p, nriplugin.Options{
		Socket:     c.String("socket"),
		Name:       c.String("plugin-name"),
		Index:      c.String("plugin-index"),
		MinBackoff: 100 * time.Millisecond,
		MaxBackoff: 5 * time.Second,
	})
	if err != nil {
		return cli.Exit(fmt.Sprintf("lxcfs-nri: %v", err), 1)
	}
	log.Info("stopped")
	return nil
}
