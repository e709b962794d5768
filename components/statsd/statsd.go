// Package statsd implements the statsd_receiver component: statsd and
// DogStatsD ingestion over UDP, TCP and unixgram, mapped to Prometheus
// metrics with statsd_exporter's mapping language.
//
// It uses github.com/prometheus/statsd_exporter/pkg for the line parser
// and the mapper (and its caches), and replaces the rest of upstream's
// exporter (listeners, event queue, exporter loop, series registry and
// client_golang vectors) with its own: upstream's start goroutines that
// never stop, exit the process on errors and process every event on one
// goroutine, and its registry stores each series twice.
//
// The package is laid out as a datagram flows; each part is given what it
// needs (the reporter, the configuration in use, the series set), and no
// part holds the Receiver:
//
//	sockets   listen.go             binding, moving and closing the listeners
//	          listen_packet*.go     UDP and unixgram: readers on dup'ed descriptors, recvmmsg
//	          listen_tcp.go         TCP: connections, line framing, max_connections
//	          kdrops*.go            the kernel's drops of the UDP socket
//	lines     lines.go              datagram -> lines -> items, batched per shard
//	          fastpath.go           lines whose signature is known: value and rate only
//	          mapevent.go           the full path: upstream's parser and mapper, the checks
//	store     shard.go              items -> series of the shard's store; max_series, TTL sweeps
//	          internal/store        the series store (hash of name+labels, packed labels)
//	gather    gather.go             the shards' stores -> metric families, or text (encoded.Gatherer)
//	component statsd.go             registration, Arguments, Exports, defaults, validation
//	          mapping.go            mapping blocks and files -> upstream mapper
//	          receiver.go           the component: New, Run, Update; wires the parts
//	          report.go             self-metrics' errors, bounded logs, panics, the watchdog
//	          metrics.go            self-metrics (statsd_exporter_* names)
package statsd

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/pipeline"
)

func init() {
	pipeline.Register(pipeline.Registration[Arguments, Exports]{
		Name:      "statsd_receiver",
		Stability: pipeline.StabilityBeta,
		Summary:   "receives statsd/DogStatsD over UDP, TCP or unixgram and maps it to Prometheus metrics (statsd_exporter compatible)",
		Build: func(opts pipeline.Options[Exports], args Arguments) (pipeline.Component[Arguments], error) {
			return New(opts, args)
		},
		Example: example,
	})
}

const example = `statsd_receiver "app" {
  listen_udp   = ":9125"
  mapping_file = "statsd-mapping.yml"  # statsd_exporter's format, unchanged

  mapping {
    match  = "gunicorn.request.status.*"
    name   = "gunicorn_request_status_total"
    labels = { status = "$1" }
  }
}`

// Default values of the arguments.
const (
	DefaultListenUDP    = ":9125"
	DefaultUnixgramMode = "755"
	DefaultCacheType    = "lru"
	DefaultCacheSize    = 1000
	DefaultMaxSeries    = 100000
	// DefaultMaxConnections bounds the TCP connections served at once.
	DefaultMaxConnections = 1024
	// DefaultMaxLineLength is the longest TCP line accepted, in bytes
	// (statsd_exporter's limit too).
	DefaultMaxLineLength = 64 * 1024
	// maxMaxLineLength bounds max_line_length: every open connection may
	// hold a buffer of that size.
	maxMaxLineLength = 16 << 20
)

// Arguments configure a statsd_receiver.
type Arguments struct {
	// ListenUDP is the UDP address to receive on; "" disables UDP.
	ListenUDP string `hcl:"listen_udp,optional"`
	// ListenTCP is the TCP address to receive on (off by default).
	ListenTCP string `hcl:"listen_tcp,optional"`
	// ListenUnixgram is a unix datagram socket path (off by default).
	ListenUnixgram string `hcl:"listen_unixgram,optional"`
	// UnixgramMode is the socket file's permission, in octal.
	UnixgramMode string `hcl:"unixgram_mode,optional"`
	// ReadBuffer is the kernel receive buffer (SO_RCVBUF) of the UDP and
	// unixgram sockets, in bytes; 0 keeps the system default.
	ReadBuffer int `hcl:"read_buffer,optional"`

	// MappingFile is a statsd_exporter mapping YAML file.
	MappingFile string `hcl:"mapping_file,optional"`
	// Mappings are appended after the file's mappings.
	Mappings []Mapping `hcl:"mapping,block"`
	// MappingDefaults replaces the file's `defaults`.
	MappingDefaults *MappingDefaults `hcl:"mapping_defaults,block"`

	ParseDogStatsDTags bool `hcl:"parse_dogstatsd_tags,optional"`
	ParseInfluxDBTags  bool `hcl:"parse_influxdb_tags,optional"`
	ParseLibratoTags   bool `hcl:"parse_librato_tags,optional"`
	ParseSignalFXTags  bool `hcl:"parse_signalfx_tags,optional"`

	// CacheType is the mapper cache: "lru" or "random".
	CacheType string `hcl:"cache_type,optional"`
	// CacheSize is the number of cached mapping results; 0 disables the cache.
	CacheSize int `hcl:"cache_size,optional"`
	// MaxSeries caps the number of live series; new series beyond it are
	// dropped and counted. 0 means no limit.
	MaxSeries int `hcl:"max_series,optional"`

	// MaxConnections bounds the TCP connections served at once. At the
	// limit the listener stops accepting until one closes: new
	// connections wait in the kernel's backlog, nothing is refused.
	MaxConnections int `hcl:"max_connections,optional"`
	// MaxLineLength is the longest TCP line accepted, in bytes (without
	// the newline). A longer line is counted and discarded up to its
	// newline; the connection goes on.
	MaxLineLength int `hcl:"max_line_length,optional"`

	// mapping is the mapping file, mapping_defaults and mapping blocks
	// together, compiled once per load (Provision).
	mapping *compiledMapping
}

// Exports are the receiver's metrics.
type Exports struct {
	Metrics prometheus.Gatherer `hcl:"metrics"`
}

// SetDefaults implements pipeline.SetDefaulter.
func (a *Arguments) SetDefaults() {
	*a = Arguments{
		ListenUDP:          DefaultListenUDP,
		UnixgramMode:       DefaultUnixgramMode,
		ParseDogStatsDTags: true,
		ParseInfluxDBTags:  true,
		ParseLibratoTags:   true,
		ParseSignalFXTags:  true,
		CacheType:          DefaultCacheType,
		CacheSize:          DefaultCacheSize,
		MaxSeries:          DefaultMaxSeries,
		MaxConnections:     DefaultMaxConnections,
		MaxLineLength:      DefaultMaxLineLength,
	}
}

// Validate implements pipeline.Validator: the cheap checks. Reading the
// mapping file and compiling the mapping happen once per load, in
// Provision.
func (a *Arguments) Validate() error {
	var errs []error
	if a.ListenUDP == "" && a.ListenTCP == "" && a.ListenUnixgram == "" {
		errs = append(errs, errors.New("at least one of listen_udp, listen_tcp and listen_unixgram must be set"))
	}
	for _, l := range []struct{ attr, addr string }{{"listen_udp", a.ListenUDP}, {"listen_tcp", a.ListenTCP}} {
		if l.addr != "" {
			if err := checkHostPort(l.addr); err != nil {
				errs = append(errs, pipeline.ErrorAt(l.attr, err))
			}
		}
	}
	if _, err := parseMode(a.UnixgramMode); err != nil {
		errs = append(errs, pipeline.ErrorAt("unixgram_mode", err))
	}
	if a.ReadBuffer < 0 {
		errs = append(errs, pipeline.ErrorAt("read_buffer", errors.New("must not be negative")))
	}
	switch a.CacheType {
	case "lru", "random":
	default:
		errs = append(errs, pipeline.ErrorAt("cache_type", fmt.Errorf("%q is not a cache type: use \"lru\" or \"random\"", a.CacheType)))
	}
	if a.CacheSize < 0 {
		errs = append(errs, pipeline.ErrorAt("cache_size", errors.New("must not be negative")))
	}
	if a.MaxSeries < 0 {
		errs = append(errs, pipeline.ErrorAt("max_series", errors.New("must not be negative (0 means no limit)")))
	}
	if a.MaxConnections < 1 {
		errs = append(errs, pipeline.ErrorAt("max_connections", errors.New("must be at least 1")))
	}
	if a.MaxLineLength < 1 || a.MaxLineLength > maxMaxLineLength {
		errs = append(errs, pipeline.ErrorAt("max_line_length", fmt.Errorf("must be from 1 to %d bytes", maxMaxLineLength)))
	}
	return errors.Join(errs...)
}

// Provision reads the mapping file (through the load's cache) and compiles
// it with the mapping_defaults and mapping blocks into the mapper Build and
// Update use. A bad file or block is a diagnostic at its attribute.
func (a *Arguments) Provision(ctx pipeline.ProvisionContext) error {
	m, err := compileMapping(*a, ctx.ReadFile, ctx.Logger())
	if err != nil {
		return err
	}
	a.mapping = m
	return nil
}

// ResolvePaths makes a relative mapping_file relative to the config file's
// directory, so that the file means the same whatever the working
// directory.
func (a *Arguments) ResolvePaths(configDir string) {
	a.MappingFile = pipeline.ResolvePath(configDir, a.MappingFile)
}

// ReferencedFiles makes the mapping file's content part of the arguments:
// editing it reloads the mapping (in place, like any other change).
func (a *Arguments) ReferencedFiles() []string {
	if a.MappingFile == "" {
		return nil
	}
	return []string{a.MappingFile}
}

// ListenAddresses implements pipeline.ListenAddressUser: the loader refuses
// a config in which another component (or the agent's server) wants one of
// the receiver's sockets.
func (a *Arguments) ListenAddresses() []pipeline.ListenAddress {
	var out []pipeline.ListenAddress
	for _, l := range []pipeline.ListenAddress{
		{Network: "udp", Address: a.ListenUDP, Attr: "listen_udp"},
		{Network: "tcp", Address: a.ListenTCP, Attr: "listen_tcp"},
		{Network: "unixgram", Address: a.ListenUnixgram, Attr: "listen_unixgram"},
	} {
		if l.Address != "" {
			out = append(out, l)
		}
	}
	return out
}

var (
	_ pipeline.PathResolver      = (*Arguments)(nil)
	_ pipeline.FileReferrer      = (*Arguments)(nil)
	_ pipeline.Provisioner       = (*Arguments)(nil)
	_ pipeline.ListenAddressUser = (*Arguments)(nil)
)

// checkHostPort checks an address without resolving it: a DNS lookup in
// Validate would make loading a config depend on the network.
func checkHostPort(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not a host:port address: %w", addr, err)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || (p == 0 && port != "0") {
		return fmt.Errorf("%q: port %q is not a number from 0 to 65535", addr, port)
	}
	return nil
}

func parseMode(s string) (uint32, error) {
	m, err := strconv.ParseUint(strings.TrimPrefix(s, "0"), 8, 32)
	if s == "0" {
		m, err = 0, nil
	}
	if err != nil || m > 0o777 {
		return 0, fmt.Errorf("%q is not an octal file mode such as \"755\"", s)
	}
	return uint32(m), nil
}
