package kubestatus

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/sluicehq/sluice/components/kubestatus/internal/kubewatch"
)

// clients are what informers list and watch through.
type clients struct {
	kw *kubewatch.Client
	// probe asks the API server for a sign of life (nil: not probed).
	probe prober
}

// objResult is what the rules decided for one object.
type objResult struct {
	namespace, name string
	Result
}

// objKey names an object in an informer.
type objKey struct{ namespace, name string }

// informer is one scope's list+watch and the statuses of its objects,
// set as events arrive. Objects are not stored: each event's trimmed
// object is evaluated and only its Result is kept.
type informer struct {
	scope scope
	kind  kind
	c     *Component
	rule  *genericRule
	watch *kubewatch.Watch

	cancel context.CancelFunc
	done   chan struct{}

	mu   sync.RWMutex
	objs map[objKey]Result
	// seen is the objects listed by the list in progress (nil between
	// lists): ListDone deletes the others.
	seen map[objKey]struct{}
	// namespaces interns namespace names: every object of a namespace
	// shares one string.
	namespaces map[string]string
	// sorted is objs' keys by name, then namespace (the order of the
	// exposed series), rebuilt by sortedKeys after an object came or went
	// (nil then); a status change keeps it.
	sorted []objKey

	hasSynced atomic.Bool
	lists     atomic.Int64 // lists (initial + relists)
	lastErr   atomic.Pointer[error]
}

// newInformer builds (does not start) the informer of a scope.
func (c *Component) newInformer(cl *clients, s scope, k kind, rule *genericRule) (*informer, error) {
	if cl == nil || cl.kw == nil {
		return nil, fmt.Errorf("kind %q: no client", k.name)
	}
	in := &informer{scope: s, kind: k, c: c, rule: rule, objs: map[objKey]Result{}, namespaces: map[string]string{}}
	var res kubewatch.Resource
	var newObj func() kubewatch.Object
	switch k.name {
	case "Deployment":
		newObj = func() kubewatch.Object { return new(Deployment) }
	case "StatefulSet":
		newObj = func() kubewatch.Object { return new(StatefulSet) }
	case "DaemonSet":
		newObj = func() kubewatch.Object { return new(DaemonSet) }
	case "Pod":
		newObj = func() kubewatch.Object { return new(Pod) }
	default:
		if !k.generic() || rule == nil {
			return nil, fmt.Errorf("kind %q: no status rule", k.name)
		}
		newObj = func() kubewatch.Object { return &genericObject{rule: rule} }
	}
	if k.generic() {
		res = k.gvr
	} else {
		res = builtinResources[k.name]
	}
	in.watch = &kubewatch.Watch{
		Client: cl.kw, Resource: res, Namespace: s.Namespace, LabelSelector: s.Selector,
		New: newObj, Handler: in, MaxObjectBytes: c.maxObjectBytes,
	}
	if s.Name != "" {
		in.watch.FieldSelector = "metadata.name=" + s.Name
	}
	return in, nil
}

// start runs the informer until stop.
func (in *informer) start(ctx context.Context, wg *sync.WaitGroup) {
	ctx, in.cancel = context.WithCancel(ctx)
	in.done = make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(in.done)
		in.watch.Run(ctx)
	}()
}

// stop stops the informer and waits for it.
func (in *informer) stop() {
	if in.cancel != nil {
		in.cancel()
		<-in.done
	}
}

// synced: the initial list has been handled.
func (in *informer) synced() bool { return in.hasSynced.Load() }

// err is the last list/watch error not yet followed by a success.
func (in *informer) err() error {
	if p := in.lastErr.Load(); p != nil {
		return *p
	}
	return nil
}

// ListStart implements kubewatch.Handler; every list after the first is
// a relist.
func (in *informer) ListStart() {
	if in.lists.Add(1) > 1 {
		in.c.self.relists.WithLabelValues(in.scope.Kind).Inc()
	}
	in.mu.Lock()
	in.seen = map[objKey]struct{}{}
	in.mu.Unlock()
}

// ListDone implements kubewatch.Handler: objects the list did not return
// were deleted while the watch was not looking.
func (in *informer) ListDone() {
	var gone []objKey
	in.mu.Lock()
	for k := range in.objs {
		if _, ok := in.seen[k]; !ok {
			gone = append(gone, k)
			delete(in.objs, k)
			in.sorted = nil
		}
	}
	in.seen = nil
	in.mu.Unlock()
	in.hasSynced.Store(true)
	in.c.changed() // synced: Unknown may turn into absent
	for _, k := range gone {
		in.c.observed(in, "delete", objResult{namespace: k.namespace, name: k.name})
	}
}

// Upsert implements kubewatch.Handler: the gauge changes as the event
// arrives.
func (in *informer) Upsert(obj kubewatch.Object) {
	e, ok := obj.(evaluated)
	m := obj.GetMeta()
	if !ok || m.Name == "" {
		in.c.self.badObjects.WithLabelValues(in.scope.Kind).Inc()
		return
	}
	r := e.result()
	in.mu.Lock()
	k := objKey{in.intern(m.Namespace), m.Name}
	_, had := in.objs[k]
	in.objs[k] = r
	if !had {
		in.sorted = nil
	}
	if in.seen != nil {
		in.seen[k] = struct{}{}
	}
	in.mu.Unlock()
	event := "add"
	if had {
		event = "update"
	}
	in.c.observed(in, event, objResult{namespace: k.namespace, name: k.name, Result: r})
}

// intern returns the shared copy of a namespace name (under in.mu).
func (in *informer) intern(ns string) string {
	if s, ok := in.namespaces[ns]; ok {
		return s
	}
	in.namespaces[ns] = ns
	return ns
}

// Delete implements kubewatch.Handler.
func (in *informer) Delete(m *kubewatch.Meta) {
	k := objKey{m.Namespace, m.Name}
	in.mu.Lock()
	delete(in.objs, k)
	in.sorted = nil
	in.mu.Unlock()
	in.c.observed(in, "delete", objResult{namespace: k.namespace, name: k.name})
}

// Contact implements kubewatch.Handler: a list or watch was answered.
func (in *informer) Contact() { in.lastErr.Store(nil) }

// Dropped implements kubewatch.Handler: an event or list item skipped
// (too large, or not decodable); the object keeps its last status (a
// relist does not take a known object's undecodable item for a deletion).
func (in *informer) Dropped(m *kubewatch.Meta, reason string, err error) {
	if m != nil && m.Name != "" {
		in.mu.Lock()
		if in.seen != nil {
			in.seen[objKey{in.intern(m.Namespace), m.Name}] = struct{}{}
		}
		in.mu.Unlock()
	}
	in.c.self.droppedEvents.WithLabelValues(in.scope.Kind, reason).Inc()
	in.c.errLog.Warn("watch event dropped", "scope", in.scope.String(), "reason", reason, "err", err)
}

// Failed implements kubewatch.Handler: the watch retries with backoff
// after it returns.
func (in *informer) Failed(err error, expired bool) {
	if expired {
		// The resource version is too old: the watch relists. Counted,
		// not a health problem.
		in.c.self.watchErrors.WithLabelValues(in.scope.Kind, "expired").Inc()
		return
	}
	in.c.self.watchErrors.WithLabelValues(in.scope.Kind, "error").Inc()
	e := fmt.Errorf("%s: %w", in.scope, err)
	in.lastErr.Store(&e)
	in.c.errLog.Warn("list/watch failed; retrying", "scope", in.scope.String(), "err", err)
}

// lookup returns the result of the object named name (any when name is "")
// matching: the lowest status and whether any failed; found is false when
// no object matches.
func (in *informer) lookup(ns, name string) (r Result, found bool) {
	in.mu.RLock()
	defer in.mu.RUnlock()
	if name != "" && ns != "" {
		o, ok := in.objs[objKey{ns, name}]
		return o, ok
	}
	for k, o := range in.objs {
		if name != "" && k.name != name {
			continue
		}
		if !found || o.Status < r.Status {
			r.Status = o.Status
		}
		r.Failed = r.Failed || o.Failed
		found = true
	}
	return r, found
}

// each calls f for every object.
func (in *informer) each(f func(objResult)) {
	in.mu.RLock()
	defer in.mu.RUnlock()
	for k, o := range in.objs {
		f(objResult{namespace: k.namespace, name: k.name, Result: o})
	}
}

// eachSorted calls f for every object in the order of the exposed series
// (by name, then namespace), sorting only after objects came or went.
func (in *informer) eachSorted(f func(k objKey, r Result)) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.sorted == nil && len(in.objs) > 0 {
		in.sorted = slices.SortedFunc(maps.Keys(in.objs), func(a, b objKey) int {
			if c := strings.Compare(a.name, b.name); c != 0 {
				return c
			}
			return strings.Compare(a.namespace, b.namespace)
		})
	}
	for _, k := range in.sorted {
		f(k, in.objs[k])
	}
}

func (in *informer) count() int {
	in.mu.RLock()
	defer in.mu.RUnlock()
	return len(in.objs)
}
