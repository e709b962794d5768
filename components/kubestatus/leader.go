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
	"math/rand/v2"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/sluicehq/sluice/components/kubestatus/internal/kubewatch"
	"github.com/sluicehq/sluice/pipeline"
)

// jitterFactor: a standby retries every retry_period plus up to
// jitterFactor times it (client-go's leader election does the same, so
// that contenders do not retry in step).
const jitterFactor = 1.2

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

// Validate checks that the timings leave the leader time to renew.
func (l *LeaderElection) Validate() error {
	var errs []error
	if l.LeaseName == "" || l.LeaseNamespace == "" {
		errs = append(errs, errors.New("lease_name and lease_namespace are required"))
	}
	if l.RetryPeriod <= 0 || l.RenewDeadline <= time.Duration(jitterFactor*float64(l.RetryPeriod)) || l.LeaseDuration <= l.RenewDeadline {
		errs = append(errs, pipeline.ErrorAt("lease_duration", fmt.Errorf("need lease_duration > renew_deadline > %.1f x retry_period > 0", jitterFactor)))
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
	kw     *kubewatch.Client
	cancel context.CancelFunc
	done   chan struct{}
}

// startElection campaigns for the lease through kw until the returned
// election is stopped, calling onChange(true) on winning it and
// onChange(false, holder) on losing it or seeing another holder. A lost
// lease is campaigned for again.
func startElection(ctx context.Context, kw *kubewatch.Client, k leaderKey, onChange func(leader bool, holder string)) (*election, error) {
	if kw == nil {
		return nil, errors.New("leader election: no kubernetes client")
	}
	ctx, cancel := context.WithCancel(ctx)
	e := &election{key: k, kw: kw, cancel: cancel, done: make(chan struct{})}
	l := &leaseLock{kw: kw, key: k, onChange: onChange}
	go func() {
		defer close(e.done)
		l.run(ctx)
	}()
	return e, nil
}

func (e *election) stop() {
	if e != nil {
		e.cancel()
		<-e.done
	}
}

// leaseResource is coordination.k8s.io/v1 leases.
var leaseResource = kubewatch.Resource{Group: "coordination.k8s.io", Version: "v1", Resource: "leases"}

// lease is a coordination.k8s.io/v1 Lease as the election reads and writes
// it. Times are MicroTime (RFC 3339 with microseconds).
type lease struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name            string `json:"name"`
		Namespace       string `json:"namespace"`
		ResourceVersion string `json:"resourceVersion,omitempty"`
	} `json:"metadata"`
	Spec leaseSpec `json:"spec"`
}

type leaseSpec struct {
	HolderIdentity       *string `json:"holderIdentity,omitempty"`
	LeaseDurationSeconds *int32  `json:"leaseDurationSeconds,omitempty"`
	AcquireTime          *string `json:"acquireTime,omitempty"`
	RenewTime            *string `json:"renewTime,omitempty"`
	LeaseTransitions     *int32  `json:"leaseTransitions,omitempty"`
}

const microTime = "2006-01-02T15:04:05.000000Z07:00"

func strOf(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func int32Of(p *int32) int32 {
	if p == nil {
		return 0
	}
	return *p
}

// leaseLock is the campaign of one replica: the algorithm of client-go's
// leader election (a Lease taken when it is free or expired, renewed every
// retry period, given up when not renewed within the renew deadline),
// written against the Lease's JSON so that no typed clientset is linked.
type leaseLock struct {
	kw       *kubewatch.Client
	key      leaderKey
	onChange func(leader bool, holder string)

	// observedRV is the Lease's resource version as last read, and
	// observedTime when it last changed by the local clock: another
	// holder's lease expires leaseDuration after we saw it change (clock
	// skew between replicas does not count).
	observedRV   string
	observedTime time.Time
	reported     string // the other holder last reported to onChange
}

func (l *leaseLock) path() string { return leaseResource.Path(l.key.namespace, l.key.name) }

// run campaigns until ctx ends; it releases the lease on the way out when
// it holds it.
func (l *leaseLock) run(ctx context.Context) {
	for ctx.Err() == nil {
		if !l.acquire(ctx) {
			return
		}
		l.reported = ""
		l.onChange(true, l.key.identity)
		l.renew(ctx)
		l.onChange(false, "")
		if ctx.Err() != nil {
			l.release()
			return
		}
	}
}

// acquire tries every retry period (jittered) until it holds the lease;
// false when ctx ended first.
func (l *leaseLock) acquire(ctx context.Context) bool {
	for {
		if l.tryAcquireOrRenew(ctx) {
			return true
		}
		d := l.key.retry + time.Duration(rand.Float64()*jitterFactor*float64(l.key.retry))
		if !sleep(ctx, d) {
			return false
		}
	}
}

// renew renews every retry period until a renewal has failed for the
// renew deadline (or ctx ends).
func (l *leaseLock) renew(ctx context.Context) {
	for {
		if !sleep(ctx, l.key.retry) {
			return
		}
		deadline := time.Now().Add(l.key.renew)
		for {
			rctx, cancel := context.WithDeadline(ctx, deadline)
			ok := l.tryAcquireOrRenew(rctx)
			cancel()
			if ok {
				break
			}
			if ctx.Err() != nil || time.Now().Add(l.key.retry).After(deadline) {
				return // lost: not renewed within the renew deadline
			}
			if !sleep(ctx, l.key.retry) {
				return
			}
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// tryAcquireOrRenew takes the lease when it is free, expired or ours, with
// the resource version read (optimistic concurrency: a concurrent writer
// makes the update fail with a conflict, and this attempt lose).
func (l *leaseLock) tryAcquireOrRenew(ctx context.Context) bool {
	now := time.Now()
	id := l.key.identity
	dur := int32(l.key.lease / time.Second)
	nowS := now.UTC().Format(microTime)
	var cur lease
	err := l.kw.Do(ctx, http.MethodGet, l.path(), nil, &cur)
	if kubewatch.Code(err) == http.StatusNotFound {
		var nl lease
		nl.APIVersion, nl.Kind = "coordination.k8s.io/v1", "Lease"
		nl.Metadata.Name, nl.Metadata.Namespace = l.key.name, l.key.namespace
		nl.Spec = leaseSpec{HolderIdentity: &id, LeaseDurationSeconds: &dur, AcquireTime: &nowS, RenewTime: &nowS, LeaseTransitions: new(int32)}
		var created lease
		if err := l.kw.Do(ctx, http.MethodPost, leaseResource.Path(l.key.namespace, ""), &nl, &created); err != nil {
			return false
		}
		l.observe(created, now)
		return true
	}
	if err != nil {
		return false
	}
	// Every write (a renewal too) changes the resource version.
	if cur.Metadata.ResourceVersion != l.observedRV {
		l.observe(cur, now)
	}
	holder := strOf(cur.Spec.HolderIdentity)
	if holder != "" && holder != id {
		expires := l.observedTime.Add(time.Duration(int32Of(cur.Spec.LeaseDurationSeconds)) * time.Second)
		if l.reported != holder {
			l.reported = holder
			l.onChange(false, holder)
		}
		if expires.After(now) {
			return false // held by another, not expired
		}
	}
	next := cur
	transitions := int32Of(cur.Spec.LeaseTransitions)
	acquired := strOf(cur.Spec.AcquireTime)
	if holder != id {
		transitions++
		acquired = nowS
	}
	next.Spec = leaseSpec{HolderIdentity: &id, LeaseDurationSeconds: &dur, AcquireTime: &acquired, RenewTime: &nowS, LeaseTransitions: &transitions}
	var updated lease
	if err := l.kw.Do(ctx, http.MethodPut, l.path(), &next, &updated); err != nil {
		return false // a conflict: someone else wrote first
	}
	l.observe(updated, now)
	return true
}

func (l *leaseLock) observe(le lease, now time.Time) {
	l.observedRV, l.observedTime = le.Metadata.ResourceVersion, now
}

// release gives the lease up (holder cleared, a 1s duration) so that a
// standby takes over at its next retry instead of waiting for expiry.
func (l *leaseLock) release() {
	ctx, cancel := context.WithTimeout(context.Background(), l.key.renew)
	defer cancel()
	var cur lease
	if err := l.kw.Do(ctx, http.MethodGet, l.path(), nil, &cur); err != nil || strOf(cur.Spec.HolderIdentity) != l.key.identity {
		return
	}
	empty, one, nowS := "", int32(1), time.Now().UTC().Format(microTime)
	cur.Spec.HolderIdentity, cur.Spec.LeaseDurationSeconds = &empty, &one
	cur.Spec.AcquireTime, cur.Spec.RenewTime = &nowS, &nowS
	_ = l.kw.Do(ctx, http.MethodPut, l.path(), &cur, nil)
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
