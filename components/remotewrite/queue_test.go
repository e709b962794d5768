package remotewrite

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/prompb"

	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

// TestShardScaling: a backlog behind a slow receiver doubles the shards up
// to max_shards; once it is gone they halve back to one. No sample is lost
// to resharding and every series arrives in order.
func TestShardScaling(t *testing.T) {
	rc := newReceiver(t, false)
	var slow atomic.Bool
	slow.Store(true)
	rc.setRespond(func(int, *http.Request) (int, http.Header) {
		if slow.Load() {
			time.Sleep(20 * time.Millisecond)
		}
		return 200, nil
	})
	sm, err := newSelfMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	m := sm.forEndpoint("test")
	q := newQueueManager(queueConfig{capacity: 100, maxShards: 4, maxSamplesPerSend: 20, batchDeadline: 10 * time.Millisecond,
		minBackoff: 10 * time.Millisecond, maxBackoff: 10 * time.Millisecond, shardUpdatePeriod: 50 * time.Millisecond},
		&client{url: rc.url(), http: http.DefaultClient, timeout: 5 * time.Second, userAgent: "sluice/test"}, m, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); q.wait() }()
	q.start(ctx)

	const series, perSeries = 40, 100
	var maxShards atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range perSeries {
			for s := range series {
				ts := prompb.TimeSeries{
					Labels:  []prompb.Label{{Name: "__name__", Value: "m"}, {Name: "s", Value: fmt.Sprint(s)}},
					Samples: []prompb.Sample{{Value: float64(i), Timestamp: int64(i)}},
				}
				if !q.enqueue(ctx, item{ts: ts, hash: uint64(s)}, true) {
					return
				}
			}
			maxShards.Store(max(maxShards.Load(), int64(testutil.ToFloat64(m.shards))))
		}
	}()
	pipelinetest.Eventually(t, 60*time.Second, func() bool {
		maxShards.Store(max(maxShards.Load(), int64(testutil.ToFloat64(m.shards))))
		return maxShards.Load() == 4
	}, "4 shards under a backlog")
	wg.Wait()
	slow.Store(false)
	pipelinetest.Eventually(t, 60*time.Second, func() bool { return rc.total() == series*perSeries }, "every sample")
	pipelinetest.Eventually(t, 10*time.Second, func() bool { return testutil.ToFloat64(m.shards) == 1 }, "back to 1 shard")
	for s := range series {
		got := rc.samples(fmt.Sprintf("m{s=\"%d\"}", s))
		if len(got) != perSeries {
			t.Fatalf("series %d: %d samples", s, len(got))
		}
		for i, smp := range got {
			if smp.Timestamp != int64(i) {
				t.Fatalf("series %d out of order at %d: %v", s, i, got[:i+1])
			}
		}
	}
}
