package kubestatus

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/sluicehq/sluice/components/kubestatus/internal/kubewatch"
	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/ratelog"
)

// Interface guards.
var (
	_ pipeline.Component[Arguments] = (*Component)(nil)
	_ pipeline.HealthReporter       = (*Component)(nil)
	_ pipeline.Validator            = (*Arguments)(nil)
	_ pipeline.Provisioner          = (*Arguments)(nil)
	_ pipeline.Validator            = (*Workload)(nil)
	_ pipeline.Validator            = (*Watch)(nil)
	_ pipeline.Validator            = (*Phase)(nil)
	_ pipeline.Validator            = (*Preset)(nil)
	_ prometheus.Collector          = (*Component)(nil)
)

// Component is a running kubernetes_status_source.
type Component struct {
	opts   pipeline.Options[Exports]
	self   *selfMetrics
	errLog *slog.Logger

	plan atomic.Pointer[plan]
	kick chan struct{} // Commit -> Run: reconcile informers with the plan

	// maxObjectBytes bounds a watch event (0: kubewatch's default); tests
	// lower it.
	maxObjectBytes int

	// newClients connects; tests replace it.
	newClients func(*plan) (*clients, error)
	// onEvent, when set (tests, benchmarks), runs after a handler has set
	// an object's status.
	onEvent func(s scope, event string, r objResult)

	// informers by scope: written by Run, read by scrapes and Health.
	mu        sync.RWMutex
	informers map[scope]*informer
	clientErr error

	// Run's own: the client the informers use.
	cl    *clients
	clKey clientKey

	health pipeline.HealthTracker // Since survives recomputation in Health

	// text is the encoded series (GatherText) and when they last changed.
	text textCache

	// leading is whether this replica holds the Lease (leader_election);
	// Run's election campaigns for it.
	leading  leadership
	election *election

	// The API server probe (probe.go): the current client's prober, what
	// it learnt, and its timing (tests shorten it).
	probe            atomic.Pointer[prober]
	contact          contact
	probeEvery       time.Duration
	unreachableAfter time.Duration
}

// Build creates the component; it connects to nothing (Run does).
func Build(opts pipeline.Options[Exports], args Arguments) (pipeline.Component[Arguments], error) {
	return build(opts, args)
}

func build(opts pipeline.Options[Exports], args Arguments) (*Component, error) {
	c := &Component{
		opts:       opts,
		kick:       make(chan struct{}, 1),
		informers:  map[scope]*informer{},
		newClients: connect,
		probeEvery: defaultProbeEvery, unreachableAfter: defaultUnreachableAfter,
		errLog: ratelog.New(opts.Logger, ratelog.Options{Interval: 10 * time.Second, Burst: 5}),
	}
	p := args.plan
	if p == nil { // not provisioned (direct calls in tests)
		var err error
		if p, err = newPlan(&args); err != nil {
			return nil, err
		}
	}
	c.plan.Store(p)
	var err error
	if c.self, err = newSelfMetrics(opts.Registerer, c); err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	if err := reg.Register(c); err != nil {
		return nil, err
	}
	opts.OnExports(Exports{Metrics: textGatherer{reg, c}})
	return c, nil
}

// connect builds the clients: the kubeconfig file when set, else the
// in-cluster config, else $KUBECONFIG or ~/.kube/config.
func connect(p *plan) (*clients, error) {
	var cfg *rest.Config
	var err error
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	overrides := &clientcmd.ConfigOverrides{CurrentContext: p.client.context}
	switch {
	case p.client.kubeconfig != "":
		path := p.client.kubeconfig
		if rest, ok := strings.CutPrefix(path, "~/"); ok {
			if home, herr := os.UserHomeDir(); herr == nil {
				path = home + "/" + rest
			}
		}
		rules = &clientcmd.ClientConfigLoadingRules{ExplicitPath: path}
		cfg, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides).ClientConfig()
	default:
		cfg, err = rest.InClusterConfig()
		if err != nil {
			cfg, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides).ClientConfig()
			if err != nil {
				err = fmt.Errorf("not running in a cluster, and no kubeconfig: %w", err)
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("kubernetes client config: %w", err)
	}
	return clientsFor(cfg)
}

func clientsFor(cfg *rest.Config) (*clients, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.UserAgent = "sluice kubernetes_status_source"
	kw, err := kubewatch.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	return &clients{kw: kw, probe: readyzProber(kw)}, nil
}

// Run starts the informers of the plan and reconciles them with every new
// plan until ctx ends; then it stops them all.
func (c *Component) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	probeCtx, stopProbe := context.WithCancel(ctx)
	wg.Add(1)
	go func() { defer wg.Done(); c.probeLoop(probeCtx) }()
	defer func() {
		stopProbe()
		c.mu.Lock()
		infs := c.informers
		c.informers = map[scope]*informer{}
		c.mu.Unlock()
		for _, in := range infs {
			in.stop()
		}
		wg.Wait()
		c.election.stop() // releases the Lease: the standby takes over at once
		c.election = nil
		c.leading.set(false, "")
		c.changed()
		c.cl = nil
	}()
	for {
		err := c.reconcile(ctx, &wg)
		if err == nil {
			err = c.elect(ctx)
		}
		if err != nil {
			c.mu.Lock()
			c.clientErr = err
			c.mu.Unlock()
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-c.kick:
		}
	}
}

// reconcile starts the informers of new scopes and stops those of scopes
// no longer needed; informers of unchanged scopes keep running with their
// statuses, so a reload never drops a metric to Unknown.
func (c *Component) reconcile(ctx context.Context, wg *sync.WaitGroup) error {
	p := c.plan.Load()
	var stop []*informer
	if c.cl == nil || c.clKey != p.client {
		cl, err := c.newClients(p)
		if err != nil {
			return err
		}
		c.mu.Lock()
		for s, in := range c.informers {
			stop = append(stop, in)
			delete(c.informers, s)
		}
		c.clientErr = nil
		c.mu.Unlock()
		c.cl, c.clKey = cl, p.client
		c.probe.Store(&cl.probe)
	}
	var start []*informer
	for _, s := range p.sortedScopes() {
		c.mu.RLock()
		_, ok := c.informers[s]
		c.mu.RUnlock()
		if ok {
			continue
		}
		in, err := c.newInformer(c.cl, s, p.scopes[s], p.rules[s.Rule])
		if err != nil {
			return fmt.Errorf("informer for %s: %w", s, err)
		}
		start = append(start, in)
	}
	c.mu.Lock()
	for _, in := range start {
		c.informers[in.scope] = in
	}
	for s, in := range c.informers {
		if _, ok := p.scopes[s]; !ok {
			stop = append(stop, in)
			delete(c.informers, s)
		}
	}
	c.mu.Unlock()
	for _, in := range start {
		in.start(ctx, wg)
	}
	for _, in := range stop {
		in.stop()
	}
	c.changed()
	return nil
}

// elect starts, restarts (a changed leader_election block or client) or
// stops the leader election to match the plan.
func (c *Component) elect(ctx context.Context) error {
	want := c.plan.Load().leader
	if c.election != nil && want != nil && c.election.key == *want && c.election.kw == c.cl.kw {
		return nil
	}
	c.election.stop()
	c.election = nil
	c.leading.set(false, "")
	c.changed()
	if want == nil {
		return nil
	}
	e, err := startElection(ctx, c.cl.kw, *want, func(leader bool, holder string) {
		c.leading.set(leader, holder)
		c.changed()
		if leader {
			c.opts.Logger.Info("leading: exporting", "lease", want.namespace+"/"+want.name, "identity", want.identity)
		} else {
			c.opts.Logger.Info("standby: not exporting", "lease", want.namespace+"/"+want.name, "leader", holder)
		}
	})
	if err != nil {
		return err
	}
	c.election = e
	return nil
}

// exporting reports whether this replica exports: always without leader
// election, only as the leader with it.
func (c *Component) exporting(p *plan) bool {
	if p.leader == nil {
		return true
	}
	leader, _ := c.leading.get()
	return leader
}

// Update readies a new plan. Informers are keyed by scope, so Commit only
// swaps the plan and wakes Run, which starts what is new and stops what is
// gone; it works as well when Run is not running (the next Run starts
// from the plan).
func (c *Component) Update(args Arguments) (pipeline.Pending, error) {
	p := args.plan
	if p == nil {
		var err error
		if p, err = newPlan(&args); err != nil {
			return nil, err
		}
	}
	return pipeline.CommitFunc(func() {
		c.plan.Store(p)
		select {
		case c.kick <- struct{}{}:
		default:
		}
		c.changed()
	}), nil
}

// observed is called by every handler after it set an object's status.
func (c *Component) observed(in *informer, event string, r objResult) {
	c.changed()
	c.self.events.WithLabelValues(in.scope.Kind, event).Inc()
	c.self.lastEvent.SetToCurrentTime()
	if f := c.onEvent; f != nil {
		f(in.scope, event, r)
	}
}

// Health is unhealthy while the client cannot be built, a list/watch
// fails (e.g. forbidden: the message names the scope and the API error),
// or the API server has not answered the probe for unreachableAfter.
func (c *Component) Health() pipeline.Health {
	c.mu.RLock()
	var msgs []string
	if c.clientErr != nil {
		msgs = append(msgs, c.clientErr.Error())
	}
	unsynced := 0
	for _, in := range c.informers {
		if err := in.err(); err != nil {
			msgs = append(msgs, err.Error())
		}
		if !in.synced() {
			unsynced++
		}
	}
	c.mu.RUnlock()
	if msg, down := c.unreachable(); down {
		msgs = append(msgs, msg)
	}
	slices.Sort(msgs)
	state, msg := pipeline.HealthHealthy, ""
	switch {
	case len(msgs) > 0:
		state = pipeline.HealthUnhealthy
		if len(msgs) > 3 {
			msgs = append(msgs[:3], fmt.Sprintf("and %d more", len(msgs)-3))
		}
		msg = strings.Join(msgs, "; ")
	case unsynced > 0:
		state, msg = pipeline.HealthUnknown, fmt.Sprintf("%d informers waiting for their initial list", unsynced)
	}
	c.health.Set(state, msg)
	return c.health.Health()
}

// Describe sends nothing: the series follow the plan (unchecked collector).
func (c *Component) Describe(chan<- *prometheus.Desc) {}

// presence says why a target has the status it has.
type presence int

const (
	present  presence = iota // an object decides
	unsynced                 // an informer has not synced: Unknown
	absent                   // synced, and no object: Unknown ("not installed")
)

// targetResult reads a workload target's status from its informers.
func (c *Component) targetResult(t *target) (Result, presence) {
	for _, pt := range t.parts {
		var r Result
		found, allSynced := false, true
		for _, s := range pt.scopes {
			in := c.informers[s]
			if in == nil || !in.synced() {
				allSynced = false
				continue
			}
			rr, ok := in.lookup(pt.ns, pt.name)
			if !ok {
				continue
			}
			if !found || rr.Status < r.Status {
				r.Status = rr.Status
			}
			r.Failed = r.Failed || rr.Failed
			found = true
		}
		switch {
		case found:
			return r, present
		case !allSynced:
			return Result{}, unsynced
		}
	}
	return Result{}, absent
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

var (
	workloadHelp = "Workload status: 0 Unknown, 1 Pending, 2 Running, 3 Available (kubernetes_status_source)."
	failedHelp   = "1 when the workload reports a failure (ProgressDeadlineExceeded, ReplicaFailure, a failed or crash-looping pod), else 0."
	phaseHelp    = "Available (3) only when every listed workload is Available, else the lowest status; workloads with no object are left out."
)

// Collect exports the workload, phase and watch gauges from the statuses
// the event handlers set.
func (c *Component) Collect(ch chan<- prometheus.Metric) {
	descs := map[string]*prometheus.Desc{}
	c.eachSeries(func(name, help string, labels []string, values []string, v float64) {
		d := descs[name]
		if d == nil {
			d = prometheus.NewDesc(name, help, labels, nil)
			descs[name] = d
		}
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, values...)
	})
}

var (
	nsLabels    = []string{"namespace"}
	watchLabels = []string{"kind", "name", "namespace"} // sorted by name, as exposed
)

// eachSeries calls emit for every exported series (none on a standby),
// labels sorted by name. Collect and GatherText both read the series
// through it, so that the two cannot differ.
func (c *Component) eachSeries(emit func(name, help string, labels, values []string, v float64)) {
	p := c.plan.Load()
	if !c.exporting(p) {
		return // a standby replica: the leader exports the cluster's series
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	c.eachTargetSeries(p, emit)
	c.eachWatchSeries(p, emit)
}

// eachTargetSeries emits the workload and phase series (under c.mu).
func (c *Component) eachTargetSeries(p *plan, emit func(name, help string, labels, values []string, v float64)) {
	results := make([]Result, len(p.targets))
	pres := make([]presence, len(p.targets))
	for i := range p.targets {
		t := &p.targets[i]
		results[i], pres[i] = c.targetResult(t)
		ns := []string{t.namespace}
		emit(t.metric, workloadHelp, nsLabels, ns, float64(results[i].Status))
		emit(t.metric+"_failed", failedHelp, nsLabels, ns, b2f(results[i].Failed))
	}
	for _, ph := range p.phases {
		status, considered := Available, 0
		for _, m := range ph.members {
			switch pres[m] {
			case absent:
				continue // not installed: does not hold the phase down
			case unsynced:
				status = Unknown
			default:
				status = min(status, results[m].Status)
			}
			considered++
		}
		if considered == 0 {
			status = Unknown
		}
		emit(ph.metric, phaseHelp, nsLabels, []string{ph.namespace}, float64(status))
	}
}

// eachWatchSeries emits the watch blocks' series (under c.mu), at most
// max_series of them.
func (c *Component) eachWatchSeries(p *plan, emit func(name, help string, labels, values []string, v float64)) {
	type seriesKey struct{ metric, ns, kind, name string }
	seen := map[seriesKey]bool{}
	dropped := 0
	for _, w := range p.watches {
		failed := w.metric + "_failed"
		for _, s := range w.scopes {
			in := c.informers[s]
			if in == nil {
				continue
			}
			in.each(func(o objResult) {
				k := seriesKey{w.metric, o.namespace, s.Kind, o.name}
				if seen[k] {
					return
				}
				if len(seen) >= p.maxSeries {
					dropped++
					return
				}
				seen[k] = true
				values := []string{s.Kind, o.name, o.namespace}
				emit(w.metric, workloadHelp, watchLabels, values, float64(o.Status))
				emit(failed, failedHelp, watchLabels, values, b2f(o.Failed))
			})
		}
	}
	c.self.dropped.Set(float64(dropped))
}
