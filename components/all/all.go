// Package all imports every built-in component, registering them.
package all

import (
	_ "github.com/sluicehq/sluice/components/cache"       // cache
	_ "github.com/sluicehq/sluice/components/heartbeat"   // heartbeat
	_ "github.com/sluicehq/sluice/components/kubestatus"  // kubernetes_status_source
	_ "github.com/sluicehq/sluice/components/postgres"    // postgres_source
	_ "github.com/sluicehq/sluice/components/relabel"     // relabel
	_ "github.com/sluicehq/sluice/components/remotewrite" // remote_write
	_ "github.com/sluicehq/sluice/components/sink"        // metrics_sink
	_ "github.com/sluicehq/sluice/components/statsd"      // statsd_receiver
	_ "github.com/sluicehq/sluice/components/webhook"     // webhook_receiver
)
