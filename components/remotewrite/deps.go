package remotewrite

import (
	_ "github.com/golang/snappy"
	_ "github.com/prometheus/prometheus/prompb"
	_ "github.com/prometheus/prometheus/tsdb/wlog"
	_ "github.com/prometheus/common/config"
)
