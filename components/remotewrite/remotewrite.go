// Package remotewrite is the remote_write component: it gathers its inputs
// every scrape_interval, converts the families to samples as a Prometheus
// scrape would, and sends them over the Prometheus Remote-Write 1.0
// protocol (prompb.WriteRequest, snappy) to one or more endpoints, each
// with its own sharded queue, retries and, optionally, write-ahead log.
package remotewrite

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/alecthomas/units"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/config"

	"github.com/sluicehq/sluice/internal/faultfs"
	"github.com/sluicehq/sluice/internal/gathermerge"
	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/ratelog"
)

func init() {
	pipeline.Register(pipeline.Registration[Arguments, Exports]{
		Name:      "remote_write",
		Stability: pipeline.StabilityExperimental,
		Summary:   "sends its inputs to Prometheus remote-write receivers (Prometheus, Mimir, Thanos, Cortex, VictoriaMetrics)",
		Example: `remote_write "central" {
  inputs          = [statsd_receiver.app.metrics, agent.metrics]
  scrape_interval = "15s"
  external_labels = { cluster = "prod-eu1" }
  endpoint {
    url               = "https://mimir.example/api/v1/push"
    bearer_token_file = "/var/run/secrets/token"
  }
  wal = true
}`,
		Build: Build,
	})
}

// Arguments configure a remote_write.
type Arguments struct {
	Inputs []prometheus.Gatherer `hcl:"inputs"`
	// ScrapeInterval is how often the inputs are gathered and sampled.
	ScrapeInterval time.Duration `hcl:"scrape_interval,optional"`
	// ExternalLabels are added to every series that lacks them.
	ExternalLabels map[string]string `hcl:"external_labels,optional"`
	Endpoints      []Endpoint        `hcl:"endpoint,block"`
	Queue          *Queue            `hcl:"queue,block"`
	// WAL keeps the samples not yet acknowledged on disk.
	WAL bool `hcl:"wal,optional"`
	// MaxWALSize ("512MiB") and MaxWALAge bound each endpoint's WAL:
	// beyond them the oldest samples are dropped and counted.
	MaxWALSize string        `hcl:"max_wal_size,optional"`
	MaxWALAge  time.Duration `hcl:"max_wal_age,optional"`

	maxWALSize int64
}

// Endpoint is one receiver.
type Endpoint struct {
	// Name labels the endpoint's self-metrics and names its WAL directory;
	// the URL (without credentials or query) by default.
	Name            string            `hcl:"name,optional"`
	URL             string            `hcl:"url"`
	Timeout         time.Duration     `hcl:"timeout,optional"`
	BearerToken     string            `hcl:"bearer_token,optional" secret:"true"`
	BearerTokenFile string            `hcl:"bearer_token_file,optional"`
	BasicAuth       *BasicAuth        `hcl:"basic_auth,block"`
	Headers         map[string]string `hcl:"headers,optional" secret:"true"`
	TLS             *TLS              `hcl:"tls,block"`
	// SendNativeHistograms sends a histogram that has native buckets as a
	// native histogram rather than as _bucket/_sum/_count series.
	SendNativeHistograms bool `hcl:"send_native_histograms,optional"`

	http config.HTTPClientConfig
}

// BasicAuth is HTTP basic authentication.
type BasicAuth struct {
	Username     string `hcl:"username"`
	Password     string `hcl:"password,optional" secret:"true"`
	PasswordFile string `hcl:"password_file,optional"`
}

// TLS configures the connection to an https endpoint.
type TLS struct {
	CAFile             string `hcl:"ca_file,optional"`
	CertFile           string `hcl:"cert_file,optional"`
	KeyFile            string `hcl:"key_file,optional"`
	ServerName         string `hcl:"server_name,optional"`
	InsecureSkipVerify bool   `hcl:"insecure_skip_verify,optional"`
}

// Queue configures each endpoint's queue.
type Queue struct {
	Capacity          int           `hcl:"capacity,optional"`
	MaxShards         int           `hcl:"max_shards,optional"`
	MaxSamplesPerSend int           `hcl:"max_samples_per_send,optional"`
	BatchSendDeadline time.Duration `hcl:"batch_send_deadline,optional"`
	MinBackoff        time.Duration `hcl:"min_backoff,optional"`
	MaxBackoff        time.Duration `hcl:"max_backoff,optional"`
}

// Exports of a remote_write: none.
type Exports struct{}

var (
	_ pipeline.Component[Arguments] = (*Component)(nil)
	_ pipeline.HealthReporter       = (*Component)(nil)
	_ pipeline.Validator            = (*Arguments)(nil)
	_ pipeline.Provisioner          = (*Arguments)(nil)
	_ pipeline.PathResolver         = (*Arguments)(nil)
)

// SetDefaults: Prometheus' queue defaults, a 15s interval, 30s timeouts.
func (a *Arguments) SetDefaults() {
	a.ScrapeInterval = 15 * time.Second
	a.MaxWALSize = "1GiB"
	a.MaxWALAge = 2 * time.Hour
}

func defaultQueue() Queue {
	return Queue{Capacity: 10000, MaxShards: 8, MaxSamplesPerSend: 2000, BatchSendDeadline: 5 * time.Second,
		MinBackoff: 30 * time.Millisecond, MaxBackoff: 5 * time.Second}
}

// SetDefaults of a queue block.
func (q *Queue) SetDefaults() { *q = defaultQueue() }

// SetDefaults of an endpoint block.
func (e *Endpoint) SetDefaults() { e.Timeout = 30 * time.Second }

// ResolvePaths makes credential and certificate files relative to the
// config file.
func (a *Arguments) ResolvePaths(dir string) {
	abs := func(p *string) { *p = pipeline.ResolvePath(dir, *p) }
	for i := range a.Endpoints {
		e := &a.Endpoints[i]
		abs(&e.BearerTokenFile)
		if e.BasicAuth != nil {
			abs(&e.BasicAuth.PasswordFile)
		}
		if e.TLS != nil {
			abs(&e.TLS.CAFile)
			abs(&e.TLS.CertFile)
			abs(&e.TLS.KeyFile)
		}
	}
}

// Validate checks the arguments.
func (a *Arguments) Validate() error {
	var errs []error
	if len(a.Inputs) == 0 {
		errs = append(errs, pipeline.ErrorAt("inputs", errors.New("at least one input is required")))
	}
	if a.ScrapeInterval < 100*time.Millisecond {
		errs = append(errs, pipeline.ErrorAt("scrape_interval", errors.New("must be at least 100ms")))
	}
	if len(a.Endpoints) == 0 {
		errs = append(errs, errors.New("at least one endpoint block is required"))
	}
	for name := range a.ExternalLabels {
		if !pipeline.ValidLabelName(name) {
			errs = append(errs, pipeline.ErrorAt("external_labels", fmt.Errorf("%q is not a valid label name", name)))
		}
	}
	size, err := units.ParseBase2Bytes(a.MaxWALSize)
	if err != nil || size <= 0 {
		errs = append(errs, pipeline.ErrorAt("max_wal_size", fmt.Errorf("want a size such as \"512MiB\", got %q", a.MaxWALSize)))
	}
	a.maxWALSize = int64(size)
	if a.MaxWALAge <= 0 {
		errs = append(errs, pipeline.ErrorAt("max_wal_age", errors.New("must be positive")))
	}
	if q := a.Queue; q != nil {
		if q.Capacity < 1 || q.MaxShards < 1 || q.MaxSamplesPerSend < 1 {
			errs = append(errs, pipeline.ErrorAt("queue", errors.New("capacity, max_shards and max_samples_per_send must be at least 1")))
		}
		if q.MinBackoff <= 0 || q.MaxBackoff < q.MinBackoff || q.BatchSendDeadline <= 0 {
			errs = append(errs, pipeline.ErrorAt("queue", errors.New("need 0 < min_backoff <= max_backoff and a positive batch_send_deadline")))
		}
	}
	names := map[string]bool{}
	for i := range a.Endpoints {
		e := &a.Endpoints[i]
		u, err := url.Parse(e.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, pipeline.ErrorInBlock("endpoint", i, pipeline.ErrorAt("url", errors.New("want an http:// or https:// URL"))))
			continue
		}
		if e.Timeout <= 0 {
			errs = append(errs, pipeline.ErrorInBlock("endpoint", i, pipeline.ErrorAt("timeout", errors.New("must be positive"))))
		}
		if e.BearerToken != "" && e.BearerTokenFile != "" {
			errs = append(errs, pipeline.ErrorInBlock("endpoint", i, errors.New("bearer_token and bearer_token_file are mutually exclusive")))
		}
		if ba := e.BasicAuth; ba != nil && ba.Password != "" && ba.PasswordFile != "" {
			errs = append(errs, pipeline.ErrorInBlock("endpoint", i, errors.New("basic_auth: password and password_file are mutually exclusive")))
		}
		if (e.BearerToken != "" || e.BearerTokenFile != "") && e.BasicAuth != nil {
			errs = append(errs, pipeline.ErrorInBlock("endpoint", i, errors.New("bearer token and basic_auth are mutually exclusive")))
		}
		n := e.name()
		if names[n] {
			errs = append(errs, pipeline.ErrorInBlock("endpoint", i, fmt.Errorf("two endpoints named %q: set name", n)))
		}
		names[n] = true
	}
	return errors.Join(errs...)
}

// name is the endpoint's label: its name, or its URL without credentials
// and query.
func (e *Endpoint) name() string {
	if e.Name != "" {
		return e.Name
	}
	u, err := url.Parse(e.URL)
	if err != nil {
		return e.URL
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u.String()
}

// Provision maps each endpoint to Prometheus' HTTP client config (so that
// credential files are re-read as Prometheus does) and checks that a client
// can be made from it (certificates load).
func (a *Arguments) Provision(ctx pipeline.ProvisionContext) error {
	for i := range a.Endpoints {
		e := &a.Endpoints[i]
		c := config.DefaultHTTPClientConfig
		c.BearerToken = config.Secret(e.BearerToken)
		c.BearerTokenFile = e.BearerTokenFile
		if ba := e.BasicAuth; ba != nil {
			c.BasicAuth = &config.BasicAuth{Username: ba.Username, Password: config.Secret(ba.Password), PasswordFile: ba.PasswordFile}
		}
		if t := e.TLS; t != nil {
			c.TLSConfig = config.TLSConfig{CAFile: t.CAFile, CertFile: t.CertFile, KeyFile: t.KeyFile, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify}
		}
		if len(e.Headers) > 0 {
			h := &config.Headers{Headers: map[string]config.Header{}}
			for k, v := range e.Headers {
				h.Headers[k] = config.Header{Secrets: []config.Secret{config.Secret(v)}}
			}
			c.HTTPHeaders = h
		}
		if err := c.Validate(); err != nil {
			return pipeline.ErrorInBlock("endpoint", i, err)
		}
		if _, err := config.NewClientFromConfig(c, "remote_write"); err != nil {
			return pipeline.ErrorInBlock("endpoint", i, err)
		}
		e.http = c
	}
	return nil
}

// Component is a running remote_write.
type Component struct {
	opts    pipeline.Options[Exports]
	metrics *selfMetrics
	args    atomic.Pointer[Arguments]
	kick    chan struct{}
	errLog  *slog.Logger
	// endpoints are owned by Run; keyed by endpointKey. live is a copy
	// for health checks from other goroutines.
	endpoints map[string]*endpoint
	live      atomic.Pointer[[]*endpoint]
	health    pipeline.HealthTracker
	// unreachableAfter overrides the time an endpoint may fail every send
	// before it makes the component unhealthy (tests); walFS is what WALs
	// write through (tests inject faults; the OS when nil).
	unreachableAfter time.Duration
	walFS            faultfs.FS
}

// Health: unhealthy while an endpoint's WAL cannot be written, or while
// every send to an endpoint has failed for longer than unreachableAfter
// (see checkHealth).
func (c *Component) Health() pipeline.Health { return c.health.Health() }

// minUnreachable is the least time every send may fail before the
// endpoint counts as unreachable: a scrape interval, at least 10s, so
// that one failed attempt (a restarting receiver) does not flap health.
const minUnreachable = 10 * time.Second

func (c *Component) unreachableThreshold(args *Arguments) time.Duration {
	if c.unreachableAfter > 0 {
		return c.unreachableAfter
	}
	return max(minUnreachable, args.ScrapeInterval)
}

// checkHealth sets the component's health from its endpoints and logs the
// transitions.
func (c *Component) checkHealth(args *Arguments) {
	var problems []string
	now := time.Now()
	eps := c.live.Load()
	if eps == nil {
		return
	}
	for _, e := range *eps {
		if failing, msg := e.walHealth(); failing {
			problems = append(problems, msg)
		}
		if d, err, bad := e.q.unreachable(now, c.unreachableThreshold(args)); bad {
			problems = append(problems, fmt.Sprintf("endpoint %s: every send failed for %v, %d samples pending: %v",
				e.cfg.name, d.Round(time.Second), e.q.pending.Load(), err))
		}
	}
	sort.Strings(problems)
	msg := strings.Join(problems, "; ")
	if c.health.SetOK(len(problems) == 0, msg) {
		if len(problems) == 0 {
			c.opts.Logger.Info("healthy again: every endpoint reachable and WAL writable")
		} else {
			c.opts.Logger.Error("unhealthy", "reason", msg)
		}
	}
}

// Build creates the component; nothing runs until Run.
func Build(opts pipeline.Options[Exports], args Arguments) (pipeline.Component[Arguments], error) {
	m, err := newSelfMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	c := &Component{opts: opts, metrics: m, kick: make(chan struct{}, 1), endpoints: map[string]*endpoint{},
		errLog: ratelog.New(opts.Logger, ratelog.Options{Interval: 10 * time.Second, Burst: 3})}
	c.args.Store(&args)
	opts.OnExports(Exports{})
	return c, nil
}

// Update swaps the arguments; Run reconciles its endpoints: unchanged ones
// keep their queues and WAL, changed ones restart (their WAL is kept on
// disk and resent).
func (c *Component) Update(args Arguments) (pipeline.Pending, error) {
	return pipeline.CommitFunc(func() {
		c.args.Store(&args)
		select {
		case c.kick <- struct{}{}:
		default:
		}
	}), nil
}

// Run gathers every scrape_interval and hands each gather to the endpoints.
func (c *Component) Run(ctx context.Context) error {
	defer c.stopAll()
	args := c.args.Load()
	if err := c.reconcile(ctx, args); err != nil {
		return err
	}
	t := time.NewTicker(args.ScrapeInterval)
	defer t.Stop()
	ht := time.NewTicker(healthCheckEvery)
	defer ht.Stop()
	c.health.Set(pipeline.HealthHealthy, "")
	last := c.gather(ctx, args)
	c.checkHealth(args)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ht.C:
			c.checkHealth(args)
		case <-c.kick:
			args = c.args.Load()
			if err := c.reconcile(ctx, args); err != nil {
				return err
			}
			t.Reset(args.ScrapeInterval)
		case <-t.C:
			// A tick that came due while a slow gather ran arrives right
			// after it: gathering again then would stamp a second sample
			// on every series in the same millisecond (which a receiver
			// rejects as a duplicate, or takes as a pointless one). Skip
			// it; the next tick is at most an interval away.
			if time.Since(last) < args.ScrapeInterval/2 {
				c.metrics.skippedGathers.Inc()
				continue
			}
			last = c.gather(ctx, args)
			c.checkHealth(args)
		}
	}
}

// gather samples the inputs once and hands the result to every endpoint;
// it returns when the samples were stamped.
func (c *Component) gather(ctx context.Context, args *Arguments) time.Time {
	fams, _ := gathermerge.Merge(args.Inputs, func(i int, reason string, err error) {
		id := pipeline.SourceID(args.Inputs[i])
		if id == "" {
			id = strconv.Itoa(i)
		}
		c.metrics.gatherErrors.WithLabelValues(id, reason).Inc()
		c.errLog.Error("gathering input", "input", id, "reason", reason, "err", err)
	})
	stamped := time.Now()
	now := stamped.UnixMilli()
	for _, e := range c.endpoints {
		e.append(ctx, fams, now)
	}
	return stamped
}

// healthCheckEvery is how often Run re-reads its endpoints' health.
const healthCheckEvery = time.Second

func (c *Component) stopAll() {
	for k, e := range c.endpoints {
		e.stop()
		delete(c.endpoints, k)
	}
	c.live.Store(nil)
}

// publish copies the endpoints for checkHealth.
func (c *Component) publish() {
	eps := make([]*endpoint, 0, len(c.endpoints))
	for _, e := range c.endpoints {
		eps = append(eps, e)
	}
	c.live.Store(&eps)
}

// endpointKey identifies what an endpoint's sending depends on.
func endpointKey(a *Arguments, e *Endpoint) string {
	return fmt.Sprintf("%#v|%#v|%#v|%v|%d|%v", *e, a.Queue, a.ExternalLabels, a.WAL, a.maxWALSize, a.MaxWALAge)
}

func (c *Component) reconcile(ctx context.Context, a *Arguments) error {
	want := map[string]*Endpoint{}
	for i := range a.Endpoints {
		want[endpointKey(a, &a.Endpoints[i])] = &a.Endpoints[i]
	}
	for k, e := range c.endpoints {
		if _, ok := want[k]; !ok {
			e.stop()
			c.metrics.forget(e.cfg.name)
			delete(c.endpoints, k)
		}
	}
	for k, ep := range want {
		if _, ok := c.endpoints[k]; ok {
			continue
		}
		cfg, err := c.endpointConfig(a, ep)
		if err != nil {
			return err
		}
		e := newEndpoint(cfg, c.metrics.forEndpoint(cfg.name), c.opts.Logger)
		if err := e.start(ctx); err != nil {
			return fmt.Errorf("endpoint %s: %w", cfg.name, err)
		}
		c.endpoints[k] = e
	}
	c.publish()
	return nil
}

func (c *Component) endpointConfig(a *Arguments, ep *Endpoint) (endpointConfig, error) {
	hc, err := config.NewClientFromConfig(ep.http, "remote_write")
	if err != nil {
		return endpointConfig{}, fmt.Errorf("endpoint %s: %w", ep.name(), err)
	}
	q := defaultQueue()
	if a.Queue != nil {
		q = *a.Queue
	}
	cfg := endpointConfig{
		name:     ep.name(),
		external: a.ExternalLabels,
		native:   ep.SendNativeHistograms,
		queue: queueConfig{capacity: q.Capacity, maxShards: q.MaxShards, maxSamplesPerSend: q.MaxSamplesPerSend,
			batchDeadline: q.BatchSendDeadline, minBackoff: q.MinBackoff, maxBackoff: q.MaxBackoff, shardUpdatePeriod: 10 * time.Second},
		client:      &client{url: ep.URL, http: hc, timeout: ep.Timeout, userAgent: userAgent()},
		maxWALSize:  a.maxWALSize,
		maxWALAge:   a.MaxWALAge,
		segmentSize: 32 << 20,
		walFS:       c.walFS,
	}
	if a.WAL {
		cfg.walDir = walDir(c.opts.DataPath, cfg.name)
	}
	return cfg, nil
}

// walDir is an endpoint's WAL directory: named after the endpoint, so
// that reordering blocks keeps each endpoint's backlog.
func walDir(dataPath, endpoint string) string {
	sum := sha256.Sum256([]byte(endpoint))
	return filepath.Join(dataPath, "wal", hex.EncodeToString(sum[:8]))
}

func userAgent() string {
	v := "devel"
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Path == "github.com/sluicehq/sluice" && bi.Main.Version != "" {
			v = bi.Main.Version
		}
		for _, d := range bi.Deps {
			if d.Path == "github.com/sluicehq/sluice" {
				v = d.Version
			}
		}
	}
	return "sluice/" + v
}
