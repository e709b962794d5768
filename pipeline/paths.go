package pipeline

import "strings"

// Built-in paths of the agent server. Components cannot mount on them.
const (
	PathMetrics    = "/metrics"
	PathHealthy    = "/-/healthy"
	PathReady      = "/-/ready"
	PathReload     = "/-/reload"
	PathComponents = "/api/v0/components"
)

// IsBuiltinPath reports whether path belongs to the agent itself.
func IsBuiltinPath(path string) bool {
	return path == PathMetrics || strings.HasPrefix(path, "/-/") || path == "/api" || strings.HasPrefix(path, "/api/")
}
