package httpjson

import (
	"context"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/sluicehq/sluice/pipeline"
)

// The source under `sluice test` (pipeline/fixture.go): no request leaves
// the process. A test's response answers one poll through an in-memory
// transport, so status checks, size limits, decoding and the metrics'
// expressions run as for a response from the API (a failed poll keeps the
// last values). One page: the response has no Link header.

var (
	_ pipeline.ResponseTaker = (*Component)(nil)
	_ pipeline.ClockFollower = (*Component)(nil)
)

// TakeResponse runs one poll answered with status and body. A failed poll
// is not an error of the test: it may be what the test is about.
func (c *Component) TakeResponse(status int, body string) error {
	client := &http.Client{Transport: fixedResponse{status: status, body: body}}
	c.poll(context.Background(), client, c.currentPlan())
	return nil
}

// AdvanceTo does nothing: under test the source polls only when a step
// gives it a response, so nothing changes with the clock.
func (c *Component) AdvanceTo(time.Time) error { return nil }

// fixedResponse answers every request with one status and body.
type fixedResponse struct {
	status int
	body   string
}

func (f fixedResponse) RoundTrip(req *http.Request) (*http.Response, error) {
	return &http.Response{
		StatusCode:    f.status,
		Status:        http.StatusText(f.status),
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        http.Header{"Content-Type": []string{"application/json"}},
		Body:          io.NopCloser(strings.NewReader(f.body)),
		ContentLength: int64(len(f.body)),
		Request:       req,
	}, nil
}
