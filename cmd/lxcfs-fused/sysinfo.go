package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/lxcfs-oci/lxcfs-oci/internal/linux"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/content"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/sdnotify"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/supervise"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/sysinfo"
)

// sysinfoSocket is where runtimes register containers' seccomp listeners;
// lxcfs-hook writes the same path (STATE-DIR/sysinfo.sock) into configs.
func sysinfoSocket(stateDir string) string { return filepath.Join(stateDir, "sysinfo.sock") }

// sysinfoStorePrefix names the containers' notification fds in systemd's
// fd store: lxcfs-sysinfo-SLOT-PID-TICKS.
const sysinfoStorePrefix = "lxcfs-sysinfo"

// acquireSysinfo takes the listener over from the previous binary
// (upgrade), or opens it and takes back what systemd's fd store kept.
func acquireSysinfo(c *cli.Context, stored map[string]*os.File, log *slog.Logger) (*supervise.Sysinfo, error) {
	path := sysinfoSocket(c.String("state-dir"))
	e, err := supervise.SysinfoFromEnv(false)
	if err != nil {
		return nil, err
	}
	if e != nil && e.Listen != nil {
		return withFDStore(supervise.AdoptSysinfo(path, e, log))
	}
	if !c.Bool("sysinfo") {
		return nil, nil
	}
	s, err := supervise.ListenSysinfo(path, log)
	if err != nil {
		return nil, err
	}
	var slots *os.File
	for name, f := range stored {
		if name == slotsStoreName {
			slots = f
			continue
		}
		rest, ok := strings.CutPrefix(name, sysinfoStorePrefix+"-")
		if !ok {
			continue
		}
		parts := strings.Split(rest, "-")
		var n [3]uint64
		for i := 0; len(parts) == 3 && i < 3; i++ {
			n[i], err = strconv.ParseUint(parts[i], 10, 63)
		}
		if len(parts) != 3 || err != nil || n[0] >= sysinfo.MaxSlots {
			log.Warn("ignoring fd from the service manager", "name", name)
			f.Close()
			continue
		}
		s.AddHeld(supervise.Held{File: f, Slot: int(n[0]), InitPid: int(n[1]), StartTicks: n[2]})
	}
	if slots != nil {
		s.AdoptSlots(slots)
	}
	return withFDStore(s, nil)
}

// slotsStoreName names the running worker's slots in systemd's fd store.
const slotsStoreName = sysinfoStorePrefix + "-slots"

func storeName(h supervise.Held) string {
	return fmt.Sprintf("%s-%d-%d-%d", sysinfoStorePrefix, h.Slot, h.InitPid, h.StartTicks)
}

// withFDStore keeps each container's notification fd in systemd's fd
// store while it is held, so a restarted service takes them back.
func withFDStore(s *supervise.Sysinfo, err error) (*supervise.Sysinfo, error) {
	if s == nil || err != nil {
		return s, err
	}
	s.OnChange = func(h supervise.Held, added bool) {
		var err error
		if added {
			_, err = sdnotify.Store(storeName(h), h.File)
		} else {
			_, err = sdnotify.Remove(storeName(h))
		}
		if err != nil {
			s.Log.Warn("sysinfo: systemd fd store", "err", err)
		}
	}
	s.OnSlots = func(f *os.File) {
		sdnotify.Remove(slotsStoreName) // the previous worker's
		if _, err := sdnotify.Store(slotsStoreName, f); err != nil {
			s.Log.Warn("sysinfo: systemd fd store", "err", err)
		}
	}
	return s, nil
}

// serveSysinfo answers the containers the supervisor passed, and those it
// passes later over the control socket. It returns the server, nil when
// the daemon runs without the listener.
func serveSysinfo(c *cli.Context, files *content.Files, log *slog.Logger) (*sysinfo.Server, error) {
	e, err := supervise.SysinfoFromEnv(true)
	if err != nil || e == nil {
		return nil, err
	}
	srv := &sysinfo.Server{Figures: files.Sysinfo, Timeout: c.Duration("sysinfo-timeout"), Log: log}
	withSysinfoStall(srv, files)
	if e.Slots != nil {
		if srv.Slots, err = sysinfo.OpenSlots(e.Slots); err != nil {
			log.Warn("sysinfo: no slots; a call in progress when this worker dies waits until its caller is signalled", "err", err)
		}
	}
	for _, h := range e.Held {
		go srv.Serve(sysinfo.Listener{File: h.File, Slot: h.Slot, InitPid: h.InitPid, StartTicks: h.StartTicks})
	}
	if e.Ctl != nil {
		go receiveContainers(e.Ctl, srv, log)
	}
	return srv, nil
}

// receiveContainers serves each container the supervisor registers.
func receiveContainers(ctl *os.File, srv *sysinfo.Server, log *slog.Logger) {
	// The loop reads the raw descriptor: ctl must stay reachable until it
	// ends, or its finalizer closes the socket under it (the supervisor's
	// next registration then fails with EPIPE).
	defer runtime.KeepAlive(ctl)
	fd := int(ctl.Fd())
	buf := make([]byte, 128)
	oob := make([]byte, unix.CmsgSpace(4))
	for {
		n, oobn, err := linux.Recvmsg(fd, buf, oob, unix.MSG_CMSG_CLOEXEC)
		if err != nil || n == 0 {
			return // the supervisor closed it: this worker is being replaced
		}
		fds := linux.Rights(oob[:oobn])
		var slot, pid int
		var ticks uint64
		_, perr := fmt.Sscanf(string(buf[:n]), "%d:%d:%d", &slot, &pid, &ticks)
		if perr != nil || len(fds) != 1 {
			log.Warn("sysinfo: bad message from the supervisor", "msg", string(buf[:n]), "fds", len(fds))
			for _, f := range fds {
				unix.Close(f)
			}
			continue
		}
		unix.SetNonblock(fds[0], true)
		go srv.Serve(sysinfo.Listener{File: os.NewFile(uintptr(fds[0]), "seccomp-notify"), Slot: slot, InitPid: pid, StartTicks: ticks})
	}
}

// drainSysinfo lets calls in progress finish before the worker exits.
func drainSysinfo(srv *sysinfo.Server, timeout time.Duration) {
	if srv != nil {
		srv.Drain(timeout + 100*time.Millisecond)
	}
}
