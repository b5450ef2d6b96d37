package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/configure"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/edit"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/hookrun"
)

func configureCommand() *cli.Command {
	dryRun := &cli.BoolFlag{Name: "dry-run", Usage: "print the change as a diff and write nothing"}
	remove := &cli.BoolFlag{Name: "remove", Usage: "undo: take out what this command adds"}
	name := &cli.StringFlag{Name: "runtime-name", Value: configure.DefaultRuntimeName, Usage: "name of the runtime (docker run --runtime NAME; a RuntimeClass's handler)"}
	wrapperPath := &cli.StringFlag{Name: "runtime-path", Usage: "the runtime wrapper binary (default: lxcfs-runc beside this binary)"}
	return &cli.Command{
		Name:  "configure",
		Usage: "register lxcfs with a container engine: docker, containerd, podman or crio",
		Description: `Edits an engine's configuration so its containers get the views, keeping
everything else in the file. A changed file is first copied to FILE.bak and
then replaced atomically; running a command twice changes nothing. --dry-run
prints the change as a diff instead. --remove undoes the command.`,
		Subcommands: []*cli.Command{
			{
				Name:  "docker",
				Usage: "add the runtime wrapper to Docker's daemon.json (\"runtimes\")",
				Description: `Adds "runtimes": {"lxcfs": {"path": "/usr/local/bin/lxcfs-runc"}} to
daemon.json (created when missing). Then reload dockerd (systemctl reload
docker, or SIGHUP) and run containers with --runtime lxcfs, or pass
--set-as-default to make it Docker's default runtime ("default-runtime").
The wrapper serves every container it creates unless it is started with
-e LXCFS_ENABLED=false; see "lxcfs-hook runtime --help" for its modes.`,
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "config", Value: "/etc/docker/daemon.json", Usage: "Docker's daemon.json"},
					&cli.BoolFlag{Name: "set-as-default", Usage: "also make it the default runtime, for every container"},
					name, wrapperPath, dryRun, remove,
				},
				Action: func(c *cli.Context) error {
					path, err := runtimePath(c)
					if err != nil {
						return err
					}
					opts := configure.DockerOptions{Name: c.String("runtime-name"), Path: path, SetDefault: c.Bool("set-as-default"), Remove: c.Bool("remove")}
					next := "reload dockerd to apply it: systemctl reload docker (or kill -HUP the dockerd pid)"
					return editFile(c, c.String("config"), func(in []byte) ([]byte, bool, error) { return configure.Docker(in, opts) }, next)
				},
			},
			{
				Name:  "containerd",
				Usage: "add the runtime wrapper to containerd's config.toml (CRI runtime with BinaryName)",
				Description: `Appends a CRI runtime to config.toml (created when missing), in the plugin
section of the file's config version (version = 2 for containerd 1.x):
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.lxcfs]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.lxcfs.options]
      BinaryName = "/usr/local/bin/lxcfs-runc"
between "# BEGIN/END lxcfs-oci" comments, so comments and layout elsewhere
are kept and --remove takes out exactly that block. SystemdCgroup = true is
copied from the default runtime when it has it. Restart containerd to apply
it (systemctl restart containerd); Kubernetes pods then use it through a
RuntimeClass with handler lxcfs, and ctr through --runc-binary.`,
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "config", Value: "/etc/containerd/config.toml", Usage: "containerd's config.toml"},
					name, wrapperPath, dryRun, remove,
				},
				Action: func(c *cli.Context) error {
					path, err := runtimePath(c)
					if err != nil {
						return err
					}
					opts := configure.ContainerdOptions{Name: c.String("runtime-name"), BinaryName: path, Remove: c.Bool("remove")}
					next := "restart containerd to apply it: systemctl restart containerd"
					return editFile(c, c.String("config"), func(in []byte) ([]byte, bool, error) { return configure.Containerd(in, opts) }, next)
				},
			},
			hooksDirCommand("podman"),
			hooksDirCommand("crio"),
		},
	}
}

func hooksDirCommand(engine string) *cli.Command {
	return &cli.Command{
		Name:  engine,
		Usage: "install the hooks.d file that makes " + engine + " run the hook",
		Description: `Writes HOOKS-DIR/` + configure.HooksFileName + `: the hook runs for containers with the
annotation io.lxcfs.enabled=true (or io.kubernetes.lxcfs.enabled=true), or,
with --always, for every container unless annotated io.lxcfs.enabled=false.
podman and CRI-O read the file for each new container: nothing to restart.
The directory must be one the engine reads (podman --hooks-dir, hooks_dir in
containers.conf or crio.conf); the default is the packaged one both read.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "hooks-dir", Value: configure.DefaultHooksDir, Usage: "hooks directory"},
			&cli.StringFlag{Name: "hook-path", Usage: "absolute path of lxcfs-hook (default: this binary)"},
			&cli.BoolFlag{Name: "always", Usage: "every container, unless it opts out"},
			&cli.BoolFlag{Name: "dry-run", Usage: "print the change as a diff and write nothing"},
			&cli.BoolFlag{Name: "remove", Usage: "delete the file"},
		},
		Action: func(c *cli.Context) error {
			file := filepath.Join(c.String("hooks-dir"), configure.HooksFileName)
			if c.Bool("remove") {
				return removeFile(c, file)
			}
			hookPath := c.String("hook-path")
			if hookPath == "" {
				exe, err := hookrun.HookBinary()
				if err != nil {
					return cli.Exit(fmt.Sprintf("lxcfs-hook configure %s: find this binary's path: %v; pass --hook-path", engine, err), 1)
				}
				hookPath = exe
			}
			want, err := configure.HooksFile(hookPath, c.Bool("always"))
			if err != nil {
				return cli.Exit(fmt.Sprintf("lxcfs-hook configure %s: %v", engine, err), 1)
			}
			next := engine + " reads it when it creates the next container; try: " + tryCommand(engine)
			return editFile(c, file, func([]byte) ([]byte, bool, error) { return want, true, nil }, next)
		},
	}
}

func tryCommand(engine string) string {
	if engine == "podman" {
		return "podman run --rm --annotation io.lxcfs.enabled=true -m 64m IMAGE grep MemTotal /proc/meminfo"
	}
	return "a pod annotated io.lxcfs.enabled: \"true\" (CRI-O passes pod annotations to the hook)"
}

// runtimePath is --runtime-path, else the lxcfs-runc beside this binary,
// where make install puts it.
func runtimePath(c *cli.Context) (string, error) {
	if p := c.String("runtime-path"); p != "" || c.Bool("remove") {
		if p != "" && !filepath.IsAbs(p) {
			return "", cli.Exit(fmt.Sprintf("--runtime-path %q is not absolute: engines run the runtime by absolute path", p), 2)
		}
		return p, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return "", cli.Exit(fmt.Sprintf("find this binary's path: %v; pass --runtime-path", err), 1)
	}
	p := filepath.Join(filepath.Dir(exe), "lxcfs-runc")
	if _, err := os.Stat(p); err != nil && !c.Bool("dry-run") {
		return "", cli.Exit(fmt.Sprintf("%s: %v: install it (make install puts it beside lxcfs-hook) or pass --runtime-path", p, err), 1)
	}
	return p, nil
}

// editFile applies change to path's contents (empty when it does not exist)
// and, unless --dry-run, backs the old file up to path.bak and replaces it
// atomically, keeping its mode.
func editFile(c *cli.Context, path string, change func([]byte) ([]byte, bool, error), next string) error {
	out := c.App.Writer
	old, err := os.ReadFile(path)
	existed := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return cli.Exit(fmt.Sprintf("read %s: %v", path, err), 1)
	}
	mode := fs.FileMode(0o644)
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm()
	}
	updated, changed, err := change(old)
	if err != nil {
		return cli.Exit(fmt.Sprintf("%s: %v", path, err), 1)
	}
	if !changed || (existed && bytes.Equal(old, updated)) {
		fmt.Fprintf(out, "%s is already configured; nothing to do\n", path)
		return nil
	}
	if c.Bool("dry-run") {
		from := path
		if !existed {
			from = "/dev/null"
		}
		fmt.Fprint(out, configure.Diff(from, path, old, updated))
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return cli.Exit(fmt.Sprintf("create %s: %v", filepath.Dir(path), err), 1)
	}
	if existed {
		if err := edit.WriteAtomic(path+".bak", old, mode); err != nil {
			return cli.Exit(fmt.Sprintf("back up %s: %v; nothing changed", path, err), 1)
		}
	}
	if err := edit.WriteAtomic(path, updated, mode); err != nil {
		return cli.Exit(err.Error(), 1)
	}
	if existed {
		fmt.Fprintf(out, "updated %s (the previous file is %s.bak)\n", path, path)
	} else {
		fmt.Fprintf(out, "created %s\n", path)
	}
	if next != "" {
		fmt.Fprintln(out, next)
	}
	return nil
}

func removeFile(c *cli.Context, path string) error {
	out := c.App.Writer
	old, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(out, "%s does not exist; nothing to do\n", path)
		return nil
	}
	if err != nil {
		return cli.Exit(fmt.Sprintf("read %s: %v", path, err), 1)
	}
	if c.Bool("dry-run") {
		fmt.Fprint(out, configure.Diff(path, "/dev/null", old, nil))
		return nil
	}
	if err := os.Remove(path); err != nil {
		return cli.Exit(fmt.Sprintf("remove %s: %v", path, err), 1)
	}
	fmt.Fprintf(out, "removed %s\n", path)
	return nil
}
