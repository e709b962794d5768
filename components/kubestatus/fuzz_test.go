package kubestatus

import (
	"encoding/json"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
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
		for name, r := range map[string]Result{
			"Deployment": DeploymentStatus(d), "StatefulSet": StatefulSetStatus(s),
			"DaemonSet": DaemonSetStatus(ds), "Pod": PodStatus(p),
		} {
			if r.Status < Unknown || r.Status > Available {
				t.Fatalf("%s: status %d out of range", name, r.Status)
			}
		}
		// Available needs the generation observed and, when replicas are
		// wanted, every count at spec.replicas.
		if r := DeploymentStatus(d); r.Status == Available {
			if gen > observed || (replicas > 0 && (ready != replicas || avail != replicas || updated != replicas)) {
				t.Fatalf("Deployment Available with gen=%d observed=%d replicas=%d ready=%d avail=%d updated=%d", gen, observed, replicas, ready, avail, updated)
			}
		}
		if r := StatefulSetStatus(s); r.Status == Available && replicas > 0 && curRev != updRev {
			t.Fatal("StatefulSet Available with revisions differing")
		}
		if r := DaemonSetStatus(ds); r.Status == Available && cur > 0 && (avail != cur || updated != cur) {
			t.Fatal("DaemonSet Available with numbers lagging")
		}
		// The trimmed object decides the same.
		in := &informer{}
		for _, obj := range []any{d.DeepCopy(), s.DeepCopy(), ds.DeepCopy(), p.DeepCopy()} {
			before, _ := in.evaluate(obj)
			tr, err := in.trim(obj)
			if err != nil {
				t.Fatal(err)
			}
			after, _ := in.evaluate(tr)
			if before.Result != after.Result {
				t.Fatalf("%T: trim changed the decision: %+v -> %+v", obj, before.Result, after.Result)
			}
		}
	})
}

// FuzzGenericRule: arbitrary JSON objects through a status_path rule.
func FuzzGenericRule(f *testing.F) {
	f.Add(`{"metadata":{"name":"a"},"status":{"health":{"status":"Healthy"}}}`)
	f.Add(`{"status":{"health":{"status":3}}}`)
	f.Add(`{"status":{"health":["Healthy"]}}`)
	f.Add(`{"status":"Healthy","metadata":7}`)
	f.Add(`{"status":{"health":{"status":true}}}`)
	r, err := newGenericRule("status.health.status", map[string]int{"Healthy": 3, "Progressing": 1, "3": 2, "true": 1}, []string{"Degraded"})
	if err != nil {
		f.Fatal(err)
	}
	in := &informer{rule: r}
	f.Fuzz(func(t *testing.T, doc string) {
		var obj map[string]any
		if json.Unmarshal([]byte(doc), &obj) != nil {
			return
		}
		u := &unstructured.Unstructured{Object: obj}
		got := r.status(obj)
		if got.Status < Unknown || got.Status > Available {
			t.Fatalf("status %d", got.Status)
		}
		tr, err := in.trim(u)
		if err != nil {
			t.Fatal(err)
		}
		if again := r.status(tr.(*unstructured.Unstructured).Object); again != got {
			t.Fatalf("trim changed the decision: %+v -> %+v", got, again)
		}
	})
}
