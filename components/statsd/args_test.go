package statsd

import (
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"testing/iotest"
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

func dialTCP(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func write(t *testing.T, c net.Conn, s string) {
	t.Helper()
	if _, err := c.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
}

// max_connections: at the limit the listener stops accepting (the next
// connection waits in the backlog, its lines are not lost); raising the
// limit or closing a connection lets it in.
func TestMaxConnections(t *testing.T) {
	body := "listen_udp = \"\"\nlisten_tcp = \"127.0.0.1:0\"\n"
	h, r := startReceiver(t, body+"max_connections = 2\n")
	g := h.Gatherer()
	addr := r.addr(t, "tcp")
	c1, c2 := dialTCP(t, addr), dialTCP(t, addr)
	write(t, c1, "one:1|c\n")
	write(t, c2, "two:1|c\n")
	waitValue(t, g, "one", nil, 1)
	waitValue(t, g, "two", nil, 1)
	waitValue(t, h.Registry, "sluice_statsd_tcp_open_connections", nil, 2)
	// The accept loop is waiting for a slot before the third connection
	// exists, so the third one cannot have been accepted.
	waitValue(t, h.Registry, "sluice_statsd_tcp_accept_paused_total", nil, 1)
	c3 := dialTCP(t, addr) // completes in the kernel's backlog
	write(t, c3, "three:1|c\n")
	if v := value(t, g, "three", nil); v != -1 {
		t.Fatalf("three = %v: a connection past max_connections was served", v)
	}
	if v := value(t, h.Registry, "statsd_exporter_tcp_connections_total", nil); v != 2 {
		t.Fatalf("%v connections accepted, want 2", v)
	}
	// Raising the limit in place serves it.
	if err := h.Update(body + "max_connections = 3\n"); err != nil {
		t.Fatal(err)
	}
	waitValue(t, g, "three", nil, 1)
	waitValue(t, h.Registry, "sluice_statsd_tcp_open_connections", nil, 3)
	// A fourth waits until one closes.
	waitValue(t, h.Registry, "sluice_statsd_tcp_accept_paused_total", nil, 2)
	c4 := dialTCP(t, addr)
	write(t, c4, "four:1|c\n")
	c1.Close()
	waitValue(t, g, "four", nil, 1)
	waitValue(t, h.Registry, "statsd_exporter_tcp_connections_total", nil, 4)
	waitValue(t, h.Registry, "sluice_statsd_tcp_open_connections", nil, 3)
}

// max_line_length: a longer TCP line is counted and skipped up to its
// newline; the connection goes on. A line of exactly the limit, and an
// unterminated last line, are kept.
func TestMaxLineLength(t *testing.T) {
	h, r := startReceiver(t, "listen_udp = \"\"\nlisten_tcp = \"127.0.0.1:0\"\nmax_line_length = 20\n")
	g := h.Gatherer()
	c := dialTCP(t, r.addr(t, "tcp"))
	exact := "exactly.twenty.b:1|c" // 20 bytes
	if len(exact) != 20 {
		t.Fatal(len(exact))
	}
	write(t, c, "short:1|c\n"+exact+"\nway.too.long.for.the.limit:1|c\nafter:1|c\n")
	// A long line arriving in pieces, with no newline for a while.
	write(t, c, "split.too.long")
	write(t, c, ".for.the.limit.again.and.again")
	write(t, c, ":1|c\nafter.split:1|c\nlast:2|c")
	c.Close()
	waitValue(t, g, "short", nil, 1)
	waitValue(t, g, "exactly_twenty_b", nil, 1)
	waitValue(t, g, "after", nil, 1)
	waitValue(t, g, "after_split", nil, 1)
	waitValue(t, g, "last", nil, 2)
	waitValue(t, h.Registry, "statsd_exporter_events_error_total", map[string]string{"reason": reasonLineTooLong}, 2)
	waitValue(t, h.Registry, "statsd_exporter_tcp_too_long_lines_total", nil, 2)
	for _, n := range familyNames(t, g) {
		if strings.Contains(n, "too_long") || strings.Contains(n, "again") {
			t.Errorf("part of a too-long line was ingested: %s", n)
		}
	}
}

// lineReader against every way reads can split a stream: one byte at a
// time (growth, discarding across reads) and all at once.
func TestLineReader(t *testing.T) {
	in := "a:1|c\n" + strings.Repeat("x", 50) + "\nb:1|c\n\n" + strings.Repeat("y", 5000) + ":1|c\n" + strings.Repeat("z", 30) + "\ntail"
	for name, rd := range map[string]func() io.Reader{
		"whole":    func() io.Reader { return strings.NewReader(in) },
		"one byte": func() io.Reader { return iotest.OneByteReader(strings.NewReader(in)) },
		"halves":   func() io.Reader { return iotest.HalfReader(strings.NewReader(in)) },
	} {
		for _, max := range []int{30, 6000} {
			lr := lineReader{buf: make([]byte, 16), max: max}
			var got []string
			tooLong := 0
			err := lr.run(rd(), func(b []byte) { got = append(got, string(b)) }, func() { tooLong++ }, func() {})
			if err != io.EOF {
				t.Fatalf("%s: %v", name, err)
			}
			want := []string{"a:1|c", "b:1|c", "", strings.Repeat("z", 30), "tail"}
			wantLong := 2
			if max == 6000 {
				want = []string{"a:1|c", strings.Repeat("x", 50), "b:1|c", "", strings.Repeat("y", 5000) + ":1|c", strings.Repeat("z", 30), "tail"}
				wantLong = 0
			}
			if strings.Join(got, "|") != strings.Join(want, "|") || tooLong != wantLong {
				t.Errorf("%s, max %d: got %q (%d too long), want %q (%d)", name, max, got, tooLong, want, wantLong)
			}
			if cap(lr.buf) > max+1 && cap(lr.buf) > 16 {
				t.Errorf("%s, max %d: buffer grew to %d", name, max, cap(lr.buf))
			}
		}
	}
}
