package fusefs

import (
	"sync"

	"bazil.org/fuse"
)

// JournalSlots is how many requests a worker serving with workers reading
// goroutines can hold unanswered at once, the journal's slots per bank:
// one per reader, and a reader held in a size store past storeWait keeps
// its OPEN unanswered while another reader takes its place (maxStuck at
// most). A render past FS.Timeout is answered by the watchdog, so its
// reader holds nothing.
func JournalSlots(workers int) int { return max(workers, 1) + maxStuck }

var unjournaledOnce sync.Once

// next returns the next request, read into a journal slot when there is a
// journal (FS.Journal): the slot is cleared once the request was answered.
func (s *server) next() (fuse.Request, error) {
	if buf, done, ok := s.journal.Slot(); ok {
		return s.conn.ReadRequestInto(buf, done)
	}
	if s.journal != nil {
		unjournaledOnce.Do(func() {
			s.fs.log.Warn("journal: every slot taken; reading without it (a request read so is lost if this worker dies holding it)")
		})
	}
	return s.conn.ReadRequest()
}

// replayLeftovers answers the requests dead workers read and left
// unanswered (FS.Leftovers), each through the normal dispatch, under its
// original unique ID, in a goroutine of its own: one may be a read of a
// wedged file, which must not hold up the rest. The slot is cleared after
// the answer was written.
func (s *server) replayLeftovers() {
	if s.leftovers == nil {
		return
	}
	for batch := range s.leftovers {
		var wg sync.WaitGroup
		for _, e := range batch {
			req, err := s.conn.ParseRequest(e.Raw, func() { s.journal.Done(e) })
			if err != nil {
				s.fs.log.Warn("journal: a request a dead worker left cannot be parsed; its reader is not answered", "err", err)
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.handle(req)
			}()
		}
		wg.Wait()
		if len(batch) > 0 {
			s.fs.log.Info("journal: answered the requests a dead worker left", "requests", len(batch))
		}
	}
}
