package kubestatus

import "github.com/sluicehq/sluice/components/kubestatus/internal/kubewatch"

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

// The trimmed objects: the JSON decoder fills only these fields of a
// watched object and skips the rest without allocating it (a pod template,
// managed fields and annotations are never held, not even for a moment
// beyond the event's bytes). Objects are not stored: an event's object is
// evaluated and dropped; only its Result is kept.

// Condition is a status condition as the rules read it.
type Condition struct {
	Type   string `json:"type"`
	Status string `json:"status"`
	Reason string `json:"reason"`
}

// Deployment is an apps/v1 Deployment, trimmed.
type Deployment struct {
	Metadata kubewatch.Meta `json:"metadata"`
	Spec     struct {
		Replicas *int32 `json:"replicas"`
		Paused   bool   `json:"paused"`
	} `json:"spec"`
	Status struct {
		ObservedGeneration int64       `json:"observedGeneration"`
		Replicas           int32       `json:"replicas"`
		UpdatedReplicas    int32       `json:"updatedReplicas"`
		ReadyReplicas      int32       `json:"readyReplicas"`
		AvailableReplicas  int32       `json:"availableReplicas"`
		Conditions         []Condition `json:"conditions"`
	} `json:"status"`
}

// StatefulSet is an apps/v1 StatefulSet, trimmed.
type StatefulSet struct {
	Metadata kubewatch.Meta `json:"metadata"`
	Spec     struct {
		Replicas *int32 `json:"replicas"`
	} `json:"spec"`
	Status struct {
		ObservedGeneration int64       `json:"observedGeneration"`
		Replicas           int32       `json:"replicas"`
		ReadyReplicas      int32       `json:"readyReplicas"`
		AvailableReplicas  int32       `json:"availableReplicas"`
		CurrentRevision    string      `json:"currentRevision"`
		UpdateRevision     string      `json:"updateRevision"`
		Conditions         []Condition `json:"conditions"`
	} `json:"status"`
}

// DaemonSet is an apps/v1 DaemonSet, trimmed.
type DaemonSet struct {
	Metadata kubewatch.Meta `json:"metadata"`
	Status   struct {
		ObservedGeneration     int64       `json:"observedGeneration"`
		DesiredNumberScheduled int32       `json:"desiredNumberScheduled"`
		NumberAvailable        int32       `json:"numberAvailable"`
		UpdatedNumberScheduled int32       `json:"updatedNumberScheduled"`
		Conditions             []Condition `json:"conditions"`
	} `json:"status"`
}

// Pod is a v1 Pod, trimmed: its phase, conditions and container waiting
// reasons.
type Pod struct {
	Metadata kubewatch.Meta `json:"metadata"`
	Status   struct {
		Phase             string      `json:"phase"`
		Conditions        []Condition `json:"conditions"`
		ContainerStatuses []struct {
			State struct {
				Waiting *struct {
					Reason string `json:"reason"`
				} `json:"waiting"`
			} `json:"state"`
		} `json:"containerStatuses"`
	} `json:"status"`
}

// GetMeta implements kubewatch.Object.
func (d *Deployment) GetMeta() *kubewatch.Meta  { return &d.Metadata }
func (s *StatefulSet) GetMeta() *kubewatch.Meta { return &s.Metadata }
func (d *DaemonSet) GetMeta() *kubewatch.Meta   { return &d.Metadata }
func (p *Pod) GetMeta() *kubewatch.Meta         { return &p.Metadata }

// evaluated is a trimmed object that can apply its kind's rules.
type evaluated interface {
	kubewatch.Object
	result() Result
}

func (d *Deployment) result() Result  { return DeploymentStatus(d) }
func (s *StatefulSet) result() Result { return StatefulSetStatus(s) }
func (d *DaemonSet) result() Result   { return DaemonSetStatus(d) }
func (p *Pod) result() Result         { return PodStatus(p) }

// replicasOf is spec.replicas with the API server's default of 1 when unset.
func replicasOf(p *int32) int32 {
	if p == nil {
		return 1
	}
	return *p
}

// DeploymentStatus applies the Deployment rules (README, "Status rules").
func DeploymentStatus(d *Deployment) Result {
	var r Result
	for _, c := range d.Status.Conditions {
		switch {
		case c.Type == "Progressing" && c.Reason == "ProgressDeadlineExceeded":
			r.Failed = true
		case c.Type == "ReplicaFailure" && c.Status == "True":
			r.Failed = true
		}
	}
	want := replicasOf(d.Spec.Replicas)
	st := d.Status
	switch {
	case want < 0 || st.ReadyReplicas < 0 || st.AvailableReplicas < 0 || st.UpdatedReplicas < 0:
		r.Status = Unknown // corrupt counts: decide nothing
	case d.Metadata.Generation > st.ObservedGeneration:
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
	case conditionTrue(d.Status.Conditions, "Available") &&
		st.UpdatedReplicas == want && st.AvailableReplicas == want && st.ReadyReplicas == want:
		r.Status = Available
	default:
		r.Status = Running
	}
	return r
}

func conditionTrue(cs []Condition, t string) bool {
	for _, c := range cs {
		if c.Type == t {
			return c.Status == "True"
		}
	}
	return false
}

// StatefulSetStatus applies the StatefulSet rules.
func StatefulSetStatus(s *StatefulSet) Result {
	var r Result
	for _, c := range s.Status.Conditions {
		if c.Type == "ReplicaFailure" && c.Status == "True" {
			r.Failed = true
		}
	}
	want := replicasOf(s.Spec.Replicas)
	st := s.Status
	switch {
	case want < 0 || st.ReadyReplicas < 0 || st.AvailableReplicas < 0:
		r.Status = Unknown
	case s.Metadata.Generation > st.ObservedGeneration:
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
func DaemonSetStatus(d *DaemonSet) Result {
	var r Result
	for _, c := range d.Status.Conditions {
		if c.Type == "ReplicaFailure" && c.Status == "True" {
			r.Failed = true
		}
	}
	st := d.Status
	switch {
	case st.DesiredNumberScheduled < 0 || st.NumberAvailable < 0 || st.UpdatedNumberScheduled < 0:
		r.Status = Unknown
	case d.Metadata.Generation > st.ObservedGeneration:
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
func PodStatus(p *Pod) Result {
	var r Result
	for _, cs := range p.Status.ContainerStatuses {
		if cs.State.Waiting != nil && failingWaitReasons[cs.State.Waiting.Reason] {
			r.Failed = true
		}
	}
	ready := false
	for _, c := range p.Status.Conditions {
		if c.Type == "Ready" {
			ready = c.Status == "True"
		}
	}
	switch p.Status.Phase {
	case "Pending":
		r.Status = Pending
	case "Running":
		if ready {
			r.Status = Available
		} else {
			r.Status = Running
		}
	case "Succeeded":
		// Ran to completion: everything asked for was done.
		r.Status = Available
	case "Failed":
		r.Status = Pending
		r.Failed = true
	default: // "Unknown", empty or an unheard-of phase
		r.Status = Unknown
	}
	return r
}
