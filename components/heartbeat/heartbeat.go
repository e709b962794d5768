// Package heartbeat is the heartbeat component: every interval it tells an
// outside monitor (healthchecks.io, Cronitor, Better Stack, Uptime Kuma, a
// dead man's switch of one's own) that the agent is alive and that the
// components it watches are healthy, or that they are not. The monitor
// alerts when the signals stop, which is the one failure the agent cannot
// report itself: the agent, its node or its network being gone.
//
// It is not the heartbeat_source of docs/example/heartbeat, which is the
// walkthrough component of docs/writing-components.md and exports a gauge.
package heartbeat

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/common/config"

	"github.com/sluicehq/sluice/pipeline"
)

func init() {
	pipeline.Register(pipeline.Registration[Arguments, Exports]{
		Name:      "heartbeat",
		Stability: pipeline.StabilityExperimental,
		Summary:   "calls an outside monitor's URL every interval while the components it watches are healthy, and its fail URL when they are not",
		Example: `heartbeat "healthchecks" {
  url        = env("HEALTHCHECKS_PING_URL")   # a secret: the URL is the credential
  interval   = "1m"
  components = ["statsd_receiver.app", "metrics_sink.default"]   # empty: every component
  # fail_url  = "..."          # default: url + "/fail"
  # start_url = "..."          # called once when the component starts
}`,
		Build: Build,
	})
}

// Arguments configure a heartbeat.
type Arguments struct {
	// URL is called (POST) at every interval while the watched components
	// are healthy. Ping URLs carry their credential in the path, so all
	// three URLs are secrets.
	URL string `hcl:"url" secret:"true"`
	// FailURL is called instead, with the unhealthy components in the
	// body, while one of them is not healthy; URL + "/fail" when unset.
	FailURL string `hcl:"fail_url,optional" secret:"true"`
	// StartURL, when set, is called once each time the component starts.
	StartURL string `hcl:"start_url,optional" secret:"true"`
	// Components are the IDs of the watched components; empty means every
	// component of the config except this one.
	Components []string `hcl:"components,optional"`
	// Interval between two signals (their scheduled times).
	Interval time.Duration `hcl:"interval,optional"`
	// Timeout of one HTTP attempt.
	Timeout time.Duration `hcl:"timeout,optional"`
	// Retries are the attempts after the first that fails, within the
	// interval, waiting MinBackoff, then twice as long each time, up to
	// MaxBackoff.
	Retries    int           `hcl:"retries,optional"`
	MinBackoff time.Duration `hcl:"min_backoff,optional"`
	MaxBackoff time.Duration `hcl:"max_backoff,optional"`

	// The HTTP client, as in Prometheus' scrape and remote-write configs.
	BearerTokenFile string `hcl:"bearer_token_file,optional"`
	// ProxyURL may carry credentials (http://user:pw@proxy:3128).
	ProxyURL string `hcl:"proxy_url,optional" secret:"true"`
	TLS      *TLS   `hcl:"tls,block"`

	http    config.HTTPClientConfig
	failURL string
}

// TLS configures connections to an https URL.
type TLS struct {
	CAFile             string `hcl:"ca_file,optional"`
	CertFile           string `hcl:"cert_file,optional"`
	KeyFile            string `hcl:"key_file,optional"`
	ServerName         string `hcl:"server_name,optional"`
	InsecureSkipVerify bool   `hcl:"insecure_skip_verify,optional"`
}

// Exports of a heartbeat: none.
type Exports struct{}

var (
	_ pipeline.Component[Arguments] = (*Component)(nil)
	_ pipeline.HealthReporter       = (*Component)(nil)
	_ pipeline.Validator            = (*Arguments)(nil)
	_ pipeline.Provisioner          = (*Arguments)(nil)
	_ pipeline.PathResolver         = (*Arguments)(nil)
)

// minInterval keeps a typo ("1s" meant as "1m") from hammering a monitor
// while still allowing the short intervals of tests.
const minInterval = time.Second

// SetDefaults: a signal a minute (healthchecks.io's smallest period), a
// 10s timeout and two retries.
func (a *Arguments) SetDefaults() {
	a.Interval = time.Minute
	a.Timeout = 10 * time.Second
	a.Retries = 2
	a.MinBackoff = time.Second
	a.MaxBackoff = 10 * time.Second
}

// ResolvePaths makes credential and certificate files relative to the
// config file.
func (a *Arguments) ResolvePaths(dir string) {
	a.BearerTokenFile = pipeline.ResolvePath(dir, a.BearerTokenFile)
	if t := a.TLS; t != nil {
		t.CAFile = pipeline.ResolvePath(dir, t.CAFile)
		t.CertFile = pipeline.ResolvePath(dir, t.CertFile)
		t.KeyFile = pipeline.ResolvePath(dir, t.KeyFile)
	}
}

// Validate checks the arguments. Errors never quote a URL: they are
// credentials.
func (a *Arguments) Validate() error {
	var errs []error
	checkURL := func(name, v string) {
		if v == "" && name != "url" {
			return
		}
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, pipeline.ErrorAt(name, errors.New("want an http:// or https:// URL")))
		}
	}
	checkURL("url", a.URL)
	checkURL("fail_url", a.FailURL)
	checkURL("start_url", a.StartURL)
	checkURL("proxy_url", a.ProxyURL)
	if a.Interval < minInterval {
		errs = append(errs, pipeline.ErrorAt("interval", fmt.Errorf("must be at least %s", minInterval)))
	}
	if a.Timeout <= 0 || a.Timeout >= a.Interval {
		errs = append(errs, pipeline.ErrorAt("timeout", errors.New("must be positive and shorter than interval")))
	}
	if a.Retries < 0 || a.Retries > 10 {
		errs = append(errs, pipeline.ErrorAt("retries", errors.New("must be between 0 and 10")))
	}
	if a.MinBackoff <= 0 || a.MaxBackoff < a.MinBackoff {
		errs = append(errs, pipeline.ErrorAt("min_backoff", errors.New("need 0 < min_backoff <= max_backoff")))
	}
	seen := map[string]bool{}
	for _, id := range a.Components {
		typ, name, ok := strings.Cut(id, ".")
		if !ok || typ == "" || name == "" {
			errs = append(errs, pipeline.ErrorAt("components", fmt.Errorf("%q is not a component ID (TYPE.NAME, e.g. \"statsd_receiver.app\")", id)))
		} else if seen[id] {
			errs = append(errs, pipeline.ErrorAt("components", fmt.Errorf("%q is listed twice", id)))
		}
		seen[id] = true
	}
	a.failURL = a.FailURL
	if a.failURL == "" {
		a.failURL = strings.TrimSuffix(a.URL, "/") + "/fail"
	}
	return errors.Join(errs...)
}

// Provision maps the client arguments to Prometheus' HTTP client config
// and checks that a client can be made from it (certificates load).
func (a *Arguments) Provision(pipeline.ProvisionContext) error {
	c := config.DefaultHTTPClientConfig
	c.BearerTokenFile = a.BearerTokenFile
	if a.ProxyURL != "" {
		u, err := url.Parse(a.ProxyURL)
		if err != nil {
			return pipeline.ErrorAt("proxy_url", errors.New("not a URL"))
		}
		c.ProxyURL = config.URL{URL: u}
	}
	if t := a.TLS; t != nil {
		c.TLSConfig = config.TLSConfig{CAFile: t.CAFile, CertFile: t.CertFile, KeyFile: t.KeyFile,
			ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify}
	}
	if err := c.Validate(); err != nil {
		return err
	}
	if _, err := config.NewClientFromConfig(c, "heartbeat"); err != nil {
		return pipeline.ErrorAt("tls", err)
	}
	a.http = c
	return nil
}
