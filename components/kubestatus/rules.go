package kubestatus

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// Status is a workload's status, the value of its gauge. The encoding is
// fixed: alerts compare against these numbers.
type Status int

// Statuses, lowest first.
const (
	Unknown   Status = 0 // not synced yet, no such object, or unreadable status
	Pending   Status = 1 // asked for, nothing serving yet (or a new generation not yet observed)
	Running   Status = 2 // something serves, but not everything asked for is ready
	Available Status = 3 // everything asked for is ready and up to date
)

func (s Status) String() string {
	switch s {
	case Pending:
		return "Pending"
	case Running:
		return "Running"
	case Available:
		return "Available"
	}
	return "Unknown"
}

// Result is what the rules decide for one object: its status and whether it
// reports a failure (the <metric>_failed gauge).
type Result struct {
	Status Status
	Failed bool
}

// replicasOf is spec.replicas with the API server's default of 1 when unset.
func replicasOf(p *int32) int32 {
	if p == nil {
		return 1
	}
	return *p
}

// DeploymentStatus applies the Deployment rules (README, "Status rules").
func DeploymentStatus(d *appsv1.Deployment) Result {
	var r Result
	for _, c := range d.Status.Conditions {
		switch {
		case c.Type == appsv1.DeploymentProgressing && c.Reason == "ProgressDeadlineExceeded":
			r.Failed = true
		case c.Type == appsv1.DeploymentReplicaFailure && c.Status == corev1.ConditionTrue:
			r.Failed = true
		}
	}
	want := replicasOf(d.Spec.Replicas)
	st := d.Status
	switch {
	case want < 0 || st.ReadyReplicas < 0 || st.AvailableReplicas < 0 || st.UpdatedReplicas < 0:
		r.Status = Unknown // corrupt counts: decide nothing
	case d.Generation > st.ObservedGeneration:
		r.Status = Pending
	case want == 0:
		// Scaled to zero on purpose: Available once no pod is left.
		if st.Replicas == 0 {
			r.Status = Available
		} else {
			r.Status = Running
		}
	case st.ReadyReplicas == 0:
		r.Status = Pending
	case conditionTrue(d.Status.Conditions, appsv1.DeploymentAvailable) &&
		st.UpdatedReplicas == want && st.AvailableReplicas == want && st.ReadyReplicas == want:
		r.Status = Available
	default:
		r.Status = Running
	}
	return r
}

func conditionTrue(cs []appsv1.DeploymentCondition, t appsv1.DeploymentConditionType) bool {
	for _, c := range cs {
		if c.Type == t {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// StatefulSetStatus applies the StatefulSet rules.
func StatefulSetStatus(s *appsv1.StatefulSet) Result {
	var r Result
	for _, c := range s.Status.Conditions {
		if c.Type == "ReplicaFailure" && c.Status == corev1.ConditionTrue {
			r.Failed = true
		}
	}
	want := replicasOf(s.Spec.Replicas)
	st := s.Status
	switch {
	case want < 0 || st.ReadyReplicas < 0 || st.AvailableReplicas < 0:
		r.Status = Unknown
	case s.Generation > st.ObservedGeneration:
		r.Status = Pending
	case want == 0:
		if st.Replicas == 0 {
			r.Status = Available
		} else {
			r.Status = Running
		}
	case st.ReadyReplicas == 0:
		r.Status = Pending
	case st.ReadyReplicas == want && st.AvailableReplicas == want && st.CurrentRevision == st.UpdateRevision:
		r.Status = Available
	default:
		r.Status = Running
	}
	return r
}

// DaemonSetStatus applies the DaemonSet rules.
func DaemonSetStatus(d *appsv1.DaemonSet) Result {
	var r Result
	for _, c := range d.Status.Conditions {
		if c.Type == "ReplicaFailure" && c.Status == corev1.ConditionTrue {
			r.Failed = true
		}
	}
	st := d.Status
	switch {
	case st.DesiredNumberScheduled < 0 || st.NumberAvailable < 0 || st.UpdatedNumberScheduled < 0:
		r.Status = Unknown
	case d.Generation > st.ObservedGeneration:
		r.Status = Pending
	case st.DesiredNumberScheduled == 0:
		// No node matches: nothing is asked for, and nothing is missing.
		r.Status = Available
	case st.NumberAvailable == 0:
		r.Status = Pending
	case st.NumberAvailable == st.DesiredNumberScheduled && st.UpdatedNumberScheduled == st.DesiredNumberScheduled:
		r.Status = Available
	default:
		r.Status = Running
	}
	return r
}

// failingWaitReasons are container waiting reasons that mean the pod will
// not start without a change (not a slow start).
var failingWaitReasons = map[string]bool{
	"CrashLoopBackOff":           true,
	"ImagePullBackOff":           true,
	"ErrImagePull":               true,
	"InvalidImageName":           true,
	"CreateContainerConfigError": true,
	"CreateContainerError":       true,
}

// PodStatus applies the Pod rules: phase plus the Ready condition.
func PodStatus(p *corev1.Pod) Result {
	var r Result
	for _, cs := range p.Status.ContainerStatuses {
		if cs.State.Waiting != nil && failingWaitReasons[cs.State.Waiting.Reason] {
			r.Failed = true
		}
	}
	ready := false
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			ready = c.Status == corev1.ConditionTrue
		}
	}
	switch p.Status.Phase {
	case corev1.PodPending:
		r.Status = Pending
	case corev1.PodRunning:
		if ready {
			r.Status = Available
		} else {
			r.Status = Running
		}
	case corev1.PodSucceeded:
		// Ran to completion: everything asked for was done.
		r.Status = Available
	case corev1.PodFailed:
		r.Status = Pending
		r.Failed = true
	default: // "Unknown", empty or an unheard-of phase
		r.Status = Unknown
	}
	return r
}
