package kubestatus

import (
	"context"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

// contender records what an election tells it.
type contender struct {
	mu     sync.Mutex
	leader bool
	holder string
	e      *election
}

func (c *contender) onChange(leader bool, holder string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.leader = leader
	if holder != "" {
		c.holder = holder
	}
}

func (c *contender) state() (bool, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.leader, c.holder
}

// TestLeaseElection: two contenders on the real API server's Lease: one
// leads, the other sees it as the holder; when the leader stops it
// releases the Lease and the other takes over at its next retry (well
// before the lease duration); when a leader dies without releasing (its
// renewals stop), the other takes over once the lease has expired.
func TestLeaseElection(t *testing.T) {
	srv, cs := realServer(t)
	cl, err := clientsFor(srv.AdminConfig())
	if err != nil {
		t.Fatal(err)
	}
	key := func(id string) leaderKey {
		return leaderKey{name: "sluice-test", namespace: "default", identity: id,
			lease: 3 * time.Second, renew: 2 * time.Second, retry: 200 * time.Millisecond}
	}
	ctx := context.Background()
	a, b := &contender{}, &contender{}
	if a.e, err = startElection(ctx, cl.kw, key("a"), a.onChange); err != nil {
		t.Fatal(err)
	}
	pipelinetest.Eventually(t, 10*time.Second, func() bool { l, _ := a.state(); return l }, "a leads")
	if b.e, err = startElection(ctx, cl.kw, key("b"), b.onChange); err != nil {
		t.Fatal(err)
	}
	pipelinetest.Eventually(t, 10*time.Second, func() bool { l, h := b.state(); return !l && h == "a" }, "b sees a leading")
	lease, err := cs.CoordinationV1().Leases("default").Get(ctx, "sluice-test", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity != "a" || lease.Spec.LeaseDurationSeconds == nil || *lease.Spec.LeaseDurationSeconds != 3 ||
		lease.Spec.RenewTime == nil || lease.Spec.AcquireTime == nil {
		t.Fatalf("lease spec %+v", lease.Spec)
	}

	// A clean stop releases: b takes over well within the lease duration.
	stopped := time.Now()
	a.e.stop()
	pipelinetest.Eventually(t, 10*time.Second, func() bool { l, _ := b.state(); return l }, "b leads after a released")
	if d := time.Since(stopped); d >= 3*time.Second {
		t.Errorf("handover after a release took %v, want less than the lease duration", d)
	}
	t.Logf("handover after release: %v", time.Since(stopped).Round(10*time.Millisecond))
	lease, err = cs.CoordinationV1().Leases("default").Get(ctx, "sluice-test", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *lease.Spec.HolderIdentity != "b" || lease.Spec.LeaseTransitions == nil || *lease.Spec.LeaseTransitions < 1 {
		t.Fatalf("after handover: holder %v transitions %v", *lease.Spec.HolderIdentity, lease.Spec.LeaseTransitions)
	}

	// b dies without releasing: the Lease is left as b's last renewal
	// wrote it. A new contender takes over only after it expired.
	b.e.cancel() // stops renewing; release happens too, so undo it below
	<-b.e.done
	lease, err = cs.CoordinationV1().Leases("default").Get(ctx, "sluice-test", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	holder, now := "b", metav1.NewMicroTime(time.Now())
	dur := int32(3)
	lease.Spec.HolderIdentity, lease.Spec.RenewTime, lease.Spec.LeaseDurationSeconds = &holder, &now, &dur
	if _, err := cs.CoordinationV1().Leases("default").Update(ctx, lease, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	died := time.Now()
	c := &contender{}
	if c.e, err = startElection(ctx, cl.kw, key("c"), c.onChange); err != nil {
		t.Fatal(err)
	}
	defer c.e.stop()
	pipelinetest.Eventually(t, 15*time.Second, func() bool { l, _ := c.state(); return l }, "c leads after b's lease expired")
	took := time.Since(died)
	if took < 3*time.Second {
		t.Errorf("c took over %v after b's last renewal: before the lease expired", took)
	}
	t.Logf("takeover after expiry: %v (lease 3s, retry 200ms)", took.Round(10*time.Millisecond))
}
