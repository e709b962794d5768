package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/url"
	"strconv"
	"strings"

	"github.com/sluicehq/sluice/jsonlimit"
)

// pushBody is what an API request carries: a value and label values.
type pushBody struct {
	value    string // "" when absent
	hasValue bool
	labels   []string // positional, in the metric's order; nil when absent
	named    map[string]string
}

// maxField bounds one form or multipart field.
const maxField = 64 << 10

// parsePushBody reads value and labels from a body of the given content
// type: application/x-www-form-urlencoded, multipart/form-data (curl -F)
// or application/json. query is the URL's query, read as a form too.
func parsePushBody(ctx context.Context, contentType string, body []byte, query url.Values) (pushBody, error) {
	var pb pushBody
	mt, params, err := mime.ParseMediaType(contentType)
	if contentType == "" {
		mt, err = "application/x-www-form-urlencoded", nil
	}
	if err != nil {
		return pb, fmt.Errorf("bad Content-Type: %v", err)
	}
	form := url.Values{}
	switch mt {
	case "application/x-www-form-urlencoded":
		if form, err = url.ParseQuery(string(body)); err != nil {
			return pb, fmt.Errorf("bad form body: %v", err)
		}
	case "multipart/form-data":
		if params["boundary"] == "" {
			return pb, errors.New("multipart body without boundary")
		}
		mr := multipart.NewReader(strings.NewReader(string(body)), params["boundary"])
		for {
			part, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				return pb, fmt.Errorf("bad multipart body: %v", err)
			}
			name := part.FormName()
			b, err := io.ReadAll(io.LimitReader(part, maxField+1))
			if err != nil {
				return pb, fmt.Errorf("bad multipart body: %v", err)
			}
			if len(b) > maxField {
				return pb, fmt.Errorf("multipart field %q is too long", name)
			}
			if name == "value" || name == "labels" {
				form.Add(name, string(b))
			}
		}
	case "application/json":
		return parseJSONBody(ctx, body)
	default:
		return pb, fmt.Errorf("unsupported Content-Type %q: use a form, multipart/form-data or application/json", mt)
	}
	for k, vs := range query {
		if _, set := form[k]; !set {
			form[k] = vs
		}
	}
	if vs, ok := form["value"]; ok {
		if len(vs) != 1 {
			return pb, errors.New("value given more than once")
		}
		pb.value, pb.hasValue = strings.TrimSpace(vs[0]), true
	}
	if vs, ok := form["labels"]; ok {
		if len(vs) != 1 {
			return pb, errors.New("labels given more than once")
		}
		pb.labels = splitLabels(vs[0])
	}
	return pb, nil
}

// splitLabels splits "a,b" into positional values; "" is no labels.
func splitLabels(s string) []string {
	if s == "" {
		return []string{}
	}
	return strings.Split(s, ",")
}

func parseJSONBody(ctx context.Context, body []byte) (pushBody, error) {
	var pb pushBody
	// The one decoding path's limits first (depth, time): the body is only
	// checked there, nothing is built.
	if _, err := jsonlimit.Decode(ctx, body, jsonlimit.Limits{}, nil); err != nil {
		return pb, fmt.Errorf("bad JSON body: %w", err)
	}
	var raw struct {
		Value  json.RawMessage `json:"value"`
		Labels json.RawMessage `json:"labels"`
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return pb, fmt.Errorf("bad JSON body: %v", err)
	}
	if dec.More() {
		return pb, errors.New("bad JSON body: more than one value")
	}
	if len(raw.Value) > 0 && string(raw.Value) != "null" {
		pb.hasValue = true
		var f json.Number
		var s string
		switch {
		case json.Unmarshal(raw.Value, &f) == nil:
			pb.value = f.String()
		case json.Unmarshal(raw.Value, &s) == nil:
			pb.value = strings.TrimSpace(s)
		default:
			return pb, errors.New("value must be a number")
		}
	}
	if len(raw.Labels) > 0 && string(raw.Labels) != "null" {
		var named map[string]string
		var list []string
		var s string
		switch {
		case json.Unmarshal(raw.Labels, &named) == nil:
			pb.named = named
		case json.Unmarshal(raw.Labels, &list) == nil:
			pb.labels = list
		case json.Unmarshal(raw.Labels, &s) == nil:
			pb.labels = splitLabels(s)
		default:
			return pb, errors.New(`labels must be an object {"name": "value"}, a list or a comma-separated string`)
		}
	}
	return pb, nil
}

// resolve turns the body into an op for metric d: labels in d's order and
// the value parsed (defaultValue when absent, if allowed).
func (pb pushBody) resolve(d *metricDef, verb string) (labels []string, value float64, err error) {
	switch {
	case pb.named != nil:
		if len(pb.named) != len(d.labels) {
			return nil, 0, fmt.Errorf("metric %s has labels %s, got %d", d.name, strings.Join(d.labels, ","), len(pb.named))
		}
		labels = make([]string, len(d.labels))
		for i, n := range d.labels {
			v, ok := pb.named[n]
			if !ok {
				return nil, 0, fmt.Errorf("label %s is missing", n)
			}
			labels[i] = v
		}
	case pb.labels != nil:
		labels = pb.labels
	default:
		labels = []string{}
	}
	if len(labels) != len(d.labels) {
		return nil, 0, fmt.Errorf("metric %s has %d labels (%s), got %d values", d.name, len(d.labels), strings.Join(d.labels, ","), len(labels))
	}
	if !pb.hasValue || pb.value == "" {
		if verb == "inc" || verb == "dec" {
			return labels, 1, nil
		}
		if verb == "delete" {
			return labels, 0, nil
		}
		return nil, 0, errors.New("value is missing")
	}
	value, err = strconv.ParseFloat(pb.value, 64)
	if err != nil {
		return nil, 0, fmt.Errorf("value %q is not a number", truncate(pb.value, 40))
	}
	return labels, value, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
