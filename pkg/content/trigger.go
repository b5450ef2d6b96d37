package content

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Triggerable implements fusefs.Triggerer: the pressure files take PSI
// triggers, as the kernel's own do.
func (f *Files) Triggerable(name string) bool {
	return strings.HasPrefix(name, pressurePrefix)
}

// Trigger implements fusefs.Triggerer: it opens the pressure file behind
// name of container who's cgroup (the host's for 0) and writes spec, a PSI
// trigger such as "some 150000 1000000", to it. The kernel ties the trigger
// to the returned file, which then polls POLLPRI when it fires.
//
// The daemon opens the file as root, so the kernel takes every trigger as a
// privileged one; a writer without CAP_SYS_RESOURCE (pid's effective
// capabilities) is held to the kernel's rule for unprivileged triggers
// instead: a window that is a multiple of 2 s. A container that cannot be
// found gets an error, never the host's file: a trigger there would fire for
// pressure the container is not in.
func (f *Files) Trigger(name string, who uint32, pid int, spec []byte) (*os.File, error) {
	res, ok := strings.CutPrefix(name, pressurePrefix)
	if !ok {
		return nil, fmt.Errorf("%s takes no trigger: %w", name, syscall.EINVAL)
	}
	if !TriggerAllowed(spec, f.hasSysResource(pid)) {
		return nil, fmt.Errorf("trigger %q: an unprivileged trigger's window must be a multiple of 2 s: %w", spec, syscall.EINVAL)
	}
	var file *os.File
	var err error
	if who == 0 {
		file, err = os.OpenFile(filepath.Join(f.ProcDir, "pressure", filepath.Base(res)), os.O_RDWR, 0)
	} else {
		c, lerr := f.Callers.Lookup(who)
		if lerr != nil {
			return nil, fmt.Errorf("trigger on %s: container %d: %w", name, who, syscall.ESRCH)
		}
		file, err = f.group(c).OpenPressure(res)
	}
	if err != nil {
		return nil, err
	}
	if _, err := file.Write(spec); err != nil {
		file.Close()
		return nil, fmt.Errorf("write trigger %q: %w", spec, err)
	}
	return file, nil
}

// unprivWindow is the kernel's granularity for unprivileged PSI trigger
// windows, in microseconds.
const unprivWindow = 2_000_000

// TriggerAllowed reports whether a writer may register spec: a privileged
// one always (the kernel checks the rest), another only with a window that
// is a multiple of 2 s. A spec that does not parse is left to the kernel,
// which refuses it.
func TriggerAllowed(spec []byte, privileged bool) bool {
	if privileged {
		return true
	}
	fields := strings.Fields(string(bytes.TrimRight(spec, "\x00")))
	if len(fields) != 3 {
		return true
	}
	window, err := strconv.ParseUint(fields[2], 10, 32)
	return err != nil || window%unprivWindow == 0
}

// capSysResource is CAP_SYS_RESOURCE's bit.
const capSysResource = 24

// hasSysResource reports whether pid has CAP_SYS_RESOURCE in its effective
// set, as the kernel asks of a pressure file's opener; false when unknown.
func (f *Files) hasSysResource(pid int) bool {
	if pid <= 0 {
		return false
	}
	st, err := os.Open(filepath.Join(f.ProcDir, strconv.Itoa(pid), "status"))
	if err != nil {
		return false
	}
	defer st.Close()
	sc := bufio.NewScanner(st)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && caps&(1<<capSysResource) != 0
		}
	}
	return false
}
