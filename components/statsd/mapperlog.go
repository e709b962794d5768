package statsd

import (
	"context"
	"log/slog"
	"strings"
)

// mapperLogHandler lowers one message of upstream's mapper from Warn to
// Debug: "backtracking required because of match. Performance may be
// degraded". Upstream logs it for every glob whose star shares a position
// with another rule's literal, which any mapping that supports an optional
// prefix (such as config/examples/gunicorn-mapping.yml's "*.gunicorn.*"
// rules for gunicorn's --statsd-prefix) has: four warnings at every start
// of the quickstart. The receiver caches mapping results per metric name
// (cache_size), so the matcher's backtracking costs once per name, not
// per line. Every other message of the mapper keeps its level (a rule
// that can never match, for one, stays a warning).
type mapperLogHandler struct{ slog.Handler }

const backtrackingMessage = "backtracking required"

func (h mapperLogHandler) Enabled(ctx context.Context, l slog.Level) bool {
	// The level of a record is only known in Handle: let Warn through to
	// it even where the inner handler only wants Warn and above.
	return h.Handler.Enabled(ctx, l)
}

func (h mapperLogHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level == slog.LevelWarn && strings.HasPrefix(r.Message, backtrackingMessage) {
		if !h.Handler.Enabled(ctx, slog.LevelDebug) {
			return nil
		}
		r.Level = slog.LevelDebug
	}
	return h.Handler.Handle(ctx, r)
}

func (h mapperLogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return mapperLogHandler{h.Handler.WithAttrs(as)}
}

func (h mapperLogHandler) WithGroup(name string) slog.Handler {
	return mapperLogHandler{h.Handler.WithGroup(name)}
}

// mapperLogger is logger with upstream's backtracking warning at Debug.
func mapperLogger(logger *slog.Logger) *slog.Logger {
	if logger == nil {
		return nil
	}
	return slog.New(mapperLogHandler{logger.Handler()})
}
