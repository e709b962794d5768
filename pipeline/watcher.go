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
	Path     string
	Debounce time.Duration
	Reload   func()
	Logger   *slog.Logger
}

// Run watches until ctx ends.
func (w *Watcher) Run(ctx context.Context) error {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("config watcher: %w", err)
	}
	defer fw.Close()
	dir := filepath.Dir(w.Path)
	if err := fw.Add(dir); err != nil {
		return fmt.Errorf("config watcher: watching %s: %w", dir, err)
	}
	debounce := w.Debounce
	if debounce <= 0 {
		debounce = 250 * time.Millisecond
	}
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
			w.Logger.Warn("config watcher error", "err", err)
		case <-timer.C:
			w.Reload()
		}
	}
}
