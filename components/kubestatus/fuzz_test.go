package kubestatus

import (
	"encoding/json"
	"strconv"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utiljson "k8s.io/apimachinery/pkg/util/json"
)

// FuzzStatusRules feeds arbitrary status values (and spec replicas,
// generations, condition types and reasons, phases) to every rule
// function: no panic, a status in 0..3, and the invariants of the README
// table hold.
func FuzzStatusRules(f *testing.F) {
	f.Add(int32(3), int64(2), int64(2), int32(3), int32(3), int32(3), int32(3), "Available", "True", "", "r1", "r1", "Running", "CrashLoopBackOff", false)
	f.Add(int32(0), int64(1), int64(0), int32(-1), int32(0), int32(0), int32(0), "Progressing", "False", "ProgressDeadlineExceeded", "", "x", "", "", true)
	f.Add(int32(-5), int64(-1), int64(9), int32(2147483647), int32(-2147483648), int32(1), int32(0), "", "", "", "a", "b", "Weird", "ImagePullBackOff", false)
	f.Fuzz(func(t *testing.T, replicas int32, gen, observed int64, cur, ready, avail, updated int32,
		condType, condStatus, reason, curRev, updRev, phase, waiting string, paused bool) {
		m := metav1.ObjectMeta{Name: "x", Namespace: "ns", Generation: gen}
		d := &appsv1.Deployment{ObjectMeta: m, Spec: appsv1.DeploymentSpec{Replicas: &replicas, Paused: paused},
			Status: appsv1.DeploymentStatus{ObservedGeneration: observed, Replicas: cur, ReadyReplicas: ready,
				AvailableReplicas: avail, UpdatedReplicas: updated,
				Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentConditionType(condType), Status: corev1.ConditionStatus(condStatus), Reason: reason}}}}
		s := &appsv1.StatefulSet{ObjectMeta: m, Spec: appsv1.StatefulSetSpec{Replicas: &replicas},
			Status: appsv1.StatefulSetStatus{ObservedGeneration: observed, Replicas: cur, ReadyReplicas: ready,
				AvailableReplicas: avail, CurrentRevision: curRev, UpdateRevision: updRev,
				Conditions: []appsv1.StatefulSetCondition{{Type: appsv1.StatefulSetConditionType(condType), Status: corev1.ConditionStatus(condStatus)}}}}
		ds := &appsv1.DaemonSet{ObjectMeta: m, Status: appsv1.DaemonSetStatus{ObservedGeneration: observed,
			DesiredNumberScheduled: cur, NumberAvailable: avail, NumberReady: ready, UpdatedNumberScheduled: updated}}
		p := &corev1.Pod{ObjectMeta: m, Status: corev1.PodStatus{Phase: corev1.PodPhase(phase),
			Conditions:        []corev1.PodCondition{{Type: corev1.PodConditionType(condType), Status: corev1.ConditionStatus(condStatus)}},
			ContainerStatuses: []corev1.ContainerStatus{{State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: waiting}}}}}}
		td, ts := decodeTrimmed(t, d).(*Deployment), decodeTrimmed(t, s).(*StatefulSet)
		tds, tp := decodeTrimmed(t, ds).(*DaemonSet), decodeTrimmed(t, p).(*Pod)
		for name, r := range map[string]Result{
			"Deployment": DeploymentStatus(td), "StatefulSet": StatefulSetStatus(ts),
			"DaemonSet": DaemonSetStatus(tds), "Pod": PodStatus(tp),
		} {
			if r.Status < Unknown || r.Status > Available {
				t.Fatalf("%s: status %d out of range", name, r.Status)
			}
		}
		// Available needs the generation observed and, when replicas are
		// wanted, every count at spec.replicas.
		if r := DeploymentStatus(td); r.Status == Available {
			if gen > observed || (replicas > 0 && (ready != replicas || avail != replicas || updated != replicas)) {
				t.Fatalf("Deployment Available with gen=%d observed=%d replicas=%d ready=%d avail=%d updated=%d", gen, observed, replicas, ready, avail, updated)
			}
		}
		if r := StatefulSetStatus(ts); r.Status == Available && replicas > 0 && curRev != updRev {
			t.Fatal("StatefulSet Available with revisions differing")
		}
		if r := DaemonSetStatus(tds); r.Status == Available && cur > 0 && (avail != cur || updated != cur) {
			t.Fatal("DaemonSet Available with numbers lagging")
		}
		// What the watch decodes decides the same as the rules on the
		// objects as built: checked through JSON, as events arrive.
		for _, obj := range []runtime.Object{d, s, ds, p} {
			_ = evaluateObject(t, obj)
		}
	})
}

// FuzzGenericRule: arbitrary JSON objects through a status_path rule,
// against the reading of the field the dynamic client gave (an
// unstructured object: integers as int64, other numbers as float64).
func FuzzGenericRule(f *testing.F) {
	f.Add(`{"metadata":{"name":"a"},"status":{"health":{"status":"Healthy"}}}`)
	f.Add(`{"status":{"health":{"status":3}}}`)
	f.Add(`{"status":{"health":{"status":3.5e0}}}`)
	f.Add(`{"status":{"health":["Healthy"]}}`)
	f.Add(`{"status":"Healthy","metadata":7}`)
	f.Add(`{"status":{"health":{"status":true}}}`)
	f.Add(`{"status":{"health":{"status":null}}}`)
	r, err := newGenericRule("status.health.status", map[string]int{"Healthy": 3, "Progressing": 1, "3": 2, "true": 1, "3.5": 2}, []string{"Degraded"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, doc string) {
		var obj map[string]any
		if utiljson.Unmarshal([]byte(doc), &obj) != nil {
			return
		}
		got := r.status([]byte(doc))
		if got.Status < Unknown || got.Status > Available {
			t.Fatalf("status %d", got.Status)
		}
		if want := referenceGeneric(r, obj); want != got {
			t.Fatalf("%s: got %+v, the unstructured reading gives %+v", doc, got, want)
		}
		g := &genericObject{rule: r}
		if err := json.Unmarshal([]byte(doc), g); err == nil && g.result() != got {
			t.Fatalf("decoded object: %+v, want %+v", g.result(), got)
		}
	})
}

// referenceGeneric is the rule as it read unstructured objects.
func referenceGeneric(r *genericRule, obj map[string]any) Result {
	v, found, err := unstructured.NestedFieldNoCopy(obj, r.path...)
	if !found || err != nil {
		return Result{}
	}
	var s string
	switch x := v.(type) {
	case string:
		s = x
	case bool:
		s = strconv.FormatBool(x)
	case int64:
		s = strconv.FormatInt(x, 10)
	case float64:
		s = strconv.FormatFloat(x, 'g', -1, 64)
	default:
		return Result{}
	}
	return Result{Status: r.values[s], Failed: r.failed[s]}
}
