package hookrun

import (
	"fmt"
	"io"
	"log/slog"
	"log/syslog"
	"strings"

	"github.com/coreos/go-systemd/v22/journal"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/hookcmd"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/version"
)

// newLogger logs to stderr (shown by runtimes when the hook fails) and to a
// persistent sink (kept when it succeeds): the log file, else the journal,
// else syslog.
func newLogger(file, level string, stderr io.Writer) (*slog.Logger, func(), error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	handlers := []slog.Handler{slog.NewTextHandler(stderr, opts)}
	closer := func() {}
	if file != "-" && file != "" {
		sink, c, err := openSink(file)
		if err != nil {
			fmt.Fprintf(stderr, "lxcfs-hook: %v; logging to stderr only\n", err)
		} else {
			handlers = append(handlers, slog.NewTextHandler(sink, opts))
			closer = c
		}
	}
	// The version on every line tells, after an upgrade, which build each
	// container start ran.
	return slog.New(slog.NewMultiHandler(handlers...)).With("hook", "lxcfs-hook", "version", version.String()), closer, nil
}

// WriteLines writes log lines made elsewhere (a run the daemon made for
// the hook) where the hook's own would go: stderr, and the persistent sink
// file names (else the journal, else syslog), one record per write.
func WriteLines(file, lines string, stderr io.Writer) {
	io.WriteString(stderr, lines)
	if file == "-" || file == "" || lines == "" {
		return
	}
	sink, closeSink, err := openSink(file)
	if err != nil {
		fmt.Fprintf(stderr, "lxcfs-hook: %v; logged to stderr only\n", err)
		return
	}
	defer closeSink()
	hookcmd.WriteRecords(sink, lines)
}

func openSink(file string) (io.Writer, func(), error) {
	f, ferr := hookcmd.OpenLogFile(file)
	if ferr == nil {
		return f, func() { f.Close() }, nil
	}
	if journal.Enabled() {
		return journalWriter{}, func() {}, nil
	}
	w, err := syslog.New(syslog.LOG_DAEMON|syslog.LOG_INFO, "lxcfs-hook")
	if err == nil {
		return w, func() { w.Close() }, nil
	}
	return nil, nil, fmt.Errorf("open log file: %w; no journal; syslog: %v", ferr, err)
}

// journalWriter sends each record (one Write per record from slog's text
// handler) as one journal entry, with the priority taken from its level.
type journalWriter struct{}

func (journalWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSuffix(string(p), "\n")
	pri := journal.PriInfo
	switch {
	case strings.Contains(msg, "level=ERROR"):
		pri = journal.PriErr
	case strings.Contains(msg, "level=WARN"):
		pri = journal.PriWarning
	case strings.Contains(msg, "level=DEBUG"):
		pri = journal.PriDebug
	}
	if err := journal.Send(msg, pri, map[string]string{"SYSLOG_IDENTIFIER": "lxcfs-hook"}); err != nil {
		return 0, err
	}
	return len(p), nil
}
