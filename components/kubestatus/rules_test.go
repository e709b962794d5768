package kubestatus

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
)

// ruleCase is one row of the status rules table (README): an object and
// what the rules must decide for it.
type ruleCase struct {
	name   string
	obj    runtime.Object
	want   Status
	failed bool
}

func meta(name string, gen int64) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: "ns", Generation: gen}
}

func deploy(name string, replicas *int32, gen int64, st appsv1.DeploymentStatus, paused bool) *appsv1.Deployment {
	return &appsv1.Deployment{ObjectMeta: meta(name, gen), Spec: appsv1.DeploymentSpec{Replicas: replicas, Paused: paused}, Status: st}
}

func dcond(t appsv1.DeploymentConditionType, s corev1.ConditionStatus, reason string) appsv1.DeploymentCondition {
	return appsv1.DeploymentCondition{Type: t, Status: s, Reason: reason}
}

var availableTrue = dcond(appsv1.DeploymentAvailable, corev1.ConditionTrue, "MinimumReplicasAvailable")

func dstatus(observed int64, replicas, updated, ready, available int32, conds ...appsv1.DeploymentCondition) appsv1.DeploymentStatus {
	return appsv1.DeploymentStatus{ObservedGeneration: observed, Replicas: replicas, UpdatedReplicas: updated,
		ReadyReplicas: ready, AvailableReplicas: available, Conditions: conds}
}

// ruleCases covers every rule of the README table, per kind.
func ruleCases() []ruleCase {
	return []ruleCase{
		// Deployment
		{"deploy-available", deploy("d1", ptr.To[int32](3), 2, dstatus(2, 3, 3, 3, 3, availableTrue), false), Available, false},
		{"deploy-new-generation-pending", deploy("d2", ptr.To[int32](3), 3, dstatus(2, 3, 3, 3, 3, availableTrue), false), Pending, false},
		{"deploy-no-ready-pending", deploy("d3", ptr.To[int32](2), 1, dstatus(1, 2, 2, 0, 0), false), Pending, false},
		{"deploy-some-ready-running", deploy("d4", ptr.To[int32](3), 1, dstatus(1, 3, 3, 1, 1, availableTrue), false), Running, false},
		{"deploy-updated-lags-running", deploy("d5", ptr.To[int32](3), 1, dstatus(1, 4, 1, 3, 3, availableTrue), false), Running, false},
		{"deploy-available-false-running", deploy("d6", ptr.To[int32](3), 1, dstatus(1, 3, 3, 3, 3, dcond(appsv1.DeploymentAvailable, corev1.ConditionFalse, "MinimumReplicasUnavailable")), false), Running, false},
		{"deploy-no-available-condition-running", deploy("d7", ptr.To[int32](1), 1, dstatus(1, 1, 1, 1, 1), false), Running, false},
		{"deploy-replicas-default-1", deploy("d8", nil, 1, dstatus(1, 1, 1, 1, 1, availableTrue), false), Available, false},
		{"deploy-scaled-to-zero-available", deploy("d9", ptr.To[int32](0), 4, dstatus(4, 0, 0, 0, 0), false), Available, false},
		{"deploy-scaling-to-zero-running", deploy("d10", ptr.To[int32](0), 4, dstatus(4, 2, 0, 2, 2, availableTrue), false), Running, false},
		{"deploy-paused-complete-available", deploy("d11", ptr.To[int32](2), 1, dstatus(1, 2, 2, 2, 2, availableTrue), true), Available, false},
		{"deploy-paused-midway-running", deploy("d12", ptr.To[int32](2), 2, dstatus(2, 3, 1, 2, 2, availableTrue), true), Running, false},
		{"deploy-progress-deadline-failed", deploy("d13", ptr.To[int32](2), 2, dstatus(2, 3, 1, 2, 2, availableTrue,
			dcond(appsv1.DeploymentProgressing, corev1.ConditionFalse, "ProgressDeadlineExceeded")), false), Running, true},
		{"deploy-replica-failure-failed", deploy("d14", ptr.To[int32](2), 1, dstatus(1, 0, 0, 0, 0,
			dcond(appsv1.DeploymentReplicaFailure, corev1.ConditionTrue, "FailedCreate")), false), Pending, true},
		{"deploy-replica-failure-false-not-failed", deploy("d15", ptr.To[int32](1), 1, dstatus(1, 1, 1, 1, 1, availableTrue,
			dcond(appsv1.DeploymentReplicaFailure, corev1.ConditionFalse, "")), false), Available, false},
		{"deploy-negative-counts-unknown", deploy("d16", ptr.To[int32](1), 1, dstatus(1, 1, 1, -1, 1, availableTrue), false), Unknown, false},
		{"deploy-empty-status-pending", deploy("d17", ptr.To[int32](1), 1, appsv1.DeploymentStatus{}, false), Pending, false},

		// StatefulSet
		{"sts-available", sts("s1", ptr.To[int32](2), 1, 1, 2, 2, 2, "r1", "r1"), Available, false},
		{"sts-revision-lags-running", sts("s2", ptr.To[int32](2), 1, 1, 2, 2, 2, "r1", "r2"), Running, false},
		{"sts-new-generation-pending", sts("s3", ptr.To[int32](2), 2, 1, 2, 2, 2, "r1", "r1"), Pending, false},
		{"sts-no-ready-pending", sts("s4", ptr.To[int32](2), 1, 1, 2, 0, 0, "r1", "r1"), Pending, false},
		{"sts-partly-ready-running", sts("s5", ptr.To[int32](3), 1, 1, 3, 2, 2, "r1", "r1"), Running, false},
		{"sts-ready-not-available-running", sts("s6", ptr.To[int32](2), 1, 1, 2, 2, 1, "r1", "r1"), Running, false},
		{"sts-zero-available", sts("s7", ptr.To[int32](0), 1, 1, 0, 0, 0, "r1", "r1"), Available, false},
		{"sts-scaling-to-zero-running", sts("s8", ptr.To[int32](0), 1, 1, 1, 1, 1, "r1", "r1"), Running, false},

		// DaemonSet
		{"ds-available", ds("a1", 1, 1, 3, 3, 3), Available, false},
		{"ds-update-lags-running", ds("a2", 1, 1, 3, 3, 1), Running, false},
		{"ds-some-available-running", ds("a3", 1, 1, 3, 1, 3), Running, false},
		{"ds-none-available-pending", ds("a4", 1, 1, 3, 0, 0), Pending, false},
		{"ds-new-generation-pending", ds("a5", 2, 1, 3, 3, 3), Pending, false},
		{"ds-no-nodes-available", ds("a6", 1, 1, 0, 0, 0), Available, false},

		// Pod
		{"pod-ready-available", pod("p1", corev1.PodRunning, corev1.ConditionTrue, ""), Available, false},
		{"pod-running-not-ready", pod("p2", corev1.PodRunning, corev1.ConditionFalse, ""), Running, false},
		{"pod-pending", pod("p3", corev1.PodPending, corev1.ConditionFalse, ""), Pending, false},
		{"pod-image-pull-failed", pod("p4", corev1.PodPending, corev1.ConditionFalse, "ImagePullBackOff"), Pending, true},
		{"pod-crash-loop-failed", pod("p5", corev1.PodRunning, corev1.ConditionFalse, "CrashLoopBackOff"), Running, true},
		{"pod-succeeded-available", pod("p6", corev1.PodSucceeded, corev1.ConditionFalse, ""), Available, false},
		{"pod-failed", pod("p7", corev1.PodFailed, corev1.ConditionFalse, ""), Pending, true},
		{"pod-unknown-phase", pod("p8", corev1.PodUnknown, corev1.ConditionFalse, ""), Unknown, false},
		{"pod-empty-phase", pod("p9", "", "", ""), Unknown, false},
		{"pod-slow-start-not-failed", pod("p10", corev1.PodPending, corev1.ConditionFalse, "ContainerCreating"), Pending, false},
	}
}

func sts(name string, replicas *int32, gen, observed int64, cur, ready, available int32, curRev, updRev string) *appsv1.StatefulSet {
	return &appsv1.StatefulSet{ObjectMeta: meta(name, gen), Spec: appsv1.StatefulSetSpec{Replicas: replicas},
		Status: appsv1.StatefulSetStatus{ObservedGeneration: observed, Replicas: cur, ReadyReplicas: ready,
			AvailableReplicas: available, CurrentReplicas: cur, UpdatedReplicas: cur, CurrentRevision: curRev, UpdateRevision: updRev}}
}

func ds(name string, gen, observed int64, desired, available, updated int32) *appsv1.DaemonSet {
	return &appsv1.DaemonSet{ObjectMeta: meta(name, gen), Status: appsv1.DaemonSetStatus{ObservedGeneration: observed,
		DesiredNumberScheduled: desired, CurrentNumberScheduled: desired, NumberReady: available, NumberAvailable: available,
		UpdatedNumberScheduled: updated}}
}

func pod(name string, phase corev1.PodPhase, ready corev1.ConditionStatus, waiting string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: meta(name, 0), Status: corev1.PodStatus{Phase: phase}}
	if ready != "" {
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodInitialized, Status: corev1.ConditionTrue}, {Type: corev1.PodReady, Status: ready}}
	}
	if waiting != "" {
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "c", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: waiting}}}}
	}
	return p
}

// decodeTrimmed encodes a full API object as the API server would and
// decodes it into its kind's trimmed form, as a watch event would be.
func decodeTrimmed(t testing.TB, obj runtime.Object) evaluated {
	t.Helper()
	b, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	var e evaluated
	switch obj.(type) {
	case *appsv1.Deployment:
		e = new(Deployment)
	case *appsv1.StatefulSet:
		e = new(StatefulSet)
	case *appsv1.DaemonSet:
		e = new(DaemonSet)
	case *corev1.Pod:
		e = new(Pod)
	default:
		panic(fmt.Sprintf("no rule for %T", obj))
	}
	if err := json.Unmarshal(b, e); err != nil {
		t.Fatal(err)
	}
	return e
}

func evaluateObject(t testing.TB, obj runtime.Object) Result {
	return decodeTrimmed(t, obj).result()
}

// TestStatusRules: every row of the table, the full object encoded as JSON
// and decoded into the trimmed form the watch holds.
func TestStatusRules(t *testing.T) {
	for _, tc := range ruleCases() {
		t.Run(tc.name, func(t *testing.T) {
			got := evaluateObject(t, tc.obj)
			if got.Status != tc.want || got.Failed != tc.failed {
				t.Errorf("got %v failed=%v, want %v failed=%v", got.Status, got.Failed, tc.want, tc.failed)
			}
		})
	}
}

// TestTrimKeepsDecision: an object carrying what real ones do (a large
// annotation, managed fields, labels, owner references, a pod template)
// decodes to the same decision and identity as the table's bare one.
func TestTrimKeepsDecision(t *testing.T) {
	for _, tc := range ruleCases() {
		obj := tc.obj.DeepCopyObject()
		m := obj.(metav1.Object)
		m.SetAnnotations(map[string]string{"kubectl.kubernetes.io/last-applied-configuration": strings.Repeat("{...}", 300)})
		m.SetManagedFields([]metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationApply}})
		m.SetLabels(map[string]string{"app": "x"})
		m.SetOwnerReferences([]metav1.OwnerReference{{APIVersion: "v1", Kind: "X", Name: "y", UID: "z"}})
		m.SetResourceVersion("42")
		switch o := obj.(type) {
		case *appsv1.Deployment:
			o.Spec.Template.Spec = podSpecWithEnv()
		case *corev1.Pod:
			o.Spec = podSpecWithEnv()
		}
		e := decodeTrimmed(t, obj)
		got := e.result()
		if got.Status != tc.want || got.Failed != tc.failed {
			t.Errorf("%s: decoded got %v failed=%v, want %v failed=%v", tc.name, got.Status, got.Failed, tc.want, tc.failed)
		}
		if md := e.GetMeta(); md.Name != m.GetName() || md.Namespace != "ns" || md.ResourceVersion != "42" || md.Generation != m.GetGeneration() {
			t.Errorf("%s: identity lost: %+v", tc.name, md)
		}
	}
}

func podSpecWithEnv() corev1.PodSpec {
	c := corev1.Container{Name: "app", Image: "example.invalid/app:1"}
	for i := range 10 {
		c.Env = append(c.Env, corev1.EnvVar{Name: fmt.Sprintf("VAR_%d", i), Value: strings.Repeat("v", 40)})
	}
	return corev1.PodSpec{Containers: []corev1.Container{c}}
}
