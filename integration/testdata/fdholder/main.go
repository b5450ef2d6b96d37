// Command fdholder runs inside test containers (it is static, so it needs
// nothing from the rootfs) and keeps files open the way long-lived readers
// do. Rounds are started by the test creating /tmp/cmd-N (N = 1, 2, ...);
// results go to stdout, one line per event.
//
//	fdholder hold FILE     a thread opens FILE (its id is printed, as the
//	                       container sees it) and exits once /tmp/thread-exit
//	                       exists; then each round reads
//	                       the open file at offset 0 100 times and prints how
//	                       many reads showed each MemTotal
//	fdholder open N FILE   each round opens FILE N more times and keeps them
//	                       all open, printing the MemTotal the first one shows
//	fdholder mmap N KB FILE  waits for /tmp/go, then N times opens FILE, maps
//	                       it privately (through the page cache) and counts
//	                       the maps whose MemTotal is not KB kB
//	fdholder flood FILE... raises its soft descriptor limit to the hard one,
//	                       opens the files in turn until no descriptor is
//	                       left, prints how many, and exits at round 1
package main

import (
	"fmt"
	"os"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

var memTotal = regexp.MustCompile(`(?m)^MemTotal: +(\d+) kB$`)

// The main goroutine keeps the main thread, so the opening goroutine runs
// on another thread, one that can exit.
func init() { runtime.LockOSThread() }

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	switch {
	case len(args) == 2 && args[0] == "hold":
		return hold(args[1])
	case len(args) == 4 && args[0] == "mmap":
		n, err := strconv.Atoi(args[1])
		if err != nil {
			return err
		}
		return mmapLoop(n, args[2], args[3])
	case len(args) >= 2 && args[0] == "flood":
		return flood(args[1:])
	case len(args) == 3 && args[0] == "open":
		n, err := strconv.Atoi(args[1])
		if err != nil {
			return err
		}
		return open(n, args[2])
	}
	return fmt.Errorf("usage: fdholder hold FILE | fdholder open N FILE")
}

func hold(path string) error {
	type opened struct {
		fd, tid int
		err     error
	}
	ch := make(chan opened)
	go func() {
		// Locked and never unlocked: the thread exits with the goroutine.
		runtime.LockOSThread()
		fd, err := syscall.Open(path, syscall.O_RDONLY, 0)
		ch <- opened{fd, syscall.Gettid(), err}
		waitFile("/tmp/thread-exit")
	}()
	o := <-ch
	if o.err != nil {
		return o.err
	}
	fmt.Printf("opened tid=%d\n", o.tid)
	task := fmt.Sprintf("/proc/self/task/%d", o.tid)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if _, err := os.Stat(task); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("opening thread %d did not exit", o.tid)
		}
	}
	fmt.Println("thread exited")
	buf := make([]byte, 64<<10)
	for round := 1; ; round++ {
		waitCmd(round)
		seen := map[string]int{}
		for range 100 {
			n, err := syscall.Pread(o.fd, buf, 0)
			if err != nil {
				seen["error:"+err.Error()]++
				continue
			}
			if m := memTotal.FindSubmatch(buf[:n]); m != nil {
				seen[string(m[1])]++
			} else {
				seen["none"]++
			}
		}
		fmt.Printf("round=%d memtotal=%s\n", round, summary(seen))
	}
}

func open(n int, path string) error {
	var keep []*os.File
	buf := make([]byte, 64<<10)
	for round := 1; ; round++ {
		waitCmd(round)
		first := ""
		for i := range n {
			f, err := os.Open(path)
			if err != nil {
				return fmt.Errorf("open %s #%d: %w", path, len(keep), err)
			}
			keep = append(keep, f)
			if i == 0 {
				k, _ := f.ReadAt(buf, 0)
				if m := memTotal.FindSubmatch(buf[:k]); m != nil {
					first = string(m[1])
				}
			}
		}
		fmt.Printf("round=%d opened=%d memtotal=%s\n", round, len(keep), first)
	}
}

func mmapLoop(n int, want, path string) error {
	waitFile("/tmp/go")
	bad := 0
	for range n {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		st, err := f.Stat()
		if err != nil || st.Size() == 0 {
			f.Close()
			return fmt.Errorf("stat %s: size %v, %v", path, st.Size(), err)
		}
		b, err := syscall.Mmap(int(f.Fd()), 0, int(st.Size()), syscall.PROT_READ, syscall.MAP_PRIVATE)
		if err != nil {
			f.Close()
			return fmt.Errorf("mmap %s: %w", path, err)
		}
		if m := memTotal.FindSubmatch(b); m == nil || string(m[1]) != want {
			bad++
		}
		syscall.Munmap(b)
		f.Close()
	}
	fmt.Printf("DONE mmaps=%d bad=%d\n", n, bad)
	return nil
}

func flood(paths []string) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("raise the soft descriptor limit to %d: %w", lim.Max, err)
	}
	n := 0
	for ; ; n++ {
		fd, err := syscall.Open(paths[n%len(paths)], syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err == syscall.EMFILE || err == syscall.ENFILE {
			break
		}
		if err != nil {
			return fmt.Errorf("open #%d: %w", n, err)
		}
		_ = fd // kept open until the process exits
	}
	fmt.Printf("flooded=%d limit=%d\n", n, lim.Max)
	waitCmd(1)
	return nil
}

func waitCmd(round int) { waitFile(fmt.Sprintf("/tmp/cmd-%d", round)) }

func waitFile(path string) {
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// summary is "VALUE:COUNT,..." in value order.
func summary(seen map[string]int) string {
	var out []string
	for v, c := range seen {
		out = append(out, v+":"+strconv.Itoa(c))
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}
