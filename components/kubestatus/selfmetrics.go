package kubestatus

import "github.com/prometheus/client_golang/prometheus"

type selfMetrics struct {
	events      *prometheus.CounterVec
	lastEvent   prometheus.Gauge
	relists     *prometheus.CounterVec
	watchErrors *prometheus.CounterVec
	badObjects  *prometheus.CounterVec
	// droppedEvents counts watch events and list items skipped: larger
	// than the bound, or not decodable into the kind's trimmed form.
	droppedEvents *prometheus.CounterVec
	dropped       prometheus.Gauge
	// probeFailures counts the API server probes that failed (probe.go).
	probeFailures prometheus.Counter
}

func newSelfMetrics(reg prometheus.Registerer, c *Component) (*selfMetrics, error) {
	m := &selfMetrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_kubernetes_events_total",
			Help: "Informer events handled, by kind and type (add, update, delete).",
		}, []string{"kind", "type"}),
		lastEvent: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_kubernetes_last_event_timestamp_seconds",
			Help: "Unix time of the last informer event handled.",
		}),
		relists: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_kubernetes_relists_total",
			Help: "Lists after an informer's first (after an expired resource version, a dropped connection or an API server restart), by kind.",
		}, []string{"kind"}),
		watchErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_kubernetes_watch_errors_total",
			Help: "List/watch failures by kind and reason: expired (resource version too old: relist) or error (retried with backoff).",
		}, []string{"kind", "reason"}),
		badObjects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_kubernetes_bad_objects_total",
			Help: "Objects from the API server that could not be evaluated (dropped), by kind.",
		}, []string{"kind"}),
		droppedEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_kubernetes_dropped_events_total",
			Help: "Watch events and list items skipped, by kind and reason: oversized (larger than 4 MiB) or undecodable (not JSON, or fields of the wrong type); the object keeps its last status.",
		}, []string{"kind", "reason"}),
		dropped: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_kubernetes_series_dropped",
			Help: "Watch series not exported at the last scrape because max_series was reached.",
		}),
		probeFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_kubernetes_api_probe_failures_total",
			Help: "Probes of the API server that got no answer (refused, timed out, not ready).",
		}),
	}
	for _, col := range []prometheus.Collector{m.events, m.lastEvent, m.relists, m.watchErrors, m.badObjects, m.droppedEvents, m.dropped, m.probeFailures, informerCollector{c}, leaderCollector{c}} {
		if err := reg.Register(col); err != nil {
			return nil, err
		}
	}
	return m, nil
}

var (
	syncedDesc = prometheus.NewDesc("sluice_kubernetes_informer_synced",
		"1 when the informer's initial list has been handled, else 0.",
		[]string{"kind", "namespace", "label_selector", "name"}, nil)
	objectsDesc = prometheus.NewDesc("sluice_kubernetes_watched_objects",
		"Objects the informer holds.",
		[]string{"kind", "namespace", "label_selector", "name"}, nil)
	apiUpDesc = prometheus.NewDesc("sluice_kubernetes_api_up",
		"1 when the last probe of the API server (GET /readyz every 5s) was answered, else 0 (the exported statuses may be stale).",
		nil, nil)
	contactAgeDesc = prometheus.NewDesc("sluice_kubernetes_api_contact_age_seconds",
		"Seconds since the API server last answered a probe: how stale the exported statuses may be.",
		nil, nil)
)

var leaderDesc = prometheus.NewDesc("sluice_kubernetes_leader",
	"With leader_election: 1 while this replica holds the Lease and exports, 0 while it is a standby.",
	[]string{"lease", "identity"}, nil)

// leaderCollector reports this replica's part in the leader election.
type leaderCollector struct{ c *Component }

func (leaderCollector) Describe(ch chan<- *prometheus.Desc) { ch <- leaderDesc }

func (lc leaderCollector) Collect(ch chan<- prometheus.Metric) {
	k := lc.c.plan.Load().leader
	if k == nil {
		return
	}
	leader, _ := lc.c.leading.get()
	ch <- prometheus.MustNewConstMetric(leaderDesc, prometheus.GaugeValue, b2f(leader), k.namespace+"/"+k.name, k.identity)
}

// informerCollector reports the running informers.
type informerCollector struct{ c *Component }

func (informerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- syncedDesc
	ch <- objectsDesc
	ch <- contactAgeDesc
	ch <- apiUpDesc
}

func (ic informerCollector) Collect(ch chan<- prometheus.Metric) {
	if age, up, ok := ic.c.contactAge(); ok {
		ch <- prometheus.MustNewConstMetric(contactAgeDesc, prometheus.GaugeValue, age.Seconds())
		ch <- prometheus.MustNewConstMetric(apiUpDesc, prometheus.GaugeValue, b2f(up))
	}
	ic.c.mu.RLock()
	defer ic.c.mu.RUnlock()
	seen := map[scope]bool{}
	for s, in := range ic.c.informers {
		s.Rule = "" // not a label: two rules over one scope report once
		if seen[s] {
			continue
		}
		seen[s] = true
		v := 0.0
		if in.synced() {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(syncedDesc, prometheus.GaugeValue, v, s.Kind, s.Namespace, s.Selector, s.Name)
		ch <- prometheus.MustNewConstMetric(objectsDesc, prometheus.GaugeValue, float64(in.count()), s.Kind, s.Namespace, s.Selector, s.Name)
	}
}
