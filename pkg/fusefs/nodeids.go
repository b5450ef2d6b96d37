package fusefs

// NodeTable gives every file the daemon serves, or ever served, its node ID
// (also its inode number). The kernel keeps node IDs for as long as a file
// is looked up or bind-mounted, across upgrades, so an ID must mean the same
// file to every release: a container whose /proc/meminfo is bound to node 6
// must still read meminfo after `lxcfs-fused upgrade`.
//
// IDs follow the order of this table: the root is 1, then each entry in
// turn takes the next IDs, first for those of its directories that no
// earlier entry made, then for itself. So the table is APPEND ONLY: add a
// new file as one line at the end; never reorder, rename or remove a line
// (a file no longer served keeps its line and ID, unused). TestNodeTable
// pins every ID given so far.
//
// The first entries reproduce the IDs that releases before this table gave
// on hosts with PSI (sorted paths).
var NodeTable = []string{
	"proc/cpuinfo",
	"proc/diskstats",
	"proc/loadavg",
	"proc/meminfo",
	"proc/pressure/cpu",
	"proc/pressure/io",
	"proc/pressure/memory",
	"proc/stat",
	"proc/swaps",
	"proc/uptime",
	"sys/devices/system/cpu/online",
	"proc/vmstat",
	"sys/devices/system/cpu/possible",
	"sys/devices/system/cpu/present",
	"sys/devices/system/cpu/offline",
}
