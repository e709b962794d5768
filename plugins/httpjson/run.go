package httpjson

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/zclconf/go-cty/cty"

	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/ratelog"
)

// Component is a running http_json_source.
type Component struct {
	log     *slog.Logger
	failLog *slog.Logger // poll failures, at a bounded rate
	dropLog *slog.Logger // dropped series, at a bounded rate
	self    *selfMetrics
	store   *store

	updated chan struct{} // Commit -> Run, buffered 1

	mu     sync.Mutex
	plan   *plan
	health pipeline.HealthTracker
}

var errNotProvisioned = errors.New(Name + ": arguments were not provisioned (decode them with runtime.DecodeArguments)")

func build(opts pipeline.Options[Exports], args Arguments) (pipeline.Component[Arguments], error) {
	if args.plan == nil {
		return nil, errNotProvisioned
	}
	self, err := newSelfMetrics(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("%s: self-metrics: %w", Name, err)
	}
	st := newStore()
	reg := prometheus.NewRegistry()
	if err := reg.Register(st); err != nil {
		return nil, err
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &Component{
		log:     logger,
		failLog: ratelog.New(logger, ratelog.Options{Interval: time.Minute}),
		dropLog: ratelog.New(logger, ratelog.Options{Interval: time.Minute}),
		self:    self,
		store:   st,
		updated: make(chan struct{}, 1),
		plan:    args.plan,
	}
	c.health.Set(pipeline.HealthUnknown, "not polled yet")
	self.init(args.plan)
	opts.OnExports(Exports{Metrics: reg})
	return c, nil
}

// Update readies a new plan; it acquires nothing. Commit swaps it in, drops
// the values of metrics no longer configured and makes Run poll at once
// with the new plan.
func (c *Component) Update(args Arguments) (pipeline.Pending, error) {
	p := args.plan
	if p == nil {
		return nil, errNotProvisioned
	}
	return pipeline.CommitFunc(func() {
		c.mu.Lock()
		c.plan = p
		c.mu.Unlock()
		c.self.init(p)
		c.store.retain(p)
		select {
		case c.updated <- struct{}{}:
		default:
		}
	}), nil
}

func (c *Component) currentPlan() *plan {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.plan
}

// Health implements pipeline.HealthReporter: unhealthy while polls fail.
func (c *Component) Health() pipeline.Health { return c.health.Health() }

func (c *Component) setHealth(ok bool, msg string) {
	if c.health.SetOK(ok, msg) && ok {
		c.log.Info("polls succeed again")
	}
}

// Run implements pipeline.Component. It polls at once, then every interval
// (on pipeline.Schedule's grid; a poll never outlasts its timeout, which is
// at most the interval), and at once after a committed Update.
func (c *Component) Run(ctx context.Context) error {
	// The client and its connections belong to this Run.
	transport := http.DefaultTransport.(*http.Transport).Clone()
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		// Headers (credentials) follow redirects; only to the same origin.
		if len(via) >= 5 {
			return errors.New("stopped after 5 redirects")
		}
		if !sameOrigin(req.URL, via[0].URL) {
			return fmt.Errorf("refused a redirect to another origin (%s): the headers would go with it", req.URL.Host)
		}
		return nil
	}}
	sch := pipeline.Schedule{Interval: func() time.Duration { return c.currentPlan().interval }, Kick: c.updated}
	sch.Run(ctx, func(ctx context.Context) { c.poll(ctx, client, c.currentPlan()) })
	return nil
}

// drop is a series a poll could not make.
type drop struct {
	metric, reason string
	err            error
}

// poll fetches every page, evaluates the metrics and, if every page could
// be fetched and decoded, replaces the snapshot.
func (c *Component) poll(ctx context.Context, client *http.Client, p *plan) {
	start := time.Now()
	pctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	var drops []drop
	col := newCollector(p, func(metric, reason string, err error) {
		drops = append(drops, drop{metric, reason, err})
	})
	target, pages := p.url, 0
	seen := map[string]bool{}
	for {
		seen[target.String()] = true
		body, next, err := fetch(pctx, client, p, target)
		if err != nil {
			if ctx.Err() != nil {
				return // stopping: not an outcome of the API
			}
			result := classify(err)
			c.self.poll(result, time.Since(start))
			msg := fmt.Sprintf("%s: %v", result, err)
			c.setHealth(false, msg)
			c.failLog.Warn("poll failed; keeping the last values", "url", p.url.Redacted(), "page", pages+1, "result", result, "err", err)
			return
		}
		col.addPage(body)
		pages++
		if next == nil {
			break
		}
		if pages >= p.maxPages {
			c.self.truncated.Inc()
			c.failLog.Warn("stopped at max_pages; the API announced more pages", "url", p.url.Redacted(), "max_pages", p.maxPages)
			break
		}
		if seen[next.String()] {
			break // a Link loop: every page is in already
		}
		target = next
	}
	snap := col.snapshot()
	c.store.set(snap)
	c.self.poll(resultSuccess, time.Since(start))
	c.self.success(time.Now(), snap.series, pages)
	c.setHealth(true, "")
	for _, d := range drops {
		c.self.dropped.WithLabelValues(d.metric, d.reason).Inc()
	}
	if len(drops) > 0 {
		c.dropLog.Warn("series dropped", "count", len(drops), "first_metric", drops[0].metric, "first_reason", drops[0].reason, "first_err", drops[0].err)
	}
}

type statusError struct{ code int }

func (e *statusError) Error() string { return fmt.Sprintf("HTTP status %d", e.code) }

type tooLargeError struct{ max int64 }

func (e *tooLargeError) Error() string {
	return fmt.Sprintf("response larger than max_response_bytes (%d)", e.max)
}

type badBodyError struct{ err error }

func (e *badBodyError) Error() string { return e.err.Error() }
func (e *badBodyError) Unwrap() error { return e.err }

func classify(err error) string {
	var (
		se *statusError
		tl *tooLargeError
		bb *badBodyError
		ne net.Error
	)
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return resultTimeout
	case errors.As(err, &se):
		return resultHTTPError
	case errors.As(err, &tl):
		return resultTooLarge
	case errors.As(err, &bb):
		return resultBadBody
	}
	return resultError
}

// fetch gets one page: its decoded body and the next page's URL, if the
// response names one.
func fetch(ctx context.Context, client *http.Client, p *plan, target *url.URL) (cty.Value, *url.URL, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target.String(), nil)
	if err != nil {
		return cty.NilVal, nil, err
	}
	req.Header = p.headers.Clone()
	resp, err := client.Do(req)
	if err != nil {
		return cty.NilVal, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		// Drain a little so that the connection can be reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return cty.NilVal, nil, &statusError{resp.StatusCode}
	}
	if resp.ContentLength > p.maxBytes {
		return cty.NilVal, nil, &tooLargeError{p.maxBytes}
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, p.maxBytes+1))
	if err != nil {
		return cty.NilVal, nil, fmt.Errorf("reading the response: %w", err)
	}
	if int64(len(b)) > p.maxBytes {
		return cty.NilVal, nil, &tooLargeError{p.maxBytes}
	}
	body, err := decodeJSON(b)
	if err != nil {
		return cty.NilVal, nil, &badBodyError{err}
	}
	next, err := nextLink(resp.Header.Values("Link"), resp.Request.URL)
	if err != nil {
		return cty.NilVal, nil, err
	}
	if next != nil && !sameOrigin(next, p.url) {
		return cty.NilVal, nil, fmt.Errorf("refused a next page on another origin (%s): the headers would go with it", next.Host)
	}
	return body, next, nil
}

func sameOrigin(a, b *url.URL) bool {
	return strings.EqualFold(a.Scheme, b.Scheme) && strings.EqualFold(a.Host, b.Host)
}

// linkRE matches one link-value of a Link header (RFC 8288): <target>
// followed by its parameters.
var linkRE = regexp.MustCompile(`<([^>]*)>((?:\s*;\s*[^;,]*)*)`)

var relRE = regexp.MustCompile(`(?i)^\s*rel\s*=\s*"?([^"]*)"?\s*$`)

// nextLink returns the target of the rel="next" link in the Link headers,
// resolved against base, or nil.
func nextLink(headers []string, base *url.URL) (*url.URL, error) {
	for _, h := range headers {
		for _, m := range linkRE.FindAllStringSubmatch(h, -1) {
			for _, param := range strings.Split(m[2], ";") {
				rel := relRE.FindStringSubmatch(param)
				if rel == nil {
					continue
				}
				for _, r := range strings.Fields(rel[1]) {
					if strings.EqualFold(r, "next") {
						u, err := url.Parse(strings.TrimSpace(m[1]))
						if err != nil {
							return nil, fmt.Errorf("bad next link: %w", err)
						}
						return base.ResolveReference(u), nil
					}
				}
			}
		}
	}
	return nil, nil
}
