package view

import (
	"math"
	"testing"
	"time"
)

func TestContainerSysinfo(t *testing.T) {
	host := fixture(t, "meminfo-swap") // MemTotal 16314352 kB, SwapTotal 8388604 kB
	hostSI := Sysinfo{Uptime: 86400, Loads: [3]uint64{1 << 16, 2 << 16, 3 << 16}, TotalRAM: 16314352 << 10,
		FreeRAM: 1 << 30, SharedRAM: 5 << 20, BufferRAM: 7 << 20, TotalSwap: 8388604 << 10, FreeSwap: 1 << 30, Procs: 900}
	stat := MemStat{Shmem: 3 * miB}
	tests := []struct {
		name    string
		host    []byte
		m       Memory
		since   time.Duration
		load    LoadAvg
		hasLoad bool
		want    Sysinfo
	}{
		{
			name:  "64 MiB, no swap accounting, host load",
			host:  host,
			m:     Memory{Limit: 64 * miB, Usage: 10 * miB, Stat: stat},
			since: 1500 * time.Millisecond,
			want: Sysinfo{Uptime: 2, Loads: hostSI.Loads, TotalRAM: 64 * miB, FreeRAM: 54 * miB,
				SharedRAM: 3 * miB, Procs: 900},
		},
		{
			name:    "swap and the sampler's load",
			host:    host,
			m:       Memory{Limit: 1 * giB, Usage: 2 * giB, SwapAccounting: true, SwapLimit: 512 * miB, SwapUsage: 100 * miB},
			since:   10 * time.Second,
			load:    LoadAvg{Load1: 1.5, Load5: 0.25, Load15: 0, Total: 12},
			hasLoad: true,
			want: Sysinfo{Uptime: 10, Loads: [3]uint64{98304, 16384, 0}, TotalRAM: giB, FreeRAM: 0,
				TotalSwap: 512 * miB, FreeSwap: 412 * miB, Procs: 12},
		},
		{
			name:    "unlimited is the host's total; clamps",
			host:    host,
			m:       Memory{Limit: math.MaxUint64, Usage: 0, SwapAccounting: true, SwapLimit: math.MaxUint64},
			since:   -time.Second,
			load:    LoadAvg{Load1: -1, Total: 1 << 20},
			hasLoad: true,
			want: Sysinfo{Uptime: 0, TotalRAM: 16314352 << 10, FreeRAM: 16314352 << 10,
				TotalSwap: 8388604 << 10, FreeSwap: 8388604 << 10, Procs: 65535},
		},
		{
			name: "no host MemTotal: the host's answer",
			host: []byte("garbage\n"),
			m:    Memory{Limit: 64 * miB},
			want: hostSI,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ContainerSysinfo(hostSI, tt.host, tt.m, tt.since, tt.load, tt.hasLoad)
			if got != tt.want {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// TestSysinfoAgreesWithMeminfo: sysinfo's figures are meminfo's lines.
func TestSysinfoAgreesWithMeminfo(t *testing.T) {
	host := fixture(t, "meminfo-swap")
	m := Memory{Limit: 300 * miB, Usage: 123 * miB, Stat: MemStat{Shmem: 7 * miB}, SwapAccounting: true, SwapLimit: 50 * miB, SwapUsage: 20 * miB}
	si := ContainerSysinfo(Sysinfo{}, host, m, time.Second, LoadAvg{}, false)
	mi := AppendMeminfo(nil, host, m)
	for key, v := range map[string]uint64{"MemTotal": si.TotalRAM, "MemFree": si.FreeRAM, "Shmem": si.SharedRAM,
		"Buffers": si.BufferRAM, "SwapTotal": si.TotalSwap, "SwapFree": si.FreeSwap} {
		if kb, ok := meminfoValue(mi, key); !ok || kb<<10 != v {
			t.Errorf("%s: meminfo %d kB, sysinfo %d bytes", key, kb, v)
		}
	}
}
