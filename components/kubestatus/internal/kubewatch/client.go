// Package kubewatch is a small Kubernetes API client for
// kubernetes_status_source: JSON requests, and list+watch of one resource
// decoded straight into the caller's trimmed structs.
//
// Why not client-go's typed clientset, informers and dynamic client: they
// register every API group's types at start (about 19 MiB of each sluice
// agent's idle RSS, whether or not the component is configured) and decode
// every object in full before it can be trimmed (most of the memory held
// per watched object). Here a watch event is decoded into a struct holding
// only the fields the status rules read; everything else is skipped by the
// JSON decoder without being allocated. client-go's rest package is still
// used for what it does well: kubeconfig and in-cluster config, auth, TLS.
package kubewatch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"k8s.io/client-go/rest"
)

// Client sends requests to one API server.
type Client struct {
	http      *http.Client
	base      *url.URL
	userAgent string
}

// New builds a client from a rest.Config (auth, TLS and proxy as client-go
// would use them).
func New(cfg *rest.Config) (*Client, error) {
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes HTTP client: %w", err)
	}
	base, _, err := rest.DefaultServerUrlFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes API server address: %w", err)
	}
	return &Client{http: hc, base: base, userAgent: cfg.UserAgent}, nil
}

// Resource names a resource: Group "" is the core group.
type Resource struct {
	Group, Version, Resource string
}

// Path is the URL path of the resource in namespace ns ("" = all
// namespaces, or a cluster-scoped resource), or of the object name.
func (r Resource) Path(ns, name string) string {
	var b strings.Builder
	if r.Group == "" {
		b.WriteString("/api/" + r.Version)
	} else {
		b.WriteString("/apis/" + r.Group + "/" + r.Version)
	}
	if ns != "" {
		b.WriteString("/namespaces/" + url.PathEscape(ns))
	}
	b.WriteString("/" + r.Resource)
	if name != "" {
		b.WriteString("/" + url.PathEscape(name))
	}
	return b.String()
}

// APIError is an error answer of the API server (its Status object).
type APIError struct {
	Code    int
	Reason  string // e.g. Forbidden, NotFound, Conflict, Expired, Gone
	Message string
}

func (e *APIError) Error() string {
	if e.Message != "" {
		return e.Message
	}
	return fmt.Sprintf("the server answered %d %s", e.Code, e.Reason)
}

// Code returns the HTTP status code of an APIError in err's chain, else 0.
func Code(err error) int {
	var e *APIError
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}

// IsGone reports a resource version too old to watch from (410 Gone or
// reason Expired): the caller must list again.
func IsGone(err error) bool {
	var e *APIError
	return errors.As(err, &e) && (e.Code == http.StatusGone || e.Reason == "Expired" || e.Reason == "Gone")
}

// status is the part of a metav1.Status the client reads.
type status struct {
	Kind    string `json:"kind"`
	Code    int    `json:"code"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// maxErrorBody bounds what is read of an error answer.
const maxErrorBody = 64 << 10

// errorOf turns a non-2xx answer into an APIError.
func errorOf(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var st status
	if json.Unmarshal(b, &st) == nil && st.Kind == "Status" {
		if st.Code == 0 {
			st.Code = resp.StatusCode
		}
		return &APIError{Code: st.Code, Reason: st.Reason, Message: st.Message}
	}
	msg := strings.TrimSpace(string(b))
	if len(msg) > 200 {
		msg = msg[:200] + "..."
	}
	return &APIError{Code: resp.StatusCode, Reason: http.StatusText(resp.StatusCode),
		Message: fmt.Sprintf("the server answered %s: %s", resp.Status, msg)}
}

// request sends one request; the caller closes the body of a 2xx answer.
func (c *Client) request(ctx context.Context, method, path string, q url.Values, body any) (*http.Response, error) {
	u := *c.base
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	u.RawQuery = q.Encode()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encoding the request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.userAgent != "" {
		req.Header.Set("User-Agent", c.userAgent)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer resp.Body.Close()
		return nil, errorOf(resp)
	}
	return resp, nil
}

// maxObjectBody bounds a single-object answer (Do).
const maxObjectBody = 4 << 20

// Do sends a JSON request (body nil: none) and decodes a JSON answer into
// into (nil: discarded). An error answer is an *APIError.
func (c *Client) Do(ctx context.Context, method, path string, body, into any) error {
	resp, err := c.request(ctx, method, path, nil, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if into == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxObjectBody))
		return nil
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxObjectBody+1))
	if err != nil {
		return fmt.Errorf("reading the answer: %w", err)
	}
	if len(b) > maxObjectBody {
		return fmt.Errorf("answer larger than %d bytes", maxObjectBody)
	}
	if err := json.Unmarshal(b, into); err != nil {
		return fmt.Errorf("decoding the answer: %w", err)
	}
	return nil
}

// Readyz asks the API server for a sign of life (GET /readyz).
func (c *Client) Readyz(ctx context.Context) error {
	return c.Do(ctx, http.MethodGet, "/readyz", nil, nil)
}
