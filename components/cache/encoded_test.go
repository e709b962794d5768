package cache

import (
	"bytes"
	"testing"

	"github.com/sluicehq/sluice/encoded"
	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

// GatherText is the snapshot encoded: the same series as Gather, encoded
// once per snapshot (every scrape until the next refresh gets the same
// bytes), and a refresh that changes a value changes the text.
func TestGatherTextIsTheSnapshotEncoded(t *testing.T) {
	in := newInput()
	orders := in.gaugeVec("orders", "status")
	orders.WithLabelValues("paid").Set(3)
	h, c := harness(t, `
  input            = test.in
  refresh_interval = "100ms"
  jitter           = "0%"
`, in, nil)
	h.Start()
	g := h.Gatherer()
	pipelinetest.Eventually(t, wait, func() bool { return served(t, g)["orders,status=paid"] == 3 }, "first refresh")

	text := func() (snap *snapshot, fams []encoded.Family) {
		t.Helper()
		// The snapshot and its text, read together (a refresh may land
		// between two calls).
		for {
			snap = c.snap.Load()
			fams, err := c.GatherText()
			if err != nil {
				t.Fatal(err)
			}
			if c.snap.Load() == snap {
				return snap, fams
			}
		}
	}
	snap, fams := text()
	want, err := encoded.Encode(snap.fams)
	if err != nil {
		t.Fatal(err)
	}
	if len(fams) != len(want) || len(fams) == 0 {
		t.Fatalf("GatherText has %d families, the snapshot %d", len(fams), len(want))
	}
	for i := range fams {
		if fams[i].Name != want[i].Name || !bytes.Equal(fams[i].Text, want[i].Text) {
			t.Errorf("family %d: GatherText %s\n%s\nsnapshot encoded %s\n%s", i, fams[i].Name, fams[i].Text, want[i].Name, want[i].Text)
		}
	}
	if again, _ := snap.encoded(); &again[0] != &fams[0] {
		t.Error("the snapshot was encoded twice")
	}

	orders.WithLabelValues("paid").Set(4)
	pipelinetest.Eventually(t, wait, func() bool {
		_, fams := text()
		return bytes.Contains(fams[0].Text, []byte(`orders{status="paid"} 4`))
	}, "the refreshed value in GatherText")
}
