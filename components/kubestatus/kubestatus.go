// Package kubestatus is the kubernetes_status_source component: one gauge
// per Kubernetes workload whose value encodes its status (Unknown=0,
// Pending=1, Running=2, Available=3), set the moment a watch event
// arrives, with an Argo CD preset.
//
// Reading order:
//
//	kubestatus.go       arguments, validation, registration
//	plan.go             arguments resolved into watch scopes and targets (Provision)
//	rules.go            the trimmed objects and the status rules per kind (README, "Status rules")
//	generic.go          "group/version/resource" kinds: status_path + value_map
//	informer.go         one list+watch per scope and the statuses it holds
//	internal/kubewatch  the API client: list, watch, decoding into trimmed objects
//	component.go        Build, Run, Update (informer reuse), Health, the exported series
//	text.go             the exported series encoded for metrics_sink (encoded.Gatherer)
//	leader.go           leader election on a coordination.k8s.io Lease
//	probe.go            the API server probe
//	selfmetrics.go      sluice_kubernetes_* self-metrics
package kubestatus

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/sluicehq/sluice/pipeline"
)

// Name is the component's HCL block type.
const Name = "kubernetes_status_source"

// Defaults.
const (
	DefaultWatchMetric = "sluice_workload_status"
	// DefaultMaxSeries bounds the series watch blocks export (one per
	// object); objects beyond it are counted, not exported.
	DefaultMaxSeries = 50000
)

func init() {
	pipeline.Register(pipeline.Registration[Arguments, Exports]{
		Name:      Name,
		Stability: pipeline.StabilityExperimental,
		Summary:   "workload status (Unknown=0, Pending=1, Running=2, Available=3) from Kubernetes watch events, with an Argo CD preset",
		Example: `kubernetes_status_source "argocd" {
  namespaces = ["argocd"]
  preset "argocd" { namespace = "argocd" }
}`,
		Build: Build,
	})
}

// Arguments configure a kubernetes_status_source.
type Arguments struct {
	// Kubeconfig is a kubeconfig file; empty: the in-cluster config, else
	// $KUBECONFIG (or ~/.kube/config).
	Kubeconfig string `hcl:"kubeconfig,optional"`
	// Context selects a context of the kubeconfig (default: its current one).
	Context string `hcl:"context,optional"`
	// Namespaces, when set, restricts every watch to these namespaces
	// (namespaced list/watch only: a Role in each suffices).
	Namespaces []string   `hcl:"namespaces,optional"`
	MaxSeries  int        `hcl:"max_series,optional"`
	Workloads  []Workload `hcl:"workload,block"`
	Watches    []Watch    `hcl:"watch,block"`
	Phases     []Phase    `hcl:"phase,block"`
	Presets    []Preset   `hcl:"preset,block"`
	// LeaderElection, for replicas of a cluster-scoped agent: only the
	// holder of the Lease exports (leader.go).
	LeaderElection *LeaderElection `hcl:"leader_election,block"`

	plan *plan // Provision
}

// Workload is one `workload "LABEL"` block: one named object (or the
// objects a label selector matches) -> its own metric.
type Workload struct {
	Label         string `hcl:"label,label"`
	Kind          string `hcl:"kind"`
	Namespace     string `hcl:"namespace,optional"`
	Name          string `hcl:"name,optional"`
	LabelSelector string `hcl:"label_selector,optional"`
	Metric        string `hcl:"metric"`
	// StatusPath and ValueMap are for "group/version/resource" kinds: the
	// dotted path of a string (or number, bool) in the object, and what
	// each of its values means (0..3). FailedValues set <metric>_failed.
	StatusPath   string         `hcl:"status_path,optional"`
	ValueMap     map[string]int `hcl:"value_map,optional"`
	FailedValues []string       `hcl:"failed_values,optional"`
}

// Watch is one `watch "LABEL"` block: every matching object ->
// <metric>{namespace,kind,name}.
type Watch struct {
	Label         string   `hcl:"label,label"`
	Kinds         []string `hcl:"kinds"`
	Namespace     string   `hcl:"namespace,optional"`
	LabelSelector string   `hcl:"label_selector,optional"`
	Metric        string   `hcl:"metric,optional"`
}

// Phase is one `phase "LABEL"` block: Available only when every listed
// workload is Available, else the lowest status (workloads whose object
// does not exist are left out).
type Phase struct {
	Label     string   `hcl:"label,label"`
	Workloads []string `hcl:"workloads"`
	Metric    string   `hcl:"metric,optional"` // default: the block's label
}

// Preset is one `preset "NAME"` block; "argocd" is the only preset.
type Preset struct {
	Name      string `hcl:"name,label"`
	Namespace string `hcl:"namespace"`
}

// Exports of a kubernetes_status_source.
type Exports struct {
	Metrics prometheus.Gatherer `hcl:"metrics"`
}

// SetDefaults implements pipeline.SetDefaulter.
func (a *Arguments) SetDefaults() { a.MaxSeries = DefaultMaxSeries }

// SetDefaults implements pipeline.SetDefaulter.
func (w *Watch) SetDefaults() { w.Metric = DefaultWatchMetric }

var (
	// dnsLabelRE is a namespace name (RFC 1123 label).
	dnsLabelRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	// objectNameRE is an object name (RFC 1123 subdomain).
	objectNameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`)
)

func checkMetric(m string) error {
	if !pipeline.ValidMetricName(m) {
		return fmt.Errorf("%q is not a valid Prometheus metric name", m)
	}
	return nil
}

func checkNamespace(ns string) error {
	if len(ns) > 63 || !dnsLabelRE.MatchString(ns) {
		return fmt.Errorf("%q is not a valid namespace name", ns)
	}
	return nil
}

func checkSelector(s string) error {
	if s == "" {
		return nil
	}
	if _, err := labels.Parse(s); err != nil {
		return fmt.Errorf("bad label selector: %w", err)
	}
	return nil
}

// Validate implements pipeline.Validator for a workload block.
func (w *Workload) Validate() error {
	var errs []error
	k, err := parseKind(w.Kind)
	if err != nil {
		errs = append(errs, pipeline.ErrorAt("kind", err))
	}
	switch {
	case w.Name == "" && w.LabelSelector == "":
		errs = append(errs, pipeline.ErrorAt("name", errors.New("set name or label_selector")))
	case w.Name != "" && w.LabelSelector != "":
		errs = append(errs, pipeline.ErrorAt("label_selector", errors.New("set name or label_selector, not both")))
	case w.Name != "" && (len(w.Name) > 253 || !objectNameRE.MatchString(w.Name)):
		errs = append(errs, pipeline.ErrorAt("name", fmt.Errorf("%q is not a valid object name", w.Name)))
	}
	if err := checkSelector(w.LabelSelector); err != nil {
		errs = append(errs, pipeline.ErrorAt("label_selector", err))
	}
	if w.Namespace != "" {
		if err := checkNamespace(w.Namespace); err != nil {
			errs = append(errs, pipeline.ErrorAt("namespace", err))
		}
	}
	if err := checkMetric(w.Metric); err != nil {
		errs = append(errs, pipeline.ErrorAt("metric", err))
	}
	if err == nil {
		if k.generic() {
			if w.StatusPath == "" {
				errs = append(errs, pipeline.ErrorAt("status_path", fmt.Errorf("kind %q is a group/version/resource: status_path is required", w.Kind)))
			}
			if len(w.ValueMap) == 0 {
				errs = append(errs, pipeline.ErrorAt("value_map", fmt.Errorf("kind %q is a group/version/resource: value_map is required", w.Kind)))
			}
			for v, s := range w.ValueMap {
				if s < int(Unknown) || s > int(Available) {
					errs = append(errs, pipeline.ErrorAt("value_map", fmt.Errorf("value %q maps to %d: statuses are 0 (Unknown) to 3 (Available)", v, s)))
				}
			}
			if w.StatusPath != "" {
				if _, err := parseStatusPath(w.StatusPath); err != nil {
					errs = append(errs, pipeline.ErrorAt("status_path", err))
				}
			}
		} else {
			if w.StatusPath != "" || len(w.ValueMap) > 0 || len(w.FailedValues) > 0 {
				errs = append(errs, pipeline.ErrorAt("status_path", fmt.Errorf("status_path, value_map and failed_values are only for group/version/resource kinds; %s has built-in rules", k.name)))
			}
		}
	}
	return errors.Join(errs...)
}

// Validate implements pipeline.Validator for a watch block.
func (w *Watch) Validate() error {
	var errs []error
	if len(w.Kinds) == 0 {
		errs = append(errs, pipeline.ErrorAt("kinds", errors.New("list at least one kind")))
	}
	for _, s := range w.Kinds {
		k, err := parseKind(s)
		switch {
		case err != nil:
			errs = append(errs, pipeline.ErrorAt("kinds", err))
		case k.generic():
			errs = append(errs, pipeline.ErrorAt("kinds", fmt.Errorf("kind %q: watch blocks take Deployment, StatefulSet, DaemonSet or Pod; use a workload block with status_path and value_map for other resources", s)))
		}
	}
	if err := checkSelector(w.LabelSelector); err != nil {
		errs = append(errs, pipeline.ErrorAt("label_selector", err))
	}
	if w.Namespace != "" {
		if err := checkNamespace(w.Namespace); err != nil {
			errs = append(errs, pipeline.ErrorAt("namespace", err))
		}
	}
	if err := checkMetric(w.Metric); err != nil {
		errs = append(errs, pipeline.ErrorAt("metric", err))
	}
	return errors.Join(errs...)
}

// Validate implements pipeline.Validator for a phase block.
func (p *Phase) Validate() error {
	var errs []error
	if len(p.Workloads) == 0 {
		errs = append(errs, pipeline.ErrorAt("workloads", errors.New("list at least one workload")))
	}
	m := p.Metric
	if m == "" {
		m = p.Label
	}
	if err := checkMetric(m); err != nil {
		errs = append(errs, pipeline.ErrorAt("metric", fmt.Errorf("%w (the metric defaults to the block's label)", err)))
	}
	return errors.Join(errs...)
}

// Validate implements pipeline.Validator for a preset block.
func (p *Preset) Validate() error {
	var errs []error
	if _, ok := presets[p.Name]; !ok {
		errs = append(errs, fmt.Errorf("unknown preset %q (known: %s)", p.Name, strings.Join(presetNames(), ", ")))
	}
	if err := checkNamespace(p.Namespace); err != nil {
		errs = append(errs, pipeline.ErrorAt("namespace", err))
	}
	return errors.Join(errs...)
}

// Validate implements pipeline.Validator: what needs several blocks.
func (a *Arguments) Validate() error {
	var errs []error
	for _, ns := range a.Namespaces {
		if err := checkNamespace(ns); err != nil {
			errs = append(errs, pipeline.ErrorAt("namespaces", err))
		}
	}
	if a.MaxSeries < 1 {
		errs = append(errs, pipeline.ErrorAt("max_series", errors.New("must be at least 1")))
	}
	if len(a.Workloads)+len(a.Watches)+len(a.Presets) == 0 {
		errs = append(errs, errors.New("nothing to watch: add a workload, watch or preset block"))
	}
	allowed := func(ns string) bool { return len(a.Namespaces) == 0 || slices.Contains(a.Namespaces, ns) }
	names := map[string]bool{}
	for i, w := range a.Workloads {
		names[w.Label] = true
		ns := w.Namespace
		if ns == "" && w.Name != "" {
			if len(a.Namespaces) != 1 {
				errs = append(errs, pipeline.ErrorInBlock("workload", i, pipeline.ErrorAt("namespace", fmt.Errorf("workload %q names an object: set its namespace", w.Label))))
			}
			continue
		}
		if ns != "" && !allowed(ns) {
			errs = append(errs, pipeline.ErrorInBlock("workload", i, pipeline.ErrorAt("namespace", fmt.Errorf("namespace %q is not in namespaces", ns))))
		}
	}
	for i, w := range a.Watches {
		if w.Namespace != "" && !allowed(w.Namespace) {
			errs = append(errs, pipeline.ErrorInBlock("watch", i, pipeline.ErrorAt("namespace", fmt.Errorf("namespace %q is not in namespaces", w.Namespace))))
		}
	}
	for i, p := range a.Presets {
		if !allowed(p.Namespace) {
			errs = append(errs, pipeline.ErrorInBlock("preset", i, pipeline.ErrorAt("namespace", fmt.Errorf("namespace %q is not in namespaces", p.Namespace))))
		}
	}
	for i, p := range a.Phases {
		for _, w := range p.Workloads {
			if !names[w] {
				errs = append(errs, pipeline.ErrorInBlock("phase", i, pipeline.ErrorAt("workloads", fmt.Errorf("no workload block %q", w))))
			}
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	// Series identity: a metric name with its namespace label is exported
	// by one block only.
	if _, err := newPlan(a); err != nil {
		return err
	}
	return nil
}

// Provision implements pipeline.Provisioner: the arguments resolved into
// scopes and targets, once per load.
func (a *Arguments) Provision(pipeline.ProvisionContext) error {
	p, err := newPlan(a)
	if err != nil {
		return err
	}
	a.plan = p
	return nil
}
