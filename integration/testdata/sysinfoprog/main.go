// Command sysinfoprog calls sysinfo(2) the way programs in containers do,
// for the sysinfo integration tests (built static by them, run in a
// busybox container).
//
//	sysinfoprog once           print the figures of one call
//	sysinfoprog loop DIR       call in a loop until DIR/stop exists, writing
//	                           the count to DIR/count every 256 calls; any
//	                           error is written to DIR/error and ends it
//	sysinfoprog hammer N       call from N threads forever
//	sysinfoprog probe N        N calls one after the other; print the
//	                           slowest, how many calls got each totalram
//	                           (totalrams=BYTES:CALLS,...) and the last figures
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: sysinfoprog once|loop DIR|hammer N|probe N")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "once":
		var si unix.Sysinfo_t
		if err := unix.Sysinfo(&si); err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		print(&si)
	case "loop":
		loop(os.Args[2])
	case "hammer":
		n, _ := strconv.Atoi(os.Args[2])
		for i := 0; i < n; i++ {
			go func() {
				runtime.LockOSThread()
				var si unix.Sysinfo_t
				for {
					unix.Sysinfo(&si)
				}
			}()
		}
		fmt.Println("hammering")
		select {}
	case "probe":
		n, _ := strconv.Atoi(os.Args[2])
		var slowest time.Duration
		var si unix.Sysinfo_t
		seen := map[uint64]int{}
		for i := 0; i < n; i++ {
			start := time.Now()
			if err := unix.Sysinfo(&si); err != nil {
				fmt.Println("error", err)
				os.Exit(1)
			}
			slowest = max(slowest, time.Since(start))
			seen[uint64(si.Totalram)*uint64(si.Unit)]++
		}
		fmt.Printf("slowest_ms=%d\n", slowest.Milliseconds())
		var counts []string
		for v, k := range seen {
			counts = append(counts, fmt.Sprintf("%d:%d", v, k))
		}
		sort.Strings(counts)
		fmt.Printf("totalrams=%s\n", strings.Join(counts, ","))
		print(&si)
	}
}

func print(si *unix.Sysinfo_t) {
	fmt.Printf("totalram=%d\nfreeram=%d\nsharedram=%d\nbufferram=%d\ntotalswap=%d\nfreeswap=%d\nuptime=%d\nprocs=%d\nunit=%d\nload1=%d\n",
		uint64(si.Totalram)*uint64(si.Unit), uint64(si.Freeram)*uint64(si.Unit), uint64(si.Sharedram)*uint64(si.Unit),
		uint64(si.Bufferram)*uint64(si.Unit), uint64(si.Totalswap)*uint64(si.Unit), uint64(si.Freeswap)*uint64(si.Unit),
		si.Uptime, si.Procs, si.Unit, si.Loads[0])
}

func loop(dir string) {
	var si unix.Sysinfo_t
	var calls, other uint64
	for {
		if err := unix.Sysinfo(&si); err != nil {
			os.WriteFile(filepath.Join(dir, "error"), []byte(err.Error()), 0o644)
			os.Exit(1)
		}
		calls++
		if uint64(si.Totalram)*uint64(si.Unit) != 64<<20 {
			other++
		}
		if calls%256 == 0 {
			tmp := filepath.Join(dir, "count.tmp")
			os.WriteFile(tmp, []byte(strconv.FormatUint(calls, 10)), 0o644)
			os.Rename(tmp, filepath.Join(dir, "count"))
			if _, err := os.Stat(filepath.Join(dir, "stop")); err == nil {
				break
			}
		}
	}
	fmt.Printf("calls=%d\nnot_container=%d\n", calls, other)
	print(&si)
}
