package kubestatus

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/sluicehq/sluice/components/kubestatus/internal/kubewatch"
)

// kind is a resolved kind: one of the four built-in ones, or a
// group/version/resource read through the dynamic client.
type kind struct {
	name string             // "Deployment", ..., or "group/version/resource" as written
	gvr  kubewatch.Resource // generic kinds only
}

func (k kind) generic() bool { return k.gvr.Resource != "" }

// builtinResources are the built-in kinds' resources.
var builtinResources = map[string]kubewatch.Resource{
	"Deployment":  {Group: "apps", Version: "v1", Resource: "deployments"},
	"StatefulSet": {Group: "apps", Version: "v1", Resource: "statefulsets"},
	"DaemonSet":   {Group: "apps", Version: "v1", Resource: "daemonsets"},
	"Pod":         {Version: "v1", Resource: "pods"},
}

var builtinKinds = []string{"Deployment", "StatefulSet", "DaemonSet", "Pod"}

// parseKind accepts a built-in kind (any case) or "group/version/resource"
// ("v1/resource" or "/v1/resource" for the core group).
func parseKind(s string) (kind, error) {
	for _, b := range builtinKinds {
		if strings.EqualFold(s, b) {
			return kind{name: b}, nil
		}
	}
	parts := strings.Split(s, "/")
	if len(parts) == 2 {
		parts = append([]string{""}, parts...)
	}
	if len(parts) != 3 || parts[1] == "" || parts[2] == "" {
		return kind{}, fmt.Errorf("kind %q: want Deployment, StatefulSet, DaemonSet, Pod, or group/version/resource (e.g. argoproj.io/v1alpha1/applications)", s)
	}
	for _, p := range parts[1:] {
		if !dnsLabelRE.MatchString(p) {
			return kind{}, fmt.Errorf("kind %q: %q is not a valid version or resource name (resources are lower-case plurals)", s, p)
		}
	}
	if parts[0] != "" && (len(parts[0]) > 253 || !objectNameRE.MatchString(parts[0])) {
		return kind{}, fmt.Errorf("kind %q: %q is not a valid API group", s, parts[0])
	}
	return kind{name: s, gvr: kubewatch.Resource{Group: parts[0], Version: parts[1], Resource: parts[2]}}, nil
}

// scope is what one informer watches. Targets with equal scopes share the
// informer, and a reload keeps the informers of unchanged scopes.
type scope struct {
	Kind      string // kind.name
	Namespace string // "" = all namespaces
	Selector  string // label selector, "" = everything
	Name      string // field selector metadata.name, "" = any
	Rule      string // generic kinds: the status rule's key (ruleKey)
}

func (s scope) String() string {
	var b strings.Builder
	b.WriteString(s.Kind)
	if s.Namespace != "" {
		b.WriteString(" in namespace " + s.Namespace)
	} else {
		b.WriteString(" in all namespaces")
	}
	if s.Name != "" {
		b.WriteString(" named " + s.Name)
	}
	if s.Selector != "" {
		b.WriteString(" matching " + s.Selector)
	}
	return b.String()
}

// part is one way to find a workload: the objects named name (or all, when
// name is "") in the union of scopes.
type part struct {
	scopes []scope
	name   string
	ns     string
}

// target is one workload metric. Its parts are alternatives, in order: the
// first one with an object decides (the Argo CD preset's redis is the HA
// StatefulSet when that exists, else the Deployment).
type target struct {
	label     string // workload block label ("" for preset workloads)
	metric    string
	namespace string // the namespace label
	parts     []part
}

// watchTarget exports one series per object of its scopes.
type watchTarget struct {
	metric string
	scopes []scope
}

// phaseTarget is the lowest status of its members (absent ones left out).
type phaseTarget struct {
	metric    string
	namespace string
	members   []int // indexes into plan.targets
}

// plan is the arguments resolved for running, immutable, swapped by Commit.
type plan struct {
	client    clientKey
	maxSeries int
	targets   []target
	watches   []watchTarget
	phases    []phaseTarget
	scopes    map[scope]kind
	rules     map[string]*genericRule // by scope.Rule
	leader    *leaderKey              // nil: no leader election, always export
}

// clientKey identifies the client: a change means new informers for all.
type clientKey struct {
	kubeconfig, context string
}

func newPlan(a *Arguments) (*plan, error) {
	p := &plan{
		client:    clientKey{a.Kubeconfig, a.Context},
		leader:    leaderKeyOf(a.LeaderElection),
		maxSeries: a.MaxSeries,
		scopes:    map[scope]kind{},
		rules:     map[string]*genericRule{},
	}
	// namespacesFor is where a selector-based block looks: its namespace,
	// else the component's namespaces, else all of them.
	namespacesFor := func(ns string) []string {
		switch {
		case ns != "":
			return []string{ns}
		case len(a.Namespaces) > 0:
			return a.Namespaces
		}
		return []string{""}
	}
	seen := map[[2]string]string{} // (metric, namespace label) -> block
	claim := func(metric, ns, block string) error {
		for _, m := range []string{metric, metric + "_failed"} {
			if prev, ok := seen[[2]string{m, ns}]; ok {
				return fmt.Errorf("%s: metric %s{namespace=%q} is already exported by %s", block, m, ns, prev)
			}
			seen[[2]string{m, ns}] = block
		}
		return nil
	}
	byLabel := map[string]int{}
	for _, w := range a.Workloads {
		k, err := parseKind(w.Kind)
		if err != nil {
			return nil, err
		}
		ns := w.Namespace
		if ns == "" && w.Name != "" && len(a.Namespaces) == 1 {
			ns = a.Namespaces[0]
		}
		var rule string
		if k.generic() {
			r, err := newGenericRule(w.StatusPath, w.ValueMap, w.FailedValues)
			if err != nil {
				return nil, err
			}
			rule = r.key
			p.rules[rule] = r
		}
		pt := part{name: w.Name, ns: ns}
		for _, n := range namespacesFor(ns) {
			s := scope{Kind: k.name, Namespace: n, Selector: w.LabelSelector, Name: w.Name, Rule: rule}
			p.scopes[s] = k
			pt.scopes = append(pt.scopes, s)
		}
		if err := claim(w.Metric, ns, fmt.Sprintf("workload %q", w.Label)); err != nil {
			return nil, err
		}
		byLabel[w.Label] = len(p.targets)
		p.targets = append(p.targets, target{label: w.Label, metric: w.Metric, namespace: ns, parts: []part{pt}})
	}
	for _, w := range a.Watches {
		wt := watchTarget{metric: w.Metric}
		for _, ks := range w.Kinds {
			k, err := parseKind(ks)
			if err != nil {
				return nil, err
			}
			for _, n := range namespacesFor(w.Namespace) {
				s := scope{Kind: k.name, Namespace: n, Selector: w.LabelSelector}
				p.scopes[s] = k
				if !slices.Contains(wt.scopes, s) {
					wt.scopes = append(wt.scopes, s)
				}
			}
		}
		p.watches = append(p.watches, wt)
	}
	for _, ph := range a.Phases {
		pt := phaseTarget{metric: ph.Metric}
		if pt.metric == "" {
			pt.metric = ph.Label
		}
		for _, w := range ph.Workloads {
			i, ok := byLabel[w]
			if !ok {
				return nil, fmt.Errorf("phase %q: no workload block %q", ph.Label, w)
			}
			pt.members = append(pt.members, i)
		}
		pt.namespace = commonNamespace(p.targets, pt.members)
		if err := claim(pt.metric, pt.namespace, fmt.Sprintf("phase %q", ph.Label)); err != nil {
			return nil, err
		}
		p.phases = append(p.phases, pt)
	}
	for _, pr := range a.Presets {
		def, ok := presets[pr.Name]
		if !ok {
			return nil, fmt.Errorf("unknown preset %q", pr.Name)
		}
		ph := phaseTarget{metric: def.phase, namespace: pr.Namespace}
		for _, pw := range def.workloads {
			t := target{metric: pw.metric, namespace: pr.Namespace}
			for _, alt := range pw.alternatives {
				s := scope{Kind: alt.kind, Namespace: pr.Namespace, Name: alt.name}
				p.scopes[s] = kind{name: alt.kind}
				t.parts = append(t.parts, part{scopes: []scope{s}, name: alt.name, ns: pr.Namespace})
			}
			if err := claim(t.metric, pr.Namespace, fmt.Sprintf("preset %q", pr.Name)); err != nil {
				return nil, err
			}
			ph.members = append(ph.members, len(p.targets))
			p.targets = append(p.targets, t)
		}
		if err := claim(ph.metric, pr.Namespace, fmt.Sprintf("preset %q", pr.Name)); err != nil {
			return nil, err
		}
		p.phases = append(p.phases, ph)
	}
	return p, nil
}

// commonNamespace is the namespace label of a phase: that of its member
// targets when they all share one, else "" (a phase across namespaces).
func commonNamespace(targets []target, members []int) string {
	if len(members) == 0 {
		return ""
	}
	ns := targets[members[0]].namespace
	for _, m := range members[1:] {
		if targets[m].namespace != ns {
			return ""
		}
	}
	return ns
}

// sortedScopes lists the plan's scopes in a stable order.
func (p *plan) sortedScopes() []scope {
	return slices.SortedFunc(maps.Keys(p.scopes), func(a, b scope) int {
		return strings.Compare(fmt.Sprint(a), fmt.Sprint(b))
	})
}

// presetWorkload is one metric of a preset; alternatives in order.
type presetWorkload struct {
	metric       string
	alternatives []presetObject
}

type presetObject struct{ kind, name string }

type presetDef struct {
	workloads []presetWorkload
	phase     string
}

// presets: the Argo CD one yields exactly these seven workload metrics and
// argocd_phase (object names of the upstream install manifests).
var presets = map[string]presetDef{
	"argocd": {
		phase: "argocd_phase",
		workloads: []presetWorkload{
			{"argocd_application_controller_status", []presetObject{{"StatefulSet", "argocd-application-controller"}}},
			{"argocd_applicationset_controller_status", []presetObject{{"Deployment", "argocd-applicationset-controller"}}},
			{"argocd_repo_server_status", []presetObject{{"Deployment", "argocd-repo-server"}}},
			{"argocd_server_status", []presetObject{{"Deployment", "argocd-server"}}},
			{"argocd_notifications_controller_status", []presetObject{{"Deployment", "argocd-notifications-controller"}}},
			{"argocd_dex_status", []presetObject{{"Deployment", "argocd-dex-server"}}},
			{"argocd_redis_status", []presetObject{{"StatefulSet", "argocd-redis-ha-server"}, {"Deployment", "argocd-redis"}}},
		},
	},
}

func presetNames() []string { return slices.Sorted(maps.Keys(presets)) }
