// Package statsdexporter turns a statsd_exporter v0.31.0 command line into
// the equivalent Sluice configuration: a statsd_receiver with the same
// listeners, mapping file and parser settings, and a metrics_sink where
// statsd_exporter served /metrics.
//
// The flags are parsed with kingpin, as statsd_exporter parses them, so a
// command line is read here exactly as the exporter reads it (--no-X for
// booleans, --flag=value and --flag value, repeated flags: the last wins).
package statsdexporter

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/alecthomas/kingpin/v2"

	"github.com/sluicehq/sluice/convert/hclout"
)

// Version is the statsd_exporter release whose flags Convert knows.
const Version = "v0.31.0"

// Result is the converted configuration and what did not convert.
type Result struct {
	// HCL is the Sluice configuration, in canonical format (sluice fmt).
	HCL []byte
	// Warnings name each flag that was set and has no equivalent; the
	// HCL carries the same text as a comment.
	Warnings []string
}

// flagValues holds statsd_exporter's flags, each with whether the command
// line set it (a flag left at its default converts to nothing or to the
// receiver's own default, which is the same).
type flagValues struct {
	webListen, telemetryPath                       stringFlag
	enableLifecycle                                boolFlag
	listenUDP, listenTCP, listenUnixgram, sockMode stringFlag
	mappingConfig                                  stringFlag
	readBuffer, cacheSize                          intFlag
	cacheType                                      stringFlag
	eventQueueSize, eventFlushThreshold            intFlag
	eventFlushInterval                             durationFlag
	dumpFSM                                        stringFlag
	checkConfig                                    boolFlag
	dogstatsd, influxdb, librato, signalfx         boolFlag
	relayAddr                                      stringFlag
	relayPacketLen, udpPacketQueueSize             intFlag
	logLevel, logFormat                            stringFlag
}

type stringFlag struct {
	v   string
	set bool
}
type intFlag struct {
	v   int64
	set bool
}
type boolFlag struct {
	v   bool
	set bool
}
type durationFlag struct {
	v   time.Duration
	set bool
}

// parse reads args with statsd_exporter v0.31.0's flag set (names,
// defaults and types as its main.go declares them).
func parse(args []string) (*flagValues, error) {
	app := kingpin.New("statsd_exporter", "")
	app.Terminate(nil)
	app.UsageWriter(discard{})
	app.ErrorWriter(discard{})
	f := &flagValues{}
	str := func(name, def string, dst *stringFlag) {
		app.Flag(name, "").Default(def).IsSetByUser(&dst.set).StringVar(&dst.v)
	}
	integer := func(name, def string, dst *intFlag) {
		app.Flag(name, "").Default(def).IsSetByUser(&dst.set).Int64Var(&dst.v)
	}
	boolean := func(name, def string, dst *boolFlag) {
		app.Flag(name, "").Default(def).IsSetByUser(&dst.set).BoolVar(&dst.v)
	}
	str("web.listen-address", ":9102", &f.webListen)
	boolean("web.enable-lifecycle", "false", &f.enableLifecycle)
	str("web.telemetry-path", "/metrics", &f.telemetryPath)
	str("statsd.listen-udp", ":9125", &f.listenUDP)
	str("statsd.listen-tcp", ":9125", &f.listenTCP)
	str("statsd.listen-unixgram", "", &f.listenUnixgram)
	str("statsd.unixsocket-mode", "755", &f.sockMode)
	str("statsd.mapping-config", "", &f.mappingConfig)
	integer("statsd.read-buffer", "0", &f.readBuffer)
	integer("statsd.cache-size", "1000", &f.cacheSize)
	app.Flag("statsd.cache-type", "").Default("lru").IsSetByUser(&f.cacheType.set).EnumVar(&f.cacheType.v, "lru", "random")
	integer("statsd.event-queue-size", "10000", &f.eventQueueSize)
	integer("statsd.event-flush-threshold", "1000", &f.eventFlushThreshold)
	app.Flag("statsd.event-flush-interval", "").Default("200ms").IsSetByUser(&f.eventFlushInterval.set).DurationVar(&f.eventFlushInterval.v)
	str("debug.dump-fsm", "", &f.dumpFSM)
	boolean("check-config", "false", &f.checkConfig)
	boolean("statsd.parse-dogstatsd-tags", "true", &f.dogstatsd)
	boolean("statsd.parse-influxdb-tags", "true", &f.influxdb)
	boolean("statsd.parse-librato-tags", "true", &f.librato)
	boolean("statsd.parse-signalfx-tags", "true", &f.signalfx)
	str("statsd.relay.address", "", &f.relayAddr)
	integer("statsd.relay.packet-length", "1400", &f.relayPacketLen)
	integer("statsd.udp-packet-queue-size", "10000", &f.udpPacketQueueSize)
	// prometheus/common's promslog flags, which statsd_exporter adds.
	app.Flag("log.level", "").Default("info").IsSetByUser(&f.logLevel.set).EnumVar(&f.logLevel.v, "debug", "info", "warn", "error")
	app.Flag("log.format", "").Default("logfmt").IsSetByUser(&f.logFormat.set).EnumVar(&f.logFormat.v, "logfmt", "json")
	// kingpin's own --help and --version make statsd_exporter print and
	// exit: they configure nothing, so they are refused rather than
	// silently converted to a default config.
	app.HelpFlag = nil
	for _, a := range args {
		if a == "--help" || a == "-h" || a == "--version" || a == "--help-long" || a == "--help-man" {
			return nil, fmt.Errorf("%s prints and exits: it is not a configuration to convert", a)
		}
	}
	if _, err := app.Parse(args); err != nil {
		return nil, fmt.Errorf("statsd_exporter %s command line: %w", Version, err)
	}
	return f, nil
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// Convert returns the Sluice configuration equivalent to the statsd_exporter
// command line args (without the program name). An unknown flag or a bad
// value is an error.
func Convert(args []string) (Result, error) {
	for _, a := range args {
		if !utf8.ValidString(a) {
			return Result{}, fmt.Errorf("argument %q is not valid UTF-8", a)
		}
	}
	f, err := parse(args)
	if err != nil {
		return Result{}, err
	}
	var w hclout.Writer
	var res Result
	noEquivalent := func(flag, value, why string) {
		msg := fmt.Sprintf("--%s=%s has no equivalent: %s", flag, value, why)
		res.Warnings = append(res.Warnings, msg)
		w.Comment(msg)
	}

	w.Comment(fmt.Sprintf("Converted by `sluice convert statsd_exporter` from a statsd_exporter %s command line:", Version))
	w.Comment("  statsd_exporter " + shellJoin(args))
	w.Line("")
	w.Line(`statsd_receiver "statsd" {`)
	if f.listenUDP.v == "" && f.listenTCP.v == "" && f.listenUnixgram.v == "" {
		return Result{}, fmt.Errorf("no listener: --statsd.listen-udp, --statsd.listen-tcp and --statsd.listen-unixgram are all empty (statsd_exporter refuses to start)")
	}
	// statsd_exporter listens on UDP and TCP :9125 unless told otherwise;
	// the receiver's TCP listener is off by default, so both are written.
	w.Attr("listen_udp", hclout.Quote(f.listenUDP.v))
	w.Attr("listen_tcp", hclout.Quote(f.listenTCP.v))
	if f.listenUnixgram.v != "" {
		w.Attr("listen_unixgram", hclout.Quote(f.listenUnixgram.v))
		if f.sockMode.set {
			if _, err := strconv.ParseUint(f.sockMode.v, 8, 32); err != nil {
				// statsd_exporter warns and leaves the socket's mode alone.
				noEquivalent("statsd.unixsocket-mode", f.sockMode.v, "not an octal mode; statsd_exporter ignores it, the receiver keeps its default 755")
			} else {
				w.Attr("unixgram_mode", hclout.Quote(f.sockMode.v))
			}
		}
	} else if f.sockMode.set {
		w.Comment(fmt.Sprintf("--statsd.unixsocket-mode=%s is unused: no unixgram listener.", f.sockMode.v))
	}
	if f.readBuffer.v != 0 {
		w.Attr("read_buffer", strconv.FormatInt(f.readBuffer.v, 10))
	}
	if f.mappingConfig.v != "" {
		if !filepath.IsAbs(f.mappingConfig.v) {
			w.Comment("statsd_exporter read this path relative to its working directory; Sluice reads it relative to this file's directory.")
		}
		w.Attr("mapping_file", hclout.Quote(f.mappingConfig.v))
	}
	if f.cacheSize.set {
		if f.cacheSize.v < 0 {
			return Result{}, fmt.Errorf("--statsd.cache-size=%d: must not be negative", f.cacheSize.v)
		}
		w.Attr("cache_size", strconv.FormatInt(f.cacheSize.v, 10))
	}
	if f.cacheType.set {
		w.Attr("cache_type", hclout.Quote(f.cacheType.v))
	}
	for _, t := range []struct {
		attr string
		f    boolFlag
	}{
		{"parse_dogstatsd_tags", f.dogstatsd},
		{"parse_influxdb_tags", f.influxdb},
		{"parse_librato_tags", f.librato},
		{"parse_signalfx_tags", f.signalfx},
	} {
		if t.f.set {
			w.Attr(t.attr, strconv.FormatBool(t.f.v))
		}
	}
	// statsd_exporter has no cap on series; the receiver's default
	// (100000) drops and counts new series beyond it. Stated so that the
	// difference is visible where it can be changed.
	w.Comment("statsd_exporter has no series limit; the receiver keeps at most max_series (0: no limit).")
	w.Attr("max_series", "100000")

	queueFlag := func(name string, set bool, value string) {
		if set {
			noEquivalent(name, value, "the receiver has no event queue: its readers map and apply events in batches, flushed when the socket is drained and at most 1ms after they arrive")
		}
	}
	queueFlag("statsd.event-queue-size", f.eventQueueSize.set, strconv.FormatInt(f.eventQueueSize.v, 10))
	queueFlag("statsd.event-flush-threshold", f.eventFlushThreshold.set, strconv.FormatInt(f.eventFlushThreshold.v, 10))
	queueFlag("statsd.event-flush-interval", f.eventFlushInterval.set, f.eventFlushInterval.v.String())
	if f.udpPacketQueueSize.set {
		noEquivalent("statsd.udp-packet-queue-size", strconv.FormatInt(f.udpPacketQueueSize.v, 10), "the receiver's readers parse packets as they read them; use read_buffer for the socket's queue")
	}
	if f.relayAddr.set && f.relayAddr.v != "" {
		noEquivalent("statsd.relay.address", f.relayAddr.v, "Sluice does not relay statsd lines; send them to both destinations from the client")
	}
	if f.relayPacketLen.set {
		noEquivalent("statsd.relay.packet-length", strconv.FormatInt(f.relayPacketLen.v, 10), "Sluice does not relay statsd lines")
	}
	if f.dumpFSM.set && f.dumpFSM.v != "" {
		noEquivalent("debug.dump-fsm", f.dumpFSM.v, "Sluice does not dump the mapper's FSM")
	}
	w.Line("}")
	w.Line("")

	// statsd_exporter serves the mapped series, its own statsd_exporter_*
	// metrics and the Go and process collectors on one endpoint: the
	// receiver's metrics and the agent's (which carry the same self-metrics)
	// together give the same families.
	w.Comment("statsd_exporter's /metrics: the mapped series and its own statsd_exporter_*, go_* and process_* metrics.")
	w.Line(`metrics_sink "statsd" {`)
	w.Attr("inputs", "[statsd_receiver.statsd.metrics, agent.metrics]")
	w.Attr("listen", hclout.Quote(f.webListen.v))
	w.Comment("statsd_exporter serves the Prometheus text format only: counters without _total keep the type counter.")
	w.Attr("openmetrics", "false")
	if f.telemetryPath.v != "/metrics" {
		noEquivalent("web.telemetry-path", f.telemetryPath.v, "a metrics_sink with its own listener serves /metrics; to keep another path, drop `listen` and set `path` to serve it on the agent's server (sluice run --server.http.listen-addr)")
	}
	w.Line("}")

	var runFlags []string
	if f.enableLifecycle.v {
		runFlags = append(runFlags, "--web.enable-lifecycle")
		w.Line("")
		w.Comment("--web.enable-lifecycle: `sluice run --web.enable-lifecycle` serves POST /-/reload; there is no /-/quit (stop the process with SIGTERM).")
	}
	if f.logLevel.set {
		runFlags = append(runFlags, "--log.level="+f.logLevel.v)
	}
	if f.logFormat.set {
		runFlags = append(runFlags, "--log.format="+f.logFormat.v)
	}
	if f.checkConfig.v {
		w.Line("")
		w.Comment("--check-config: use `sluice validate` on this file.")
	}
	if len(runFlags) > 0 {
		w.Line("")
		w.Comment("Run with: sluice run " + strings.Join(runFlags, " ") + " FILE")
	}
	res.HCL = w.Bytes()
	return res, nil
}

// shellJoin renders args for a comment, quoting those that need it.
func shellJoin(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\n'\"\\$`") {
			out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		} else {
			out[i] = a
		}
	}
	return strings.Join(out, " ")
}
