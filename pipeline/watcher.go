package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Watcher calls Reload when the config file may have changed. It watches the
// file's directory, not the file: editors replace files by writing a new one
// and renaming it over the old, and Kubernetes updates a mounted ConfigMap
// by swapping the "..data" symlink; a watch on the file itself would miss
// both. Events are debounced, and Reload itself skips unchanged content.
type Watcher struct {
	fw       *fsnotify.Watcher
	debounce time.Duration
	reload   func()
	logger   *slog.Logger
}

// NewWatcher starts watching the directory of path; changes are seen from
// the moment it returns. Run delivers them; Run must be called to release
// the watch.
func NewWatcher(path string, debounce time.Duration, reload func(), logger *slog.Logger) (*Watcher, error) {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("config watcher: %w", err)
	}
	dir := filepath.Dir(path)
	if err := fw.Add(dir); err != nil {
		fw.Close()
		return nil, fmt.Errorf("config watcher: watching %s: %w", dir, err)
	}
	if debounce <= 0 {
		debounce = 250 * time.Millisecond
	}
	return &Watcher{fw: fw, debounce: debounce, reload: reload, logger: logger}, nil
}

// Run calls reload after each burst of changes, until ctx ends.
func (w *Watcher) Run(ctx context.Context) error {
	fw, debounce := w.fw, w.debounce
	defer fw.Close()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
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
			timer.Reset(debounce)
		case err, ok := <-fw.Errors:
			if !ok {
				return nil
			}
			w.logger.Warn("config watcher error", "err", err)
		case <-timer.C:
			if ctx.Err() == nil {
				w.reload()
			}
		}
	}
}
