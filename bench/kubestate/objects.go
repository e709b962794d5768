package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
)

// The objects are shaped like those of a real cluster deployed by Helm or
// Argo CD, since what each watcher holds per object depends on what the
// object carries: recommended labels, a last-applied annotation, a pod
// template of two containers with env, resources, probes, ports and
// mounts, and a status with conditions as the controllers write it (no
// controller runs here, so the bench writes the status subresource).

var teams = []string{"payments", "search", "identity", "checkout", "platform"}

func appName(i int) string { return "app-" + strconv.Itoa(i) }

func podLabels(i int) map[string]string {
	return map[string]string{
		"app.kubernetes.io/name":     appName(i),
		"app.kubernetes.io/instance": appName(i) + "-prod",
		"app.kubernetes.io/part-of":  teams[i%len(teams)],
		"app.kubernetes.io/version":  "1." + strconv.Itoa(i%17) + ".3",
	}
}

func objectLabels(i int) map[string]string {
	l := podLabels(i)
	l["app.kubernetes.io/component"] = "api"
	l["app.kubernetes.io/managed-by"] = "Helm"
	l["helm.sh/chart"] = appName(i) + "-4.2.1"
	l["team"] = teams[i%len(teams)]
	return l
}

func podSpec(i int) corev1.PodSpec {
	env := make([]corev1.EnvVar, 0, 12)
	for _, k := range []string{"LOG_LEVEL", "LOG_FORMAT", "HTTP_PORT", "GRPC_PORT", "DB_HOST", "DB_NAME", "CACHE_URL", "FEATURE_FLAGS", "OTEL_EXPORTER_OTLP_ENDPOINT", "REGION"} {
		env = append(env, corev1.EnvVar{Name: k, Value: fmt.Sprintf("%s-value-for-%s", k, appName(i))})
	}
	env = append(env,
		corev1.EnvVar{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
		corev1.EnvVar{Name: "DB_PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: appName(i) + "-db"}, Key: "password"}}})
	probe := func(path string, delay int32) *corev1.Probe {
		return &corev1.Probe{
			ProbeHandler:        corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromString("http")}},
			InitialDelaySeconds: delay, PeriodSeconds: 10, TimeoutSeconds: 2, FailureThreshold: 3, SuccessThreshold: 1,
		}
	}
	res := func(cpu, mem string) corev1.ResourceRequirements {
		return corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(mem)},
			Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse(mem)},
		}
	}
	nonRoot := true
	return corev1.PodSpec{
		Containers: []corev1.Container{{
			Name:  "app",
			Image: "registry.example.com/" + teams[i%len(teams)] + "/" + appName(i) + ":1." + strconv.Itoa(i%17) + ".3",
			Args:  []string{"serve", "--config=/etc/app/config.yaml"},
			Ports: []corev1.ContainerPort{
				{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP},
				{Name: "grpc", ContainerPort: 9090, Protocol: corev1.ProtocolTCP},
			},
			Env:            env,
			Resources:      res("250m", "256Mi"),
			LivenessProbe:  probe("/healthz", 10),
			ReadinessProbe: probe("/ready", 5),
			VolumeMounts:   []corev1.VolumeMount{{Name: "config", MountPath: "/etc/app", ReadOnly: true}, {Name: "tmp", MountPath: "/tmp"}},
			SecurityContext: &corev1.SecurityContext{RunAsNonRoot: &nonRoot,
				Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}},
			ImagePullPolicy: corev1.PullIfNotPresent,
		}, {
			Name:           "metrics",
			Image:          "registry.example.com/platform/sluice:1.4.0",
			Args:           []string{"run", "/etc/sluice/sidecar.hcl"},
			Ports:          []corev1.ContainerPort{{Name: "metrics", ContainerPort: 9470, Protocol: corev1.ProtocolTCP}},
			Resources:      res("10m", "32Mi"),
			ReadinessProbe: probe("/-/ready", 2),
			VolumeMounts:   []corev1.VolumeMount{{Name: "config", MountPath: "/etc/sluice", ReadOnly: true}},
		}},
		Volumes: []corev1.Volume{
			{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: appName(i) + "-config"}}}},
			{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		},
		ServiceAccountName: appName(i),
		NodeSelector:       map[string]string{"kubernetes.io/os": "linux"},
		Tolerations:        []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: teams[i%len(teams)], Effect: corev1.TaintEffectNoSchedule}},
	}
}

func replicas(i int) int32 { return int32(1 + i%3) }

// deployment i, as `helm install` or an Argo CD sync creates it (with the
// last-applied annotation kubectl and Argo CD's client-side apply write).
func deployment(ns string, i int) *appsv1.Deployment {
	n := replicas(i)
	d := &appsv1.Deployment{
		TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{
			Name: appName(i), Namespace: ns, Labels: objectLabels(i),
			Annotations: map[string]string{
				"meta.helm.sh/release-name":         appName(i) + "-prod",
				"meta.helm.sh/release-namespace":    ns,
				"deployment.kubernetes.io/revision": "1",
			},
		},
		Spec: appsv1.DeploymentSpec{
			Replicas: &n,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{
				"app.kubernetes.io/name": appName(i), "app.kubernetes.io/instance": appName(i) + "-prod"}},
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType, RollingUpdate: &appsv1.RollingUpdateDeployment{
				MaxUnavailable: &intstr.IntOrString{Type: intstr.String, StrVal: "25%"},
				MaxSurge:       &intstr.IntOrString{Type: intstr.String, StrVal: "25%"}}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: podLabels(i), Annotations: map[string]string{
					"prometheus.io/scrape": "true", "prometheus.io/port": "9470",
					"checksum/config": fmt.Sprintf("%064x", i*7919)}},
				Spec: podSpec(i),
			},
		},
	}
	applied, _ := json.Marshal(d)
	d.Annotations["kubectl.kubernetes.io/last-applied-configuration"] = string(applied)
	return d
}

// deploymentStatus is the status of a rolled-out Deployment (Available).
func deploymentStatus(i int) appsv1.DeploymentStatus {
	n := replicas(i)
	t := metav1.NewTime(time.Now().Add(-time.Hour).Truncate(time.Second))
	return appsv1.DeploymentStatus{
		ObservedGeneration: 1, Replicas: n, UpdatedReplicas: n, ReadyReplicas: n, AvailableReplicas: n,
		Conditions: []appsv1.DeploymentCondition{
			{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue, LastUpdateTime: t, LastTransitionTime: t,
				Reason: "MinimumReplicasAvailable", Message: "Deployment has minimum availability."},
			{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue, LastUpdateTime: t, LastTransitionTime: t,
				Reason: "NewReplicaSetAvailable", Message: fmt.Sprintf("ReplicaSet %q has successfully progressed.", appName(i)+"-7d9f8b6c5")},
		},
	}
}

// unavailablePatch is the status merge patch that makes a Deployment lose
// every ready replica, as when its pods crash: Sluice turns it Pending,
// kube-state-metrics' Available condition turns false.
func unavailablePatch(i int) []byte {
	now := time.Now().UTC().Format(time.RFC3339)
	return fmt.Appendf(nil, `{"status":{"readyReplicas":0,"availableReplicas":0,"unavailableReplicas":%d,"conditions":[`+
		`{"type":"Available","status":"False","lastUpdateTime":%q,"lastTransitionTime":%q,"reason":"MinimumReplicasUnavailable","message":"Deployment does not have minimum availability."},`+
		`{"type":"Progressing","status":"True","lastUpdateTime":%q,"lastTransitionTime":%q,"reason":"NewReplicaSetAvailable","message":"ReplicaSet has successfully progressed."}]}}`,
		replicas(i), now, now, now, now)
}

// pod i, one of deployment i's, owned by its (absent) ReplicaSet and
// bound to a node by name (no scheduler runs).
func pod(ns string, i int) *corev1.Pod {
	ctrl, block := true, true
	l := podLabels(i)
	l["pod-template-hash"] = "7d9f8b6c5"
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: appName(i) + "-7d9f8b6c5-" + fmt.Sprintf("%05x", i), Namespace: ns, Labels: l,
			Annotations: map[string]string{"prometheus.io/scrape": "true", "prometheus.io/port": "9470",
				"checksum/config": fmt.Sprintf("%064x", i*7919), "kubectl.kubernetes.io/default-container": "app"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: appName(i) + "-7d9f8b6c5",
				UID: types.UID(fmt.Sprintf("0b6f3c2e-%04x-4d1a-9c7e-%012x", i%65536, i)), Controller: &ctrl, BlockOwnerDeletion: &block}},
		},
		Spec: func() corev1.PodSpec { s := podSpec(i); s.NodeName = fmt.Sprintf("node-%02d", i%40); return s }(),
	}
}

// podStatus is a running, ready pod's status as the kubelet writes it.
func podStatus(i int) corev1.PodStatus {
	start := metav1.NewTime(time.Now().Add(-time.Hour).Truncate(time.Second))
	cond := func(t corev1.PodConditionType) corev1.PodCondition {
		return corev1.PodCondition{Type: t, Status: corev1.ConditionTrue, LastTransitionTime: start}
	}
	hostIP := fmt.Sprintf("10.0.%d.%d", i%40/250, 10+i%40)
	podIP := fmt.Sprintf("10.244.%d.%d", i/250, 2+i%250)
	cs := func(name, image string) corev1.ContainerStatus {
		started := true
		return corev1.ContainerStatus{
			Name: name, Ready: true, Started: &started, RestartCount: int32(i % 4), Image: image,
			ImageID:     "registry.example.com/" + name + "@sha256:" + fmt.Sprintf("%064x", i*31),
			ContainerID: "containerd://" + fmt.Sprintf("%064x", i*131+len(name)),
			State:       corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: start}},
		}
	}
	spec := podSpec(i)
	return corev1.PodStatus{
		Phase: corev1.PodRunning,
		Conditions: []corev1.PodCondition{cond("PodReadyToStartContainers"), cond(corev1.PodInitialized), cond(corev1.PodReady),
			cond(corev1.ContainersReady), cond(corev1.PodScheduled)},
		HostIP: hostIP, HostIPs: []corev1.HostIP{{IP: hostIP}},
		PodIP: podIP, PodIPs: []corev1.PodIP{{IP: podIP}},
		StartTime: &start, QOSClass: corev1.PodQOSBurstable,
		ContainerStatuses: []corev1.ContainerStatus{cs("app", spec.Containers[0].Image), cs("metrics", spec.Containers[1].Image)},
	}
}

// createAll runs create(i) for i in [from, to) on workers goroutines and
// returns the first error (the others stop at the next object).
func createAll(ctx context.Context, from, to, workers int, create func(context.Context, int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range next {
				if err := create(ctx, i); err != nil {
					cancel(err)
				}
			}
		})
	}
	for i := from; i < to && ctx.Err() == nil; i++ {
		select {
		case next <- i:
		case <-ctx.Done():
		}
	}
	close(next)
	wg.Wait()
	return context.Cause(ctx)
}

func createDeployment(cs kubernetes.Interface, ns string) func(context.Context, int) error {
	return func(ctx context.Context, i int) error {
		d, err := cs.AppsV1().Deployments(ns).Create(ctx, deployment(ns, i), metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("create deployment %d: %w", i, err)
		}
		d.Status = deploymentStatus(i)
		if _, err := cs.AppsV1().Deployments(ns).UpdateStatus(ctx, d, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("deployment %d status: %w", i, err)
		}
		return nil
	}
}

func createPod(cs kubernetes.Interface, ns string) func(context.Context, int) error {
	return func(ctx context.Context, i int) error {
		p, err := cs.CoreV1().Pods(ns).Create(ctx, pod(ns, i), metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("create pod %d: %w", i, err)
		}
		p.Status = podStatus(i)
		if _, err := cs.CoreV1().Pods(ns).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("pod %d status: %w", i, err)
		}
		return nil
	}
}
