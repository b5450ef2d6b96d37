// Command floorhook is the smallest OCI hook a Go program can be: it reads
// the state runc writes to its stdin and exits. scripts/hook-latency.sh
// runs it, built static like lxcfs-hook, beside lxcfs-hook, so what a Go
// runtime's start costs a container start is measured rather than assumed:
// lxcfs-hook's target is what it adds beyond this floor.
package main

import "os"

func main() {
	// Read to EOF as a real hook does: runc writes the state into a pipe
	// and a hook that exits first could make that write fail.
	var buf [4096]byte
	for {
		if n, err := os.Stdin.Read(buf[:]); n == 0 || err != nil {
			return
		}
	}
}
