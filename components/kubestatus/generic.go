package kubestatus

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/sluicehq/sluice/components/kubestatus/internal/kubewatch"
)

// genericRule is the status rule of a group/version/resource kind: the
// value at path, looked up in values; failed values set <metric>_failed.
type genericRule struct {
	key    string
	path   []string
	values map[string]Status
	failed map[string]bool
}

// parseStatusPath splits "status.health.status" (a leading "." is allowed,
// as in kubectl's jsonpath).
func parseStatusPath(s string) ([]string, error) {
	s = strings.TrimPrefix(s, ".")
	parts := strings.Split(s, ".")
	for _, p := range parts {
		if p == "" {
			return nil, fmt.Errorf("status_path %q: empty field name", s)
		}
	}
	return parts, nil
}

func newGenericRule(path string, valueMap map[string]int, failed []string) (*genericRule, error) {
	parts, err := parseStatusPath(path)
	if err != nil {
		return nil, err
	}
	r := &genericRule{path: parts, values: map[string]Status{}, failed: map[string]bool{}}
	var key strings.Builder
	key.WriteString(strings.Join(parts, ".") + "|")
	for _, v := range slices.Sorted(maps.Keys(valueMap)) {
		r.values[v] = Status(valueMap[v])
		fmt.Fprintf(&key, "%q=%d,", v, valueMap[v])
	}
	key.WriteString("|")
	for _, v := range slices.Sorted(slices.Values(failed)) {
		r.failed[v] = true
		fmt.Fprintf(&key, "%q,", v)
	}
	r.key = key.String()
	return r, nil
}

// value renders the field at the rule's path of a JSON object as a
// string: strings as they are, integers in decimal, other numbers as Go's
// %g, bools as true/false; ok is false when the field is absent, null, or
// an object or a list.
func (r *genericRule) value(obj []byte) (string, bool) {
	raw := json.RawMessage(obj)
	for _, f := range r.path {
		var m map[string]json.RawMessage
		if json.Unmarshal(raw, &m) != nil {
			return "", false
		}
		v, ok := m[f]
		if !ok {
			return "", false
		}
		raw = v
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil {
		return "", false
	}
	switch x := v.(type) {
	case string:
		return x, true
	case bool:
		return strconv.FormatBool(x), true
	case json.Number:
		if i, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return strconv.FormatInt(i, 10), true
		}
		if f, err := x.Float64(); err == nil {
			return strconv.FormatFloat(f, 'g', -1, 64), true
		}
	}
	return "", false
}

// status applies a rule to a JSON object: an unmapped or absent value is
// Unknown.
func (r *genericRule) status(obj []byte) Result {
	v, ok := r.value(obj)
	if !ok {
		return Result{}
	}
	return Result{Status: r.values[v], Failed: r.failed[v]}
}

// genericObject is an object of a group/version/resource kind, trimmed at
// decoding to its identity and the rule's result: the value at the status
// path is read while the event's bytes are at hand, nothing else is kept.
type genericObject struct {
	rule *genericRule
	meta kubewatch.Meta
	res  Result
}

// UnmarshalJSON implements json.Unmarshaler.
func (g *genericObject) UnmarshalJSON(b []byte) error {
	var m struct {
		Metadata kubewatch.Meta `json:"metadata"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	g.meta = m.Metadata
	g.res = g.rule.status(b)
	return nil
}

func (g *genericObject) GetMeta() *kubewatch.Meta { return &g.meta }
func (g *genericObject) result() Result           { return g.res }
