package statsd

import (
	"os"
	"testing"
)

const udp = "listen_udp = \"127.0.0.1:0\"\n"

func TestTagFormats(t *testing.T) {
	packet := "dog:1|c|#env:prod\ninflux,env=prod:1|c\nlibrato#env=prod:1|c\nsignalfx[env=prod]:1|c"
	t.Run("on by default", func(t *testing.T) {
		h, r := startReceiver(t, udp)
		send(t, "udp", r.addr(t, "udp"), packet)
		g := h.Gatherer()
		for _, n := range []string{"dog", "influx", "librato", "signalfx"} {
			waitValue(t, g, n, map[string]string{"env": "prod"}, 1)
		}
	})
	t.Run("off", func(t *testing.T) {
		h, r := startReceiver(t, udp+`
parse_dogstatsd_tags = false
parse_influxdb_tags  = false
parse_librato_tags   = false
parse_signalfx_tags  = false
`)
		send(t, "udp", r.addr(t, "udp"), packet)
		g := h.Gatherer()
		// Not parsed, the tags stay in the name (escaped), or are ignored.
		waitValue(t, g, "dog", nil, 1)
		waitValue(t, g, "influx_env_prod", nil, 1)
		waitValue(t, g, "librato_env_prod", nil, 1)
		waitValue(t, g, "signalfx_env_prod_", nil, 1)
	})
}

func TestCache(t *testing.T) {
	for _, c := range []struct {
		body       string
		gets, size bool
	}{
		{"cache_type = \"lru\"\ncache_size = 10\n", true, true},
		{"cache_type = \"random\"\ncache_size = 10\n", false, true},
		{"cache_size = 0\n", false, false},
	} {
		t.Run(c.body, func(t *testing.T) {
			h, r := startReceiver(t, udp+c.body)
			send(t, "udp", r.addr(t, "udp"), "a:1|c\nb:1|c\na:1|c")
			waitValue(t, h.Gatherer(), "a", nil, 2)
			gets := value(t, h.Registry, "statsd_metric_mapper_cache_gets_total", nil)
			if c.gets != (gets == 3) {
				t.Errorf("cache gets = %v", gets)
			}
			// Upstream updates the length from a goroutine per Add, so
			// its value is not exact; that it is exported is.
			if v := value(t, h.Registry, "statsd_metric_mapper_cache_length", nil); c.size != (v != -1) {
				t.Errorf("cache length = %v", v)
			}
		})
	}
}

func TestUnixgramMode(t *testing.T) {
	sock := sockPath(t)
	body := "listen_udp = \"\"\nlisten_unixgram = \"" + sock + "\"\n"
	h, _ := startReceiver(t, body+"unixgram_mode = \"600\"\n")
	mode := func() os.FileMode {
		fi, err := os.Stat(sock)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Mode().Perm()
	}
	if m := mode(); m != 0o600 {
		t.Fatalf("mode %o, want 600", m)
	}
	if err := h.Update(body + "unixgram_mode = \"660\"\n"); err != nil {
		t.Fatal(err)
	}
	if m := mode(); m != 0o660 {
		t.Fatalf("after update: mode %o, want 660", m)
	}
	send(t, "unixgram", sock, "still.here:1|c")
	waitValue(t, h.Gatherer(), "still_here", nil, 1)
}

func TestMappingBlocks(t *testing.T) {
	h, r := startReceiver(t, udp+`
mapping_defaults {
  observer_type = "histogram"
  histogram_options {
    buckets = [1, 2]
  }
}
mapping {
  match  = "shop.*.orders"
  name   = "orders_total"
  labels = { shop = "$1", source = "mapping" }
  help   = "Orders placed."
}
mapping {
  match        = "honor.*.hits"
  name         = "hits_total"
  labels       = { page = "$1", source = "mapping" }
  honor_labels = true
}
mapping {
  match      = "^legacy_(\\w+)_count$"
  match_type = "regex"
  name       = "legacy_$${1}_total" # $${...}: HCL would interpolate ${...}
}
mapping {
  match             = "typed.metric"
  match_metric_type = "gauge"
  name              = "typed_gauge"
}
mapping {
  match = "bytes.sent"
  name  = "bytes_sent_kilobytes"
  scale = 0.001
}
mapping {
  match         = "latency.summary"
  name          = "latency_summary_seconds"
  observer_type = "summary"
  summary_options {
    quantiles = [{ quantile = 0.5, error = 0.05 }]
  }
}
mapping {
  match = "latency.histogram"
  name  = "latency_histogram_seconds"
  histogram_options {
    buckets = [0.1, 0.5]
  }
}
mapping {
  match  = "noise.*"
  action = "drop"
}
`)
	send(t, "udp", r.addr(t, "udp"),
		"shop.berlin.orders:2|c\n"+
			"honor.home.hits:1|c|#source:client\n"+
			"legacy_jobs_count:4|c\n"+
			"typed.metric:7|g\ntyped.metric:1|c\n"+
			"bytes.sent:2000|c\n"+
			"latency.summary:0.3|h\n"+
			"latency.histogram:0.3|h\n"+
			"latency.default:1.5|h\n"+
			"noise.x:1|c")
	g := h.Gatherer()
	waitValue(t, g, "orders_total", map[string]string{"shop": "berlin", "source": "mapping"}, 2)
	waitValue(t, g, "hits_total", map[string]string{"page": "home", "source": "client"}, 1)
	waitValue(t, g, "legacy_jobs_total", nil, 4)
	waitValue(t, g, "typed_gauge", nil, 7)
	waitValue(t, g, "typed_metric", nil, 1) // a counter: match_metric_type did not match
	waitValue(t, g, "bytes_sent_kilobytes", nil, 2)
	waitValue(t, g, "latency_default", nil, 1)

	if m := find(t, g, "orders_total", map[string]string{"shop": "berlin", "source": "mapping"}); m == nil {
		t.Fatal("orders_total missing")
	}
	mfs, _ := g.Gather()
	for _, mf := range mfs {
		switch mf.GetName() {
		case "orders_total":
			if mf.GetHelp() != "Orders placed." {
				t.Errorf("help = %q", mf.GetHelp())
			}
		case "latency_summary_seconds":
			s := mf.GetMetric()[0].GetSummary()
			if s == nil || len(s.GetQuantile()) != 1 || s.GetQuantile()[0].GetQuantile() != 0.5 {
				t.Errorf("latency_summary_seconds is not a summary with one quantile: %v", mf)
			}
		case "latency_histogram_seconds":
			hs := mf.GetMetric()[0].GetHistogram()
			if hs == nil || len(hs.GetBucket()) != 2 || hs.GetBucket()[1].GetCumulativeCount() != 1 {
				t.Errorf("latency_histogram_seconds: want buckets 0.1, 0.5: %v", mf)
			}
		case "latency_default":
			hs := mf.GetMetric()[0].GetHistogram()
			if hs == nil || len(hs.GetBucket()) != 2 || hs.GetBucket()[0].GetUpperBound() != 1 {
				t.Errorf("latency_default: want the defaults' histogram with buckets 1, 2: %v", mf)
			}
		case "noise_x":
			t.Errorf("noise.x was not dropped")
		}
	}
}
