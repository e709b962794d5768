package main

import "testing"

// The bench waits on these counts and times the latency by them: a count
// that matched too much (namespace="..." read as name="...") or too little
// would make it measure the wrong moment.
func TestMatchCount(t *testing.T) {
	page := `# HELP sluice_workload_status status
# TYPE sluice_workload_status gauge
sluice_workload_status{kind="Deployment",name="app-1",namespace="bench"} 3
sluice_workload_status{kind="Deployment",name="app-12",namespace="bench"} 1
sluice_workload_status{kind="Pod",name="app-1-7d9f8b6c5-00001",namespace="bench"} 3
sluice_workload_status_failed{kind="Deployment",name="app-1",namespace="bench"} 0
kube_deployment_status_condition{namespace="bench",deployment="app-1",condition="Available",status="false"} 1
kube_deployment_status_condition{namespace="bench",deployment="app-1",condition="Available",status="true"} 0
`
	cases := []struct {
		m    match
		want int
	}{
		{match{metric: "sluice_workload_status", labels: []string{`kind="Deployment"`}, value: "3"}, 1},
		{match{metric: "sluice_workload_status", labels: []string{`kind="Pod"`}, value: "3"}, 1},
		{sluiceTarget("bench").unavailable(12), 1},
		{sluiceTarget("bench").unavailable(1), 0},
		// name="bench" is only the end of namespace="bench".
		{match{metric: "sluice_workload_status", labels: []string{`name="bench"`}, value: "3"}, 0},
		{ksmTarget("bench").unavailable(1), 1},
		{ksmTarget("bench").deployments, 0},
	}
	for i, c := range cases {
		if got := c.m.count(page); got != c.want {
			t.Errorf("case %d (%+v): %d lines, want %d", i, c.m, got, c.want)
		}
	}
	if got := series(page); got != 6 {
		t.Errorf("series: %d, want 6", got)
	}
}
