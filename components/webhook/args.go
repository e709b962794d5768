// Package webhook is the webhook_receiver component: a push API (observe,
// inc, add, set, dec, delete) and webhooks (GitLab, GitHub, Standard
// Webhooks) whose HCL rules turn events into metrics. Pushed state is
// durable: a request is answered 2xx only after its change is fsynced
// (group commit, persist.go), and restored at start.
package webhook

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/pipeline/web"
)

func init() {
	pipeline.Register(pipeline.Registration[Arguments, Exports]{
		Name:      "webhook_receiver",
		Stability: pipeline.StabilityExperimental,
		Summary:   "a token-authenticated push API and CI webhooks turned into metrics by rules; durable across restarts",
		Build:     Build,
		Example: `webhook_receiver "delivery" {
  listen = ":2112"          # or mounted on the agent server under path_prefix (default "/push/NAME")
  auth {
    tokens = [env("PUSH_TOKEN")]
  }
  metric "deployment_duration_seconds" {
    type    = "histogram"
    help    = "Duration of a deployment pipeline."
    labels  = ["pipeline", "status"]
    buckets = exponential(60, 2, 9)
  }
  webhook "gitlab_jobs" {
    kind   = "gitlab"
    secret = env("GITLAB_WEBHOOK_TOKEN")
    rule {
      when = event.object_kind == "build" && event.build_status != "running"
      observe {
        metric = "ci_job_duration_seconds"
        value  = event.build_duration
        labels = { project = event.project_name, stage = event.build_stage, status = event.build_status }
      }
    }
  }
}`,
	})
}

// Defaults.
const (
	DefaultMaxBody        = 1 << 20  // API bodies
	DefaultWebhookMaxBody = 25 << 20 // webhook bodies (GitLab's own limit is 25 MiB)
	DefaultMaxSeries      = 10000
	DefaultTolerance      = 5 * time.Minute
	DefaultDedupKeys      = 10000
)

// Arguments configure a webhook_receiver.
type Arguments struct {
	// Listen is the address of an own HTTP server. Without it the receiver
	// is mounted on the agent server under PathPrefix.
	Listen string `hcl:"listen,optional"`
	// WebConfigFile is a web config file (the exporter-toolkit format of
	// Prometheus' --web.config.file: TLS, client certificates, basic auth)
	// for the receiver's own server (listen). Default: the agent's
	// --web.config.file. Relative to the config file's directory.
	WebConfigFile string `hcl:"web_config_file,optional"`
	// PathPrefix is where the receiver is mounted on the agent server
	// (default "/push/NAME").
	PathPrefix string `hcl:"path_prefix,optional"`
	// MaxBody bounds an API request body, in bytes.
	MaxBody int64 `hcl:"max_body,optional"`
	// InsecureNoAuth accepts API requests without a token and webhooks
	// without a secret. Never the default.
	InsecureNoAuth bool `hcl:"insecure_no_auth,optional"`
	// DedupKeys bounds how many delivery IDs are remembered to drop
	// duplicates.
	DedupKeys int `hcl:"dedup_keys,optional"`

	Auth     *AuthBlock     `hcl:"auth,block"`
	Metrics  []MetricBlock  `hcl:"metric,block"`
	Webhooks []WebhookBlock `hcl:"webhook,block"`

	// Provisioned.
	tokens [][32]byte // SHA-256 of each token
	plan   *plan
}

// AuthBlock holds the API tokens.
type AuthBlock struct {
	// Tokens are accepted in X-Private-Token or Authorization: Bearer;
	// several allow rotation.
	Tokens []string `hcl:"tokens" secret:"true"`
}

// MetricBlock declares a metric that can be pushed to.
type MetricBlock struct {
	Name      string        `hcl:"name,label"`
	Type      string        `hcl:"type"`
	Help      string        `hcl:"help,optional"`
	Labels    []string      `hcl:"labels,optional"`
	Buckets   []float64     `hcl:"buckets,optional"`
	TTL       time.Duration `hcl:"ttl,optional"`
	MaxSeries int           `hcl:"max_series,optional"`
	// InitialLabelValues pre-creates every combination of these values
	// at 0 (one list per label, every label listed), so that rate() and
	// dashboards see the series before the first event; DELETE resets the
	// metric to them.
	InitialLabelValues map[string][]string `hcl:"initial_label_values,optional"`
}

// WebhookBlock is one webhook endpoint, POST {prefix}/hooks/NAME.
type WebhookBlock struct {
	Name string `hcl:"name,label"`
	// Kind: gitlab (X-Gitlab-Token), github (X-Hub-Signature-256) or
	// generic (Standard Webhooks signature).
	Kind   string `hcl:"kind"`
	Secret string `hcl:"secret,optional" secret:"true"`
	// Tolerance is how far a generic webhook's timestamp may be from now.
	Tolerance time.Duration `hcl:"tolerance,optional"`
	MaxBody   int64         `hcl:"max_body,optional"`
	Rules     []RuleBlock   `hcl:"rule,block"`
}

// RuleBlock turns a matching event into metric changes.
type RuleBlock struct {
	When    hcl.Expression `hcl:"when,optional"`
	Observe []ActionBlock  `hcl:"observe,block"`
	Inc     []ActionBlock  `hcl:"inc,block"`
	Add     []ActionBlock  `hcl:"add,block"`
	Set     []ActionBlock  `hcl:"set,block"`
	Dec     []ActionBlock  `hcl:"dec,block"`
}

// ActionBlock is one change: value and labels are expressions over event
// and headers.
type ActionBlock struct {
	Metric string         `hcl:"metric"`
	Value  hcl.Expression `hcl:"value,optional"`
	Labels hcl.Expression `hcl:"labels,optional"`
}

// Exports of a webhook_receiver.
type Exports struct {
	Metrics prometheus.Gatherer `hcl:"metrics"`
}

var (
	_ pipeline.Validator         = (*Arguments)(nil)
	_ pipeline.Provisioner       = (*Arguments)(nil)
	_ pipeline.ListenAddressUser = Arguments{}
	_ pipeline.HTTPPathUser      = Arguments{}
	_ pipeline.PathResolver      = (*Arguments)(nil)
	_ pipeline.FileReferrer      = (*Arguments)(nil)
)

// SetDefaults runs before decoding.
func (a *Arguments) SetDefaults() {
	a.MaxBody = DefaultMaxBody
	a.DedupKeys = DefaultDedupKeys
}

// Metric types and the verbs each accepts.
var verbsByType = map[string][]string{
	"counter":   {"inc", "add"},
	"gauge":     {"inc", "dec", "add", "set"},
	"histogram": {"observe"},
}

// Validate checks the arguments.
func (a *Arguments) Validate() error {
	var errs []error
	if a.Listen != "" {
		if _, _, err := net.SplitHostPort(a.Listen); err != nil {
			errs = append(errs, pipeline.ErrorAt("listen", fmt.Errorf("invalid address %q: %w", a.Listen, err)))
		}
		if a.PathPrefix != "" {
			errs = append(errs, pipeline.ErrorAt("path_prefix", errors.New("set either listen (own server) or path_prefix (agent server), not both")))
		}
	} else if a.WebConfigFile != "" {
		errs = append(errs, pipeline.ErrorAt("web_config_file", errors.New("web_config_file applies to the receiver's own server: set listen too (on the agent's server, --web.config.file applies)")))
	}
	if p := a.PathPrefix; p != "" {
		switch {
		case !strings.HasPrefix(p, "/") || p == "/":
			errs = append(errs, pipeline.ErrorAt("path_prefix", fmt.Errorf("%q must start with / and not be the root", p)))
		case path.Clean(p) != p || strings.ContainsAny(p, "?# \t"):
			errs = append(errs, pipeline.ErrorAt("path_prefix", fmt.Errorf("%q is not a clean URL path (no trailing slash, dot segments, query or spaces)", p)))
		case pipeline.IsBuiltinPath(p) || pipeline.IsBuiltinPath(p+"/"):
			errs = append(errs, pipeline.ErrorAt("path_prefix", fmt.Errorf("%q is the agent's own (/metrics, /-/..., /api/...)", p)))
		}
	}
	if a.MaxBody <= 0 {
		errs = append(errs, pipeline.ErrorAt("max_body", errors.New("must be positive")))
	}
	if a.DedupKeys < 0 {
		errs = append(errs, pipeline.ErrorAt("dedup_keys", errors.New("must not be negative")))
	}
	// Fail closed: no token is a config error, not an open API.
	if !a.InsecureNoAuth {
		switch {
		case a.Auth == nil || len(a.Auth.Tokens) == 0:
			errs = append(errs, errors.New("auth: no tokens: set auth { tokens = [...] }, or insecure_no_auth = true to accept unauthenticated pushes"))
		default:
			for i, t := range a.Auth.Tokens {
				if t == "" {
					errs = append(errs, pipeline.ErrorInBlock("auth", 0, pipeline.ErrorAt("tokens", fmt.Errorf("token %d is empty (an unset environment variable?); refusing to accept an empty token", i))))
				}
			}
		}
	}
	metrics := map[string]*MetricBlock{}
	for i := range a.Metrics {
		m := &a.Metrics[i]
		if err := m.validate(); err != nil {
			errs = append(errs, pipeline.ErrorInBlock("metric", i, err))
		}
		if metrics[m.Name] != nil {
			errs = append(errs, pipeline.ErrorInBlock("metric", i, fmt.Errorf("metric %q declared twice", m.Name)))
		}
		metrics[m.Name] = m
	}
	hooks := map[string]bool{}
	for i := range a.Webhooks {
		w := &a.Webhooks[i]
		if hooks[w.Name] {
			errs = append(errs, pipeline.ErrorInBlock("webhook", i, fmt.Errorf("webhook %q declared twice", w.Name)))
		}
		hooks[w.Name] = true
		if err := w.validate(metrics, a.InsecureNoAuth); err != nil {
			errs = append(errs, pipeline.ErrorInBlock("webhook", i, err))
		}
	}
	return errors.Join(errs...)
}

func (m *MetricBlock) validate() error {
	var errs []error
	if !pipeline.ValidMetricName(m.Name) {
		errs = append(errs, fmt.Errorf("invalid metric name %q", m.Name))
	}
	verbs, ok := verbsByType[m.Type]
	if !ok {
		errs = append(errs, pipeline.ErrorAt("type", fmt.Errorf("unknown type %q: counter, gauge or histogram", m.Type)))
	}
	_ = verbs
	seen := map[string]bool{}
	for _, l := range m.Labels {
		switch {
		case !pipeline.ValidLabelName(l):
			errs = append(errs, pipeline.ErrorAt("labels", fmt.Errorf("invalid label name %q", l)))
		case l == "le" && m.Type == "histogram":
			errs = append(errs, pipeline.ErrorAt("labels", errors.New(`label "le" is reserved for histogram buckets`)))
		case seen[l]:
			errs = append(errs, pipeline.ErrorAt("labels", fmt.Errorf("label %q twice", l)))
		}
		seen[l] = true
	}
	if len(m.Buckets) > 0 && m.Type != "histogram" {
		errs = append(errs, pipeline.ErrorAt("buckets", errors.New("only a histogram has buckets")))
	}
	if !sort.Float64sAreSorted(m.Buckets) || len(slices.Compact(slices.Clone(m.Buckets))) != len(m.Buckets) {
		errs = append(errs, pipeline.ErrorAt("buckets", errors.New("must be strictly increasing")))
	}
	if m.TTL < 0 {
		errs = append(errs, pipeline.ErrorAt("ttl", errors.New("must not be negative")))
	}
	if m.MaxSeries < 0 {
		errs = append(errs, pipeline.ErrorAt("max_series", errors.New("must not be negative (0 is the default, 10000)")))
	}
	if err := m.validateInitial(); err != nil {
		errs = append(errs, pipeline.ErrorAt("initial_label_values", err))
	}
	return errors.Join(errs...)
}

// validateInitial checks initial_label_values: every label of the metric
// and only those, each with distinct values, and no more combinations
// than max_series allows.
func (m *MetricBlock) validateInitial() error {
	if len(m.InitialLabelValues) == 0 {
		return nil
	}
	if len(m.Labels) == 0 {
		return errors.New("the metric has no labels: its one series exists once pushed to; there is nothing to pre-create")
	}
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(m.InitialLabelValues)) {
		if !slices.Contains(m.Labels, name) {
			errs = append(errs, fmt.Errorf("label %q is not among the metric's labels (%s)", name, strings.Join(m.Labels, ", ")))
		}
	}
	maxSeries := m.MaxSeries
	if maxSeries == 0 {
		maxSeries = DefaultMaxSeries
	}
	combinations := 1
	for _, l := range m.Labels {
		vs, ok := m.InitialLabelValues[l]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("label %q has no values: every combination needs a value of each label, so list all of them (%s)", l, strings.Join(m.Labels, ", ")))
			continue
		case len(vs) == 0:
			errs = append(errs, fmt.Errorf("label %q: empty list of values", l))
			continue
		case len(slices.Compact(slices.Sorted(slices.Values(vs)))) != len(vs):
			errs = append(errs, fmt.Errorf("label %q: a value is listed twice", l))
		}
		combinations = min(combinations*len(vs), maxSeries+1) // bounded: no overflow
	}
	if len(errs) == 0 && combinations > maxSeries {
		errs = append(errs, fmt.Errorf("more combinations than max_series (%d): the pre-created series count against it", maxSeries))
	}
	return errors.Join(errs...)
}

func (w *WebhookBlock) validate(metrics map[string]*MetricBlock, insecure bool) error {
	var errs []error
	switch w.Kind {
	case "gitlab", "github", "generic":
	default:
		errs = append(errs, pipeline.ErrorAt("kind", fmt.Errorf("unknown kind %q: gitlab, github or generic", w.Kind)))
	}
	if w.Secret == "" && !insecure {
		errs = append(errs, pipeline.ErrorAt("secret", errors.New("empty secret (an unset environment variable?): every webhook is verified unless insecure_no_auth = true")))
	}
	if w.Kind == "generic" && w.Secret != "" {
		if _, err := decodeWhsec(w.Secret); err != nil {
			errs = append(errs, pipeline.ErrorAt("secret", err))
		}
	}
	if w.Tolerance < 0 || w.MaxBody < 0 {
		errs = append(errs, errors.New("tolerance and max_body must not be negative"))
	}
	if len(w.Rules) == 0 {
		errs = append(errs, errors.New("no rule: a webhook without rules would accept events and change nothing"))
	}
	for i, r := range w.Rules {
		if err := r.validate(metrics); err != nil {
			errs = append(errs, pipeline.ErrorInBlock("rule", i, err))
		}
	}
	return errors.Join(errs...)
}

func (r *RuleBlock) validate(metrics map[string]*MetricBlock) error {
	var errs []error
	if err := checkVariables(r.When); err != nil {
		errs = append(errs, pipeline.ErrorAt("when", err))
	}
	n := 0
	for _, g := range r.actions() {
		for i, act := range g.blocks {
			n++
			var aerrs []error
			m := metrics[act.Metric]
			switch {
			case m == nil:
				aerrs = append(aerrs, pipeline.ErrorAt("metric", fmt.Errorf("no metric %q is declared", act.Metric)))
			case !slices.Contains(verbsByType[m.Type], g.verb):
				aerrs = append(aerrs, fmt.Errorf("cannot %s a %s (%s accepts %s)", g.verb, m.Type, act.Metric, strings.Join(verbsByType[m.Type], ", ")))
			}
			if act.Value == nil && (g.verb == "observe" || g.verb == "set" || g.verb == "add") {
				aerrs = append(aerrs, fmt.Errorf("%s needs a value", g.verb))
			}
			if err := checkVariables(act.Value); err != nil {
				aerrs = append(aerrs, pipeline.ErrorAt("value", err))
			}
			if err := checkVariables(act.Labels); err != nil {
				aerrs = append(aerrs, pipeline.ErrorAt("labels", err))
			}
			if act.Labels == nil && m != nil && len(m.Labels) > 0 {
				aerrs = append(aerrs, pipeline.ErrorAt("labels", fmt.Errorf("metric %s has labels %v: set labels = { ... }", m.Name, m.Labels)))
			}
			if err := errors.Join(aerrs...); err != nil {
				errs = append(errs, pipeline.ErrorInBlock(g.verb, i, err))
			}
		}
	}
	if n == 0 {
		errs = append(errs, errors.New("no action: add observe, inc, add, set or dec blocks"))
	}
	return errors.Join(errs...)
}

type actionGroup struct {
	verb   string
	blocks []ActionBlock
}

func (r *RuleBlock) actions() []actionGroup {
	return []actionGroup{{"observe", r.Observe}, {"inc", r.Inc}, {"add", r.Add}, {"set", r.Set}, {"dec", r.Dec}}
}

// checkVariables refuses variables other than event and headers.
func checkVariables(e hcl.Expression) error {
	if e == nil {
		return nil
	}
	for _, tr := range e.Variables() {
		if root := tr.RootName(); root != "event" && root != "headers" {
			return fmt.Errorf("unknown variable %q: rules see only event (the decoded JSON body) and headers (lower-case names)", root)
		}
	}
	return nil
}

// ResolvePaths makes a relative web_config_file relative to the config
// file's directory.
func (a *Arguments) ResolvePaths(configDir string) {
	a.WebConfigFile = pipeline.ResolvePath(configDir, a.WebConfigFile)
}

// ReferencedFiles makes the web config file part of the arguments: an
// edit is checked at the next reload, and the watcher reloads when it
// changes. The running server re-reads it on every connection anyway.
func (a *Arguments) ReferencedFiles() []string {
	if a.WebConfigFile == "" {
		return nil
	}
	return []string{a.WebConfigFile}
}

// Provision checks the web config file (a broken one is a load error at
// web_config_file), hashes the tokens and compiles the plan.
func (a *Arguments) Provision(pipeline.ProvisionContext) error {
	if err := web.ValidateWebConfig(a.WebConfigFile); err != nil {
		return pipeline.ErrorAt("web_config_file", err)
	}
	a.tokens = nil
	if a.Auth != nil {
		for _, t := range a.Auth.Tokens {
			a.tokens = append(a.tokens, hashToken(t))
		}
	}
	p, err := newPlan(a)
	if err != nil {
		return err
	}
	a.plan = p
	return nil
}

// ListenAddresses implements pipeline.ListenAddressUser.
func (a Arguments) ListenAddresses() []pipeline.ListenAddress {
	if a.Listen == "" {
		return nil
	}
	return []pipeline.ListenAddress{{Network: "tcp", Address: a.Listen, Attr: "listen"}}
}

// HTTPPaths implements pipeline.HTTPPathUser: the subtree it mounts.
func (a Arguments) HTTPPaths(id string) []string {
	if a.Listen != "" {
		return nil
	}
	return []string{a.prefix(id) + "/"}
}

func (a Arguments) prefix(id string) string {
	if a.PathPrefix != "" {
		return a.PathPrefix
	}
	return DefaultPrefix(id)
}

// DefaultPrefix is "/push/NAME" for the ID "webhook_receiver.NAME".
func DefaultPrefix(id string) string {
	_, name, ok := strings.Cut(id, ".")
	if !ok {
		name = id
	}
	return "/push/" + name
}
