package cgroup

import (
	"fmt"
	"path/filepath"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/view"
)

// v1BlkioFiles are the v1 (bytes, ios) recursive stat pairs, best first.
// The throttle files are kept by blk-throttle for every bio whatever the
// scheduler; the plain ones come from CFQ (gone since 5.0) and the bfq ones
// from BFQ, which only count while that scheduler drives the device.
var v1BlkioFiles = [...][2]string{
	{"blkio.throttle.io_service_bytes_recursive", "blkio.throttle.io_serviced_recursive"},
	{"blkio.io_service_bytes_recursive", "blkio.io_serviced_recursive"},
	{"blkio.bfq.io_service_bytes_recursive", "blkio.bfq.io_serviced_recursive"},
}

// IO returns the group's per-device I/O counters, sorted by device number:
// v2 io.stat, v1 the blkio recursive files (the first pair that names a
// device). An empty result means no I/O was charged to the group.
func (g *Group) IO() ([]view.IOStat, error) {
	c, err := g.need(ctrlBlkio)
	if err != nil {
		return nil, fmt.Errorf("io: %w", err)
	}
	if g.v2 {
		var st []view.IOStat
		err := c.read("io.stat", func(s string) error {
			var err error
			if st, err = parseIOStat(s); err != nil {
				return fmt.Errorf("parse %s: %w", filepath.Join(c.dir, "io.stat"), err)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		return st, nil
	}

	var firstErr error
	var empty []view.IOStat
	for _, pair := range v1BlkioFiles {
		counts := [2]map[devNum]blkioCounts{}
		var pairErr error
		for i, f := range pair {
			err := c.read(f, func(s string) error {
				var err error
				if counts[i], err = parseBlkioFile(s); err != nil {
					return fmt.Errorf("parse %s: %w", filepath.Join(c.dir, f), err)
				}
				return nil
			})
			if err != nil {
				pairErr = err
				break
			}
		}
		if pairErr != nil {
			if !isNotExist(pairErr) {
				return nil, pairErr
			}
			if firstErr == nil {
				firstErr = pairErr
			}
			continue
		}
		st := mergeBlkio(counts[0], counts[1])
		if len(st) > 0 {
			return st, nil
		}
		// Only "Total 0": an older scheduler's files may still know
		// more, but if none does, no I/O is the answer.
		if empty == nil {
			empty = st
		}
	}
	if empty != nil {
		return empty, nil
	}
	return nil, firstErr
}
