package nriplugin

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/containerd/nri/pkg/api"
	"github.com/containerd/nri/pkg/stub"
)

// Plugin answers the runtime's CreateContainer requests.
type Plugin struct {
	Config Config
	Log    *slog.Logger
}

// CreateContainer adds the hook to a container that is served. It never
// fails the container: a decision that cannot be made leaves it as it is,
// and the hook itself starts the container with the host's files when the
// views are not served.
func (p *Plugin) CreateContainer(_ context.Context, pod *api.PodSandbox, ctr *api.Container) (*api.ContainerAdjustment, []*api.ContainerUpdate, error) {
	adj, reason := Adjust(p.Config, pod, ctr)
	log := p.Log.With("pod", pod.GetNamespace()+"/"+pod.GetName(), "container", ctr.GetName(), "id", ctr.GetId())
	if adj == nil {
		log.Debug("container not served", "reason", reason)
		return nil, nil, nil
	}
	log.Info("hook added", "reason", reason, "hook", p.Config.HookPath)
	return adj, nil, nil
}

// Options say how Run reaches the runtime.
type Options struct {
	// Socket is the runtime's NRI socket ("" for NRI's default).
	Socket string
	// Name and Index register the plugin; the index orders it among the
	// runtime's plugins.
	Name  string
	Index string
	// MinBackoff and MaxBackoff bound the wait between connection attempts.
	MinBackoff, MaxBackoff time.Duration
}

// Run registers the plugin with the runtime and keeps it registered: when
// the connection closes (the runtime restarted, or is not up yet) it tries
// again, waiting from MinBackoff doubling up to MaxBackoff, until ctx ends.
func Run(ctx context.Context, p *Plugin, o Options) error {
	if err := p.Config.Validate(); err != nil {
		return err
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = 100 * time.Millisecond
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = o.MinBackoff
	}
	wait := o.MinBackoff
	for {
		registered, err := runOnce(ctx, p, o)
		if ctx.Err() != nil {
			return nil
		}
		if registered {
			// A connection that worked once starts the backoff afresh:
			// the runtime restarting should be noticed quickly.
			wait = o.MinBackoff
			p.Log.Warn("connection to the runtime closed; registering again", "socket", o.Socket, "err", err)
		} else {
			p.Log.Warn("cannot register with the runtime; trying again", "socket", o.Socket, "in", wait, "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		if !registered {
			wait = min(2*wait, o.MaxBackoff)
		}
	}
}

// runOnce makes one stub, registers it and serves until the connection
// closes. A new stub each time keeps no state from a dead connection.
func runOnce(ctx context.Context, p *Plugin, o Options) (registered bool, err error) {
	opts := []stub.Option{stub.WithPluginName(o.Name), stub.WithPluginIdx(o.Index), stub.WithLogger(stubLogger{p.Log.With("from", "nri-stub")})}
	if o.Socket != "" {
		opts = append(opts, stub.WithSocketPath(o.Socket))
	}
	closed := make(chan struct{})
	var once sync.Once
	opts = append(opts, stub.WithOnClose(func() { once.Do(func() { close(closed) }) }))
	s, err := stub.New(p, opts...)
	if err != nil {
		return false, fmt.Errorf("create the NRI stub: %w", err)
	}
	if err := s.Start(ctx); err != nil {
		return false, err
	}
	p.Log.Info("registered with the runtime", "socket", o.Socket, "plugin", o.Index+"-"+o.Name, "runtime_nri", s.RuntimeNRIVersion())
	select {
	case <-closed:
		return true, nil
	case <-ctx.Done():
		s.Stop()
		return true, ctx.Err()
	}
}

// stubLogger sends the NRI stub's messages to the plugin's log, so an
// operator reads one format, at one level setting.
type stubLogger struct{ l *slog.Logger }

func (s stubLogger) Debugf(ctx context.Context, format string, args ...any) {
	s.l.DebugContext(ctx, fmt.Sprintf(format, args...))
}

func (s stubLogger) Infof(ctx context.Context, format string, args ...any) {
	s.l.InfoContext(ctx, fmt.Sprintf(format, args...))
}

func (s stubLogger) Warnf(ctx context.Context, format string, args ...any) {
	s.l.WarnContext(ctx, fmt.Sprintf(format, args...))
}

func (s stubLogger) Errorf(ctx context.Context, format string, args ...any) {
	s.l.ErrorContext(ctx, fmt.Sprintf(format, args...))
}
