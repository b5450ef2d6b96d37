package hookrun

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/hook"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/hookcmd"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/remount"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/version"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/wrapper"
)

// HookBinary is the lxcfs-hook that configs should run: the one beside
// this binary (lxcfs-hook-cli, lxcfs-runc, or lxcfs-hook itself), else
// lxcfs-hook-cli beside it, which runs create-runtime too, only slower to
// start.
func HookBinary() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	for _, name := range []string{"lxcfs-hook", hookcmd.CLIName} {
		p := filepath.Join(filepath.Dir(exe), name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p, nil
		}
	}
	return "", fmt.Errorf("neither lxcfs-hook nor %s is beside %s", hookcmd.CLIName, exe)
}

// RunWrapper prepares the bundle when args create a container and then
// replaces this process with the real runtime. It returns only on failure,
// with the exit code.
func RunWrapper(nameRuntime string, flags wrapper.Config, configFile string, args []string) int {
	if configFile == "" {
		configFile = wrapper.ConfigFile(os.Getenv)
	}
	var file wrapper.Config
	if configFile != "" {
		var err error
		if file, err = wrapper.LoadConfigFile(configFile); err != nil {
			// Guessing another runtime than the admin configured could
			// run containers under the wrong one: refuse, loudly.
			fmt.Fprintf(os.Stderr, "lxcfs-runc: %v\n", err)
			return 1
		}
	}
	c, err := wrapper.Resolve(flags, wrapper.FromEnv(os.Getenv), file, wrapper.Config{Runtime: nameRuntime, LXCFSRoot: hook.DefaultRoot})
	if err != nil {
		fmt.Fprintf(os.Stderr, "lxcfs-runc: configuration (flags, $%s, $%s, %s): %v\n", wrapper.EnvRuntime, wrapper.EnvMode, configFile, err)
		return 1
	}
	runtimePath, err := findRuntime(c.Runtime)
	if err != nil {
		fmt.Fprintf(os.Stderr, "lxcfs-runc: %v\n", err)
		return 1
	}
	if wrapper.AsksVersion(args) {
		return printVersions(runtimePath, c.Runtime, args)
	}
	if inv := wrapper.Parse(args); inv.Creates() {
		if err := prepareBundle(c, inv); err != nil {
			// prepareBundle logged it; only a fail-closed setup stops here.
			return 1
		}
	}
	argv := append([]string{c.Runtime}, args...)
	err = syscall.Exec(runtimePath, argv, os.Environ())
	fmt.Fprintf(os.Stderr, "lxcfs-runc: exec %s: %v\n", runtimePath, err)
	return 1
}

// printVersions runs the real runtime's version query, its output untouched
// (engines parse it: Docker's "docker info" shows runc's version and
// commit), then says which build of the wrapper runs in front of it. The
// added line holds no "version" word, since Docker's parser takes the last
// line holding one as the runtime's.
func printVersions(runtimePath, name string, args []string) int {
	cmd := exec.Command(runtimePath, args...)
	cmd.Args[0] = name
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		if cmd.ProcessState != nil {
			return cmd.ProcessState.ExitCode()
		}
		fmt.Fprintf(os.Stderr, "lxcfs-runc: run %s: %v\n", runtimePath, err)
		return 1
	}
	fmt.Printf("lxcfs-runc: lxcfs-oci %s in front of %s\n", version.String(), runtimePath)
	return 0
}

// findRuntime resolves the real runtime and refuses this binary, which
// would exec itself forever (a config naming lxcfs-runc, or a lxcfs-runc
// installed as "runc" ahead of the real one on $PATH).
func findRuntime(name string) (string, error) {
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("runtime %q: %w; install it or set \"runtime\" in %s (or $%s) to its path", name, err, wrapper.DefaultConfigFile, wrapper.EnvRuntime)
	}
	self, err := os.Executable()
	if err == nil {
		a, errA := os.Stat(p)
		b, errB := os.Stat(self)
		if errA == nil && errB == nil && os.SameFile(a, b) {
			return "", fmt.Errorf("runtime %q (%s) is this wrapper itself; set \"runtime\" in %s (or $%s) to the real runc or crun", name, p, wrapper.DefaultConfigFile, wrapper.EnvRuntime)
		}
	}
	return p, nil
}

// prepareBundle adds the hook to the bundle's config.json when the
// container is served. It fails only when the setup is fail-closed; any
// other problem is logged and the container starts without the views.
func prepareBundle(c wrapper.Config, inv wrapper.Invocation) error {
	start := time.Now()
	bundle := inv.Bundle
	if bundle == "" {
		bundle = "." // the runtime's own default
	}
	log, closeLog := wrapperLogger(c.LogFile, os.Stderr)
	defer closeLog()
	log = log.With("command", inv.Command, "bundle", bundle)
	failClosed := c.FailClosed
	fail := func(msg string, err error) error {
		if failClosed {
			log.Error(msg+": refusing to create the container (fail-closed)", "err", err)
			return err
		}
		log.Warn(msg+": the container starts without the views", "err", err)
		return nil
	}
	spec, err := hook.LoadConfig(bundle)
	if err != nil {
		return fail("cannot read the bundle's config", err)
	}
	var env []string
	if spec.Process != nil {
		env = spec.Process.Env
	}
	plan := wrapper.Decide(c, spec.Annotations, env)
	failClosed = failClosed || plan.Required
	if !plan.Inject {
		log.Info("container not served: no hook added", "reason", plan.Reason)
		return nil
	}
	hookPath := c.HookPath
	if hookPath == "" {
		if hookPath, err = HookBinary(); err != nil {
			return fail("cannot find this binary's path for the hook; set hookPath in the config", err)
		}
	}
	changed, err := hook.Inject(filepath.Join(bundle, "config.json"), hookPath, plan.HookArgs)
	if err != nil {
		return fail("cannot add the hook to config.json", err)
	}
	if plan.Sysinfo {
		addSysinfo(log, filepath.Join(bundle, "config.json"), c.StateDir)
	}
	log.Info("hook added", "reason", plan.Reason, "changed", changed, "took", time.Since(start).Round(time.Microsecond))
	return nil
}

// SysinfoSocket is lxcfs-fused's registration socket in its --state-dir.
func SysinfoSocket(stateDir string) string {
	if stateDir == "" {
		stateDir = remount.DefaultStateDir
	}
	return filepath.Join(stateDir, hook.SysinfoSocketName)
}

// addSysinfo sends the container's sysinfo calls to lxcfs-fused, when it
// listens: the runtime fails a container whose listener it cannot reach,
// so without one the container keeps the host's sysinfo, with a warning.
func addSysinfo(log *slog.Logger, configPath, stateDir string) {
	sock := SysinfoSocket(stateDir)
	if err := hook.SysinfoListening(sock); err != nil {
		log.Warn("sysinfo not answered for this container: lxcfs-fused is not listening (start it with --sysinfo, the default)", "socket", sock, "err", err)
		return
	}
	changed, reason, err := hook.InjectSysinfo(configPath, sock)
	if err != nil {
		log.Warn("sysinfo not answered for this container: cannot edit its seccomp profile", "err", err)
		return
	}
	log.Info("sysinfo", "changed", changed, "reason", reason, "socket", sock)
}

// wrapperLogger logs to the log file (or the journal or syslog, as the hook
// does) and only errors to stderr: `runc run` shares stderr with the
// container, and engines show a runtime's stderr only when it fails.
func wrapperLogger(file string, stderr io.Writer) (*slog.Logger, func()) {
	if file == "" {
		file = hookcmd.DefaultLogFile
	}
	handlers := []slog.Handler{slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelError})}
	closer := func() {}
	if file != "-" {
		if sink, c, err := openSink(file); err == nil {
			handlers = append(handlers, slog.NewTextHandler(sink, nil))
			closer = c
		}
	}
	return slog.New(slog.NewMultiHandler(handlers...)).With("hook", "lxcfs-runc", "version", version.String()), closer
}
