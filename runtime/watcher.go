package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/client_golang/prometheus"
)

// WatcherOptions configure a Watcher.
type WatcherOptions struct {
	// Path is the config file.
	Path string
	// Debounce is how long the directory must be quiet before Reload is
	// called (default 250ms).
	Debounce time.Duration
	// CheckInterval, if positive, calls Reload that often whatever fsnotify
	// said: a fallback for what it cannot see (files outside the config's
	// directory, network filesystems, a watch lost in a race). Reload must
	// therefore be cheap when nothing changed (Controller.LoadFile with
	// force false only reads and hashes).
	CheckInterval time.Duration
	// Files returns the files whose changes matter (Controller.WatchedFiles);
	// events about other names in the directory are ignored. nil: every
	// event in the directory matters.
	Files func() []string
	// Reload re-reads the config.
	Reload func()
	Logger *slog.Logger
	// Registerer, if set, gets sluice_config_watcher_events_total.
	Registerer prometheus.Registerer
}

// Watcher calls Reload when the config file may have changed.
//
// It watches the file's directory, not the file: editors replace files by
// writing a new one and renaming it over the old, and Kubernetes updates a
// mounted ConfigMap by swapping the "..data" symlink; a watch on the file
// itself would miss both. Of the events in the directory, only those about
// the config, the files it uses, or a symlink on the way to one of them
// count: a log file written next to the config must not trigger reloads.
//
// It also watches the directory's parent, to notice the directory itself
// being removed or replaced (mv cfg cfg.old; mkdir cfg): it then watches
// the new directory and reloads. Events are debounced, and Reload itself
// skips unchanged content.
type Watcher struct {
	o      WatcherOptions
	fw     *fsnotify.Watcher
	dir    string // absolute
	parent string // absolute; "" when dir is the root
	// dirWatched is false while the directory is gone.
	dirWatched bool
	events     *prometheus.CounterVec
}

// NewWatcher starts watching the directory of o.Path; changes are seen from
// the moment it returns. Run delivers them; Run must be called to release
// the watch.
func NewWatcher(o WatcherOptions) (*Watcher, error) {
	if o.Debounce <= 0 {
		o.Debounce = 250 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	dir, err := filepath.Abs(filepath.Dir(o.Path))
	if err != nil {
		return nil, fmt.Errorf("config watcher: %w", err)
	}
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("config watcher: %w", err)
	}
	if err := fw.Add(dir); err != nil {
		fw.Close()
		return nil, fmt.Errorf("config watcher: watching %s: %w", dir, err)
	}
	w := &Watcher{o: o, fw: fw, dir: dir, dirWatched: true, events: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_config_watcher_events_total",
		Help: "File system events seen by the config watcher (config directory and its parent), by whether they concern the config and a reload follows (relevant=\"true\") or were ignored.",
	}, []string{"relevant"})}
	w.events.WithLabelValues("true")
	w.events.WithLabelValues("false")
	if o.Registerer != nil {
		if err := o.Registerer.Register(w.events); err != nil {
			fw.Close()
			return nil, fmt.Errorf("config watcher: %w", err)
		}
	}
	if p := filepath.Dir(dir); p != dir {
		if err := fw.Add(p); err != nil {
			// Not fatal: the periodic check still sees a replaced directory.
			o.Logger.Warn("config watcher: cannot watch the config directory's parent; a replaced directory is noticed only by the periodic check", "dir", p, "err", err)
		} else {
			w.parent = p
		}
	}
	return w, nil
}

// Run calls Reload after each burst of relevant changes, and every
// CheckInterval, until ctx ends.
func (w *Watcher) Run(ctx context.Context) error {
	fw := w.fw
	defer fw.Close()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var tick <-chan time.Time
	if w.o.CheckInterval > 0 {
		t := time.NewTicker(w.o.CheckInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-fw.Events:
			if !ok {
				return nil
			}
			if ev.Op == fsnotify.Chmod {
				continue
			}
			relevant := w.handle(ev)
			w.events.WithLabelValues(fmt.Sprint(relevant)).Inc()
			if relevant {
				timer.Reset(w.o.Debounce)
			}
		case err, ok := <-fw.Errors:
			if !ok {
				return nil
			}
			w.o.Logger.Warn("config watcher error", "err", err)
		case <-timer.C:
			if ctx.Err() == nil {
				w.o.Reload()
			}
		case <-tick:
			if !w.dirWatched {
				w.rewatch()
			}
			if ctx.Err() == nil {
				w.o.Reload()
			}
		}
	}
}

// handle reacts to one event and reports whether a reload is due.
func (w *Watcher) handle(ev fsnotify.Event) bool {
	name := filepath.Clean(ev.Name)
	if name == w.dir {
		// The directory itself, seen from the parent or from its own
		// watch: removed, renamed away, or (re)created.
		if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
			// fsnotify drops the watch of a moved or removed directory;
			// forget ours so that the next one is added afresh.
			if err := w.fw.Remove(w.dir); err != nil && !errors.Is(err, fsnotify.ErrNonExistentWatch) {
				w.o.Logger.Debug("config watcher: removing the old watch", "err", err)
			}
			w.dirWatched = false
			w.o.Logger.Warn("config directory was removed or renamed; waiting for it to come back", "dir", w.dir)
		}
		w.rewatch()
		return true
	}
	if filepath.Dir(name) != w.dir {
		return false // another entry of the parent
	}
	return w.relevant(name)
}

// rewatch watches the directory again if it exists.
func (w *Watcher) rewatch() {
	if w.dirWatched {
		return
	}
	fi, err := os.Stat(w.dir)
	if err != nil || !fi.IsDir() {
		return
	}
	if err := w.fw.Add(w.dir); err != nil {
		w.o.Logger.Warn("config watcher: cannot watch the new config directory", "dir", w.dir, "err", err)
		return
	}
	w.dirWatched = true
	w.o.Logger.Info("config directory replaced; watching the new one", "dir", w.dir)
}

// relevant reports whether an event about name (in the watched directory)
// may change a file the config uses: name is one of them, a symlink on the
// way to one, or a directory containing one (a ConfigMap's ..TIMESTAMP).
func (w *Watcher) relevant(name string) bool {
	if w.o.Files == nil {
		return true
	}
	files := w.o.Files()
	if len(files) == 0 {
		files = []string{w.o.Path}
	}
	for _, f := range files {
		for _, p := range linkChain(f) {
			if p == name || strings.HasPrefix(p, name+string(filepath.Separator)) {
				return true
			}
		}
	}
	return false
}

// linkChain returns the absolute paths met while resolving p: p itself,
// every symlink on the way, and each path it resolves to, up to the final
// one. A ConfigMap file DIR/f gives DIR/f, DIR/..data/f, DIR/..data and
// DIR/..TIMESTAMP/f.
func linkChain(p string) []string {
	p, err := filepath.Abs(p)
	if err != nil {
		return nil
	}
	out := []string{p}
	for hops := 0; hops < 40; hops++ {
		next, link, ok := resolveFirstLink(p)
		if !ok {
			return out
		}
		out = append(out, link, next)
		p = next
	}
	return out
}

// resolveFirstLink replaces the first symlink among p's components with its
// target, returning the new path and the symlink's path.
func resolveFirstLink(p string) (string, string, bool) {
	parts := strings.Split(p, string(filepath.Separator))
	cur := string(filepath.Separator)
	for i, part := range parts {
		if part == "" {
			continue
		}
		cur = filepath.Join(cur, part)
		fi, err := os.Lstat(cur)
		if err != nil {
			return "", "", false
		}
		if fi.Mode()&os.ModeSymlink == 0 {
			continue
		}
		target, err := os.Readlink(cur)
		if err != nil {
			return "", "", false
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(filepath.Dir(cur), target)
		}
		rest := filepath.Join(parts[i+1:]...)
		return filepath.Join(target, rest), cur, true
	}
	return "", "", false
}
