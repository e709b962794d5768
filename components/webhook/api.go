package webhook

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/sluicehq/sluice/jsonlimit"
)

// serve routes one request; path is relative to the receiver's prefix.
//
//	POST   /api/METRIC/VERB   observe inc add set dec
//	DELETE /api/METRIC        every series, or one with labels
//	POST   /hooks/NAME        a webhook delivery
//	GET    /metrics           the pushed series
func (c *Component) serve(w http.ResponseWriter, r *http.Request, path string) {
	cur := c.cfg.Load()
	rest, isAPI := strings.CutPrefix(path, "/api/")
	hook, isHook := strings.CutPrefix(path, "/hooks/")
	switch {
	case isAPI:
		c.serveAPI(w, r, cur, rest)
	case isHook:
		c.serveHook(w, r, cur, hook)
	case path == "/metrics":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			c.fail(w, "metrics", http.StatusMethodNotAllowed, "use GET", "GET, HEAD")
			return
		}
		c.m.count("metrics", 200)
		c.metrics.ServeHTTP(w, r)
	default:
		c.fail(w, "other", http.StatusNotFound, "not found: the API is under /api/ and webhooks under /hooks/", "")
	}
}

// fail answers with a one-line message and counts it.
func (c *Component) fail(w http.ResponseWriter, route string, code int, msg, allow string) {
	if allow != "" {
		w.Header().Set("Allow", allow)
	}
	c.m.count(route, code)
	http.Error(w, msg, code)
}

// readBody reads at most limit bytes: 413 above it.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, errCode(http.StatusRequestEntityTooLarge, "body larger than %d bytes", limit)
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, errCode(http.StatusRequestEntityTooLarge, "body larger than %d bytes", limit)
		}
		return nil, errCode(http.StatusBadRequest, "reading the body: %v", err)
	}
	return b, nil
}

// Reasons of sluice_webhook_bodies_refused_total besides the JSON
// decoding limits' (jsonlimit.Reasons).
const (
	reasonUnverifiedBudget = "unverified_budget" // max_unverified_bytes reached
	reasonBodyTimeout      = "body_timeout"      // not received within the read timeout
)

// refuseHook answers a delivery whose credentials are missing or wrong.
func (c *Component) refuseHook(w http.ResponseWriter, name string, r *http.Request, why string) {
	c.m.authFailures.WithLabelValues("hook:" + name).Inc()
	c.errLog.Warn("webhook delivery refused", "webhook", name, "reason", why, "remote", r.RemoteAddr)
	c.fail(w, "hook", http.StatusUnauthorized, why, "")
}

// refuseBody counts and logs a body refused by the JSON decoding limits
// (other errors are the sender's mistakes, answered but not counted here).
func (c *Component) refuseBody(route string, err error) {
	reason := jsonlimit.ReasonOf(err)
	if reason == "" {
		return
	}
	c.m.bodiesRefused.WithLabelValues(route, reason).Inc()
	c.errLog.Warn("JSON body refused", "route", route, "reason", reason, "err", err)
}

func (c *Component) failErr(w http.ResponseWriter, route string, err error) {
	var he *httpError
	if errors.As(err, &he) {
		c.fail(w, route, he.code, he.msg, "")
		return
	}
	c.fail(w, route, http.StatusBadRequest, err.Error(), "")
}

func (c *Component) serveAPI(w http.ResponseWriter, r *http.Request, cur *current, rest string) {
	const route = "api"
	metric, verb, hasVerb := strings.Cut(rest, "/")
	if hasVerb && strings.Contains(verb, "/") || metric == "" {
		c.fail(w, route, http.StatusNotFound, "not found: POST /api/METRIC/VERB or DELETE /api/METRIC", "")
		return
	}
	switch {
	case hasVerb && r.Method != http.MethodPost:
		c.fail(w, route, http.StatusMethodNotAllowed, "use POST", "POST")
		return
	case !hasVerb && r.Method != http.MethodDelete:
		c.fail(w, route, http.StatusMethodNotAllowed, "use DELETE to reset a metric, or POST /api/METRIC/VERB", "DELETE")
		return
	}
	if !cur.args.InsecureNoAuth && !checkToken(r, cur.args.tokens) {
		c.m.authFailures.WithLabelValues(route).Inc()
		c.errLog.Warn("API request refused: missing or wrong token", "remote", r.RemoteAddr, "metric", truncate(metric, 100))
		c.fail(w, route, http.StatusUnauthorized, "missing or wrong token (X-Private-Token or Authorization: Bearer)", "")
		return
	}
	d := cur.plan.metrics[metric]
	if d == nil {
		c.fail(w, route, http.StatusNotFound, fmt.Sprintf("unknown metric %q", truncate(metric, 100)), "")
		return
	}
	if hasVerb {
		switch verb {
		case "observe", "inc", "add", "set", "dec":
		default:
			c.fail(w, route, http.StatusNotFound, fmt.Sprintf("unknown verb %q: observe, inc, add, set or dec", truncate(verb, 40)), "")
			return
		}
		if !d.accepts(verb) {
			c.fail(w, route, http.StatusBadRequest, fmt.Sprintf("cannot %s a %s; %s accepts %s", verb, d.typ, d.name, strings.Join(verbsByType[d.typ], ", ")), "")
			return
		}
	}
	body, err := readBody(w, r, cur.args.MaxBody)
	if err != nil {
		c.failErr(w, route, err)
		return
	}
	pb, err := parsePushBody(r.Context(), r.Header.Get("Content-Type"), body, r.URL.Query())
	if err != nil {
		c.refuseBody(route, err)
		c.fail(w, route, http.StatusBadRequest, err.Error(), "")
		return
	}
	o := op{Verb: verb, Metric: metric, Time: nowFunc().UnixMilli()}
	if !hasVerb {
		o.Verb = "reset"
		if pb.labels != nil || pb.named != nil {
			o.Verb = "delete"
		}
	}
	if o.Verb != "reset" {
		if o.Labels, o.Value, err = pb.resolve(d, o.Verb); err != nil {
			c.fail(w, route, http.StatusBadRequest, err.Error(), "")
			return
		}
	}
	key := r.Header.Get("Idempotency-Key")
	if key != "" && !c.dedup.claim("api\x00"+key) {
		c.m.duplicates.WithLabelValues(route).Inc()
		c.m.count(route, http.StatusOK)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "duplicate: already applied")
		return
	}
	errs, b := c.store.apply([]op{o})
	if errs[0] == nil {
		errs[0] = b.wait()
	}
	if errs[0] != nil {
		if key != "" {
			c.dedup.release("api\x00" + key)
		}
		if errors.Is(errs[0], errNotDurable) {
			c.errLog.Error("persisting pushed state", "err", errs[0])
			c.fail(w, route, http.StatusInternalServerError, errs[0].Error(), "")
			return
		}
		c.failErr(w, route, errs[0])
		return
	}
	c.m.count(route, http.StatusNoContent)
	w.WriteHeader(http.StatusNoContent)
}

func (c *Component) serveHook(w http.ResponseWriter, r *http.Request, cur *current, name string) {
	const route = "hook"
	if r.Method != http.MethodPost {
		c.fail(w, route, http.StatusMethodNotAllowed, "use POST", "POST")
		return
	}
	h := cur.plan.hooks[name]
	if h == nil {
		c.fail(w, route, http.StatusNotFound, fmt.Sprintf("unknown webhook %q", truncate(name, 100)), "")
		return
	}
	// What can be checked without the body is, before reading it; the
	// body is read within the bound on unverified bytes, and verified
	// over its raw bytes before anything parses them.
	now := nowFunc()
	if ok, why := precheckHook(h, r, now); !ok {
		c.refuseHook(w, name, r, why)
		return
	}
	raw, reserved, err := readUnverified(w, r, h.maxBody, cur.plan.maxUnverified, &c.unverified, &c.chunkPool)
	var body []byte
	ok, why := false, ""
	if err == nil {
		if ok, why = verifyHook(h, r, raw, now); ok {
			body = raw.bytes() // verified: out of the budget
		}
	}
	raw.release()
	c.unverified.give(reserved)
	if err != nil {
		var he *httpError
		if errors.As(err, &he) {
			switch he.code {
			case http.StatusServiceUnavailable:
				c.m.bodiesRefused.WithLabelValues("hook:"+name, reasonUnverifiedBudget).Inc()
				c.errLog.Warn("webhook delivery refused: the bound on unverified bytes in flight is reached", "webhook", name, "max_unverified_bytes", cur.plan.maxUnverified, "remote", r.RemoteAddr)
				w.Header().Set("Retry-After", "1")
				w.Header().Set("Connection", "close") // the rest of the body is not wanted
			case http.StatusRequestTimeout:
				c.m.bodiesRefused.WithLabelValues("hook:"+name, reasonBodyTimeout).Inc()
				w.Header().Set("Connection", "close")
			}
		}
		c.failErr(w, route, err)
		return
	}
	if !ok {
		c.refuseHook(w, name, r, why)
		return
	}
	key := deliveryID(h, r)
	if key != "" && !c.dedup.claim("hook\x00"+name+"\x00"+key) {
		c.m.duplicates.WithLabelValues(route).Inc()
		c.m.count(route, http.StatusOK)
		fmt.Fprintln(w, "duplicate delivery: already applied")
		return
	}
	release := func() {
		if key != "" {
			c.dedup.release("hook\x00" + name + "\x00" + key)
		}
	}
	headers := make(map[string]string, len(r.Header))
	for k, v := range r.Header {
		if len(v) > 0 {
			headers[strings.ToLower(k)] = v[0]
		}
	}
	ctx, err := eventContext(r.Context(), body, jsonlimit.Limits{MaxBytes: h.maxBody}, h.event, headers)
	if err != nil {
		release()
		c.refuseBody("hook:"+name, err)
		c.fail(w, route, http.StatusBadRequest, err.Error(), "")
		return
	}
	ops, ruleErrs := evalRules(h.rules, ctx, nowFunc().UnixMilli())
	errs, b := c.store.apply(ops)
	for _, e := range errs {
		var he *httpError
		if errors.As(e, &he) && he.code == http.StatusServiceUnavailable {
			release()
			c.fail(w, route, he.code, he.msg, "")
			return
		}
	}
	for _, e := range errs {
		if e != nil {
			ruleErrs = append(ruleErrs, e)
		}
	}
	if err := b.wait(); err != nil {
		release()
		c.errLog.Error("persisting pushed state", "err", err)
		c.fail(w, route, http.StatusInternalServerError, err.Error(), "")
		return
	}
	if len(ruleErrs) > 0 {
		c.m.ruleErrors.WithLabelValues(name).Add(float64(len(ruleErrs)))
		c.errLog.Warn("webhook rules failed on a delivery", "webhook", name, "errors", len(ruleErrs), "first", ruleErrs[0])
	}
	// A delivery is acknowledged even when a rule failed: the sender
	// retrying it would fail the same way. Failures are counted.
	c.m.count(route, http.StatusOK)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "applied %d changes, %d rule errors\n", len(ops)-countErrs(errs), len(ruleErrs))
}

func countErrs(errs []error) int {
	n := 0
	for _, e := range errs {
		if e != nil {
			n++
		}
	}
	return n
}
