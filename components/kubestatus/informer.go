package kubestatus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// clients are what informers list and watch through.
type clients struct {
	kube kubernetes.Interface
	dyn  dynamic.Interface
	// probe asks the API server for a sign of life (nil: not probed, as
	// with fake clientsets).
	probe prober
}

// objResult is what the rules decided for one object.
type objResult struct {
	namespace, name string
	Result
}

// informer is one scope's trimmed informer and the statuses of its
// objects, set by its event handlers.
type informer struct {
	scope scope
	kind  kind
	inf   cache.SharedIndexInformer
	reg   cache.ResourceEventHandlerRegistration
	c     *Component
	rule  *genericRule

	cancel context.CancelFunc
	done   chan struct{}

	mu   sync.RWMutex
	objs map[string]objResult // by namespace/name

	lists   atomic.Int64 // lists and watch-lists (initial + relists)
	lastErr atomic.Pointer[error]
}

// newInformer builds (does not start) the informer of a scope.
func (c *Component) newInformer(cl *clients, s scope, k kind, rule *genericRule) (*informer, error) {
	in := &informer{scope: s, kind: k, c: c, rule: rule, objs: map[string]objResult{}}
	opts := func(o *metav1.ListOptions) {
		o.LabelSelector = s.Selector
		if s.Name != "" {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", s.Name).String()
		}
	}
	var list func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error)
	var watchFn func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error)
	var example runtime.Object
	// client tells the reflector whether streaming lists are supported
	// (fake clientsets say they are not).
	var client any
	switch k.name {
	case "Deployment":
		api := cl.kube.AppsV1().Deployments(s.Namespace)
		list = func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return api.List(ctx, o) }
		watchFn, example, client = api.Watch, &appsv1.Deployment{}, cl.kube
	case "StatefulSet":
		api := cl.kube.AppsV1().StatefulSets(s.Namespace)
		list = func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return api.List(ctx, o) }
		watchFn, example, client = api.Watch, &appsv1.StatefulSet{}, cl.kube
	case "DaemonSet":
		api := cl.kube.AppsV1().DaemonSets(s.Namespace)
		list = func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return api.List(ctx, o) }
		watchFn, example, client = api.Watch, &appsv1.DaemonSet{}, cl.kube
	case "Pod":
		api := cl.kube.CoreV1().Pods(s.Namespace)
		list = func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return api.List(ctx, o) }
		watchFn, example, client = api.Watch, &corev1.Pod{}, cl.kube
	default:
		if !k.generic() || cl.dyn == nil {
			return nil, fmt.Errorf("kind %q: no client", k.name)
		}
		var api dynamic.ResourceInterface = cl.dyn.Resource(k.gvr)
		if s.Namespace != "" {
			api = cl.dyn.Resource(k.gvr).Namespace(s.Namespace)
		}
		list = func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return api.List(ctx, o) }
		watchFn, example, client = api.Watch, &unstructured.Unstructured{}, cl.dyn
	}
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			opts(&o)
			in.listed()
			obj, err := list(ctx, o)
			if err == nil {
				in.lastErr.Store(nil)
			}
			return obj, err
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			opts(&o)
			if o.SendInitialEvents != nil && *o.SendInitialEvents {
				in.listed() // a streaming list (WatchList) is a list too
			}
			w, err := watchFn(ctx, o)
			if err == nil {
				in.lastErr.Store(nil)
			}
			return w, err
		},
	}
	in.inf = cache.NewSharedIndexInformer(cache.ToListWatcherWithWatchListSemantics(lw, client), example, 0, cache.Indexers{})
	if err := in.inf.SetTransform(in.trim); err != nil {
		return nil, err
	}
	if err := in.inf.SetWatchErrorHandlerWithContext(in.watchError); err != nil {
		return nil, err
	}
	reg, err := in.inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { in.set(obj, "add") },
		UpdateFunc: func(_, obj any) { in.set(obj, "update") },
		DeleteFunc: in.delete,
	})
	if err != nil {
		return nil, err
	}
	in.reg = reg
	return in, nil
}

// listed counts a list; every one after the first is a relist.
func (in *informer) listed() {
	if in.lists.Add(1) > 1 {
		in.c.self.relists.WithLabelValues(in.scope.Kind).Inc()
	}
}

// start runs the informer until stop.
func (in *informer) start(ctx context.Context, wg *sync.WaitGroup) {
	ctx, in.cancel = context.WithCancel(ctx)
	in.done = make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(in.done)
		in.inf.RunWithContext(ctx)
	}()
}

// stop stops the informer and waits for it.
func (in *informer) stop() {
	if in.cancel != nil {
		in.cancel()
		<-in.done
	}
}

// synced: the initial list has been delivered to the handlers.
func (in *informer) synced() bool { return in.reg != nil && in.reg.HasSynced() }

// err is the last list/watch error not yet followed by a success.
func (in *informer) err() error {
	if p := in.lastErr.Load(); p != nil {
		return *p
	}
	return nil
}

// watchError replaces client-go's default handler (which logs through
// klog): the reflector retries with backoff after it returns.
func (in *informer) watchError(_ context.Context, _ *cache.Reflector, err error) {
	switch {
	case errors.Is(err, io.EOF):
		return // the server closed the watch: a normal re-watch
	case apierrors.IsResourceExpired(err), apierrors.IsGone(err):
		// The resource version is too old: the reflector relists. Counted,
		// not a health problem.
		in.c.self.watchErrors.WithLabelValues(in.scope.Kind, "expired").Inc()
		return
	}
	in.c.self.watchErrors.WithLabelValues(in.scope.Kind, "error").Inc()
	e := fmt.Errorf("%s: %w", in.scope, err)
	in.lastErr.Store(&e)
	in.c.errLog.Warn("list/watch failed; retrying", "scope", in.scope.String(), "err", err)
}

// trim drops what the rules do not read, before the object is stored:
// managed fields, annotations, labels, owner references, the pod template,
// a pod's spec and most of its container statuses. A cluster with 10k
// Deployments then costs a few MB, not hundreds.
func (in *informer) trim(obj any) (any, error) {
	if m, ok := obj.(metav1.Object); ok {
		m.SetManagedFields(nil)
		m.SetAnnotations(nil)
		m.SetLabels(nil)
		m.SetOwnerReferences(nil)
		m.SetFinalizers(nil)
	}
	switch o := obj.(type) {
	case *appsv1.Deployment:
		o.Spec = appsv1.DeploymentSpec{Replicas: o.Spec.Replicas, Paused: o.Spec.Paused}
		for i := range o.Status.Conditions {
			o.Status.Conditions[i].Message = ""
		}
	case *appsv1.StatefulSet:
		o.Spec = appsv1.StatefulSetSpec{Replicas: o.Spec.Replicas}
		for i := range o.Status.Conditions {
			o.Status.Conditions[i].Message = ""
		}
	case *appsv1.DaemonSet:
		o.Spec = appsv1.DaemonSetSpec{}
		for i := range o.Status.Conditions {
			o.Status.Conditions[i].Message = ""
		}
	case *corev1.Pod:
		o.Spec = corev1.PodSpec{}
		st := corev1.PodStatus{Phase: o.Status.Phase}
		for _, c := range o.Status.Conditions {
			if c.Type == corev1.PodReady {
				st.Conditions = append(st.Conditions, corev1.PodCondition{Type: c.Type, Status: c.Status})
			}
		}
		for _, cs := range o.Status.ContainerStatuses {
			if cs.State.Waiting != nil && failingWaitReasons[cs.State.Waiting.Reason] {
				st.ContainerStatuses = append(st.ContainerStatuses, corev1.ContainerStatus{
					Name:  cs.Name,
					State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: cs.State.Waiting.Reason}},
				})
			}
		}
		o.Status = st
	case *unstructured.Unstructured:
		if in.rule != nil {
			return in.rule.trim(o), nil
		}
	}
	return obj, nil
}

// evaluate applies the kind's rules.
func (in *informer) evaluate(obj any) (objResult, bool) {
	var r Result
	var m metav1.Object
	switch o := obj.(type) {
	case *appsv1.Deployment:
		r, m = DeploymentStatus(o), o
	case *appsv1.StatefulSet:
		r, m = StatefulSetStatus(o), o
	case *appsv1.DaemonSet:
		r, m = DaemonSetStatus(o), o
	case *corev1.Pod:
		r, m = PodStatus(o), o
	case *unstructured.Unstructured:
		if in.rule == nil {
			return objResult{}, false
		}
		r, m = in.rule.status(o.Object), o
	default:
		return objResult{}, false
	}
	return objResult{namespace: m.GetNamespace(), name: m.GetName(), Result: r}, true
}

// set is the add and update handler: the gauge changes as the event
// arrives.
func (in *informer) set(obj any, event string) {
	res, ok := in.evaluate(obj)
	if !ok {
		in.c.self.badObjects.WithLabelValues(in.scope.Kind).Inc()
		return
	}
	key := res.namespace + "/" + res.name
	in.mu.Lock()
	in.objs[key] = res
	in.mu.Unlock()
	in.c.observed(in, event, res)
}

// delete is the delete handler; obj may be a DeletedFinalStateUnknown
// when the watch missed the deletion and a relist found it gone.
func (in *informer) delete(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	m, err := metaOf(obj)
	if err != nil {
		in.c.self.badObjects.WithLabelValues(in.scope.Kind).Inc()
		return
	}
	key := m.GetNamespace() + "/" + m.GetName()
	in.mu.Lock()
	delete(in.objs, key)
	in.mu.Unlock()
	in.c.observed(in, "delete", objResult{namespace: m.GetNamespace(), name: m.GetName()})
}

func metaOf(obj any) (metav1.Object, error) {
	if m, ok := obj.(metav1.Object); ok && m != nil {
		return m, nil
	}
	return nil, fmt.Errorf("not an object: %T", obj)
}

// lookup returns the result of the object named name (any when name is "")
// matching: the lowest status and whether any failed; found is false when
// no object matches.
func (in *informer) lookup(ns, name string) (r Result, found bool) {
	in.mu.RLock()
	defer in.mu.RUnlock()
	if name != "" {
		if ns != "" {
			o, ok := in.objs[ns+"/"+name]
			return o.Result, ok
		}
	}
	for _, o := range in.objs {
		if name != "" && o.name != name {
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
	for _, o := range in.objs {
		f(o)
	}
}

func (in *informer) count() int {
	in.mu.RLock()
	defer in.mu.RUnlock()
	return len(in.objs)
}
