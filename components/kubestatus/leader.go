package kubestatus

// Leader election: several replicas of a cluster-scoped agent (a
// Deployment) run the same kubernetes_status_source; one holds a
// coordination.k8s.io Lease and exports, the others keep their informers
// synced (a warm standby) and export nothing, so that the cluster's series
// exist once. The standby takes over within the lease duration when the
// leader dies, at once when it stops cleanly (it releases the lease).

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/sluicehq/sluice/pipeline"
)

// LeaderElection is the leader_election block.
type LeaderElection struct {
	// LeaseName and LeaseNamespace name the Lease the replicas share.
	LeaseName      string `hcl:"lease_name"`
	LeaseNamespace string `hcl:"lease_namespace"`
	// Identity names this replica in the Lease; default $POD_NAME, else
	// the host name.
	Identity      string        `hcl:"identity,optional"`
	LeaseDuration time.Duration `hcl:"lease_duration,optional"`
	RenewDeadline time.Duration `hcl:"renew_deadline,optional"`
	RetryPeriod   time.Duration `hcl:"retry_period,optional"`
}

// SetDefaults: client-go's (and kube-controller-manager's) timings.
func (l *LeaderElection) SetDefaults() {
	l.LeaseDuration = 15 * time.Second
	l.RenewDeadline = 10 * time.Second
	l.RetryPeriod = 2 * time.Second
}

// Validate checks what client-go's elector would refuse at run time.
func (l *LeaderElection) Validate() error {
	var errs []error
	if l.LeaseName == "" || l.LeaseNamespace == "" {
		errs = append(errs, errors.New("lease_name and lease_namespace are required"))
	}
	if l.RetryPeriod <= 0 || l.RenewDeadline <= time.Duration(leaderelection.JitterFactor*float64(l.RetryPeriod)) || l.LeaseDuration <= l.RenewDeadline {
		errs = append(errs, pipeline.ErrorAt("lease_duration", fmt.Errorf("need lease_duration > renew_deadline > %.1f x retry_period > 0", leaderelection.JitterFactor)))
	}
	return errors.Join(errs...)
}

// leaderKey is a leader_election block as the plan holds it; a change
// restarts the election.
type leaderKey struct {
	name, namespace, identity string
	lease, renew, retry       time.Duration
}

func leaderKeyOf(l *LeaderElection) *leaderKey {
	if l == nil {
		return nil
	}
	id := l.Identity
	if id == "" {
		id = os.Getenv("POD_NAME")
	}
	if id == "" {
		id, _ = os.Hostname()
	}
	return &leaderKey{name: l.LeaseName, namespace: l.LeaseNamespace, identity: id,
		lease: l.LeaseDuration, renew: l.RenewDeadline, retry: l.RetryPeriod}
}

// election runs one leader election until stopped.
type election struct {
	key    leaderKey
	kube   kubernetes.Interface
	cancel context.CancelFunc
	done   chan struct{}
}

// startElection campaigns for the lease with kube until the returned
// election is stopped, calling onChange(true) on winning it and
// onChange(false) on losing it. A lost lease is campaigned for again.
func startElection(ctx context.Context, kube kubernetes.Interface, k leaderKey, onChange func(leader bool, holder string)) (*election, error) {
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Name: k.name, Namespace: k.namespace},
		Client:     kube.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: k.identity},
	}
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:          lock,
		LeaseDuration: k.lease,
		RenewDeadline: k.renew,
		RetryPeriod:   k.retry,
		// A clean stop (rolling update, reload) hands over at once.
		ReleaseOnCancel: true,
		Name:            k.namespace + "/" + k.name,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(context.Context) { onChange(true, k.identity) },
			OnStoppedLeading: func() { onChange(false, "") },
			OnNewLeader: func(id string) {
				if id != k.identity {
					onChange(false, id)
				}
			},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("leader election: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	e := &election{key: k, kube: kube, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(e.done)
		for ctx.Err() == nil {
			le.Run(ctx) // returns when the lease is lost or ctx ends
		}
	}()
	return e, nil
}

func (e *election) stop() {
	if e != nil {
		e.cancel()
		<-e.done
	}
}

// leadership is what scrapes and self-metrics read.
type leadership struct {
	mu     sync.Mutex
	leader bool
	holder string // the current leader's identity, when known
}

func (l *leadership) set(leader bool, holder string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.leader = leader
	if holder != "" || leader {
		l.holder = holder
	}
}

func (l *leadership) get() (bool, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.leader, l.holder
}
