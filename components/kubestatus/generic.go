package kubestatus

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
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

// value renders the field at the rule's path as a string: strings as they
// are, numbers and bools as Go formats them; ok is false when the field is
// absent or is an object or a list.
func (r *genericRule) value(obj map[string]any) (string, bool) {
	v, found, err := unstructured.NestedFieldNoCopy(obj, r.path...)
	if !found || err != nil {
		return "", false
	}
	switch x := v.(type) {
	case string:
		return x, true
	case bool:
		return strconv.FormatBool(x), true
	case int64:
		return strconv.FormatInt(x, 10), true
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64), true
	}
	return "", false
}

// status applies a rule to an object: an unmapped or absent value is
// Unknown.
func (r *genericRule) status(obj map[string]any) Result {
	v, ok := r.value(obj)
	if !ok {
		return Result{}
	}
	return Result{Status: r.values[v], Failed: r.failed[v]}
}

// trim keeps of an unstructured object only its identity and the field
// the rule reads.
func (r *genericRule) trim(u *unstructured.Unstructured) *unstructured.Unstructured {
	md := map[string]any{}
	in, _ := u.Object["metadata"].(map[string]any)
	for _, f := range []string{"name", "namespace", "uid", "resourceVersion", "generation"} {
		if v, ok := in[f]; ok {
			md[f] = v
		}
	}
	out := &unstructured.Unstructured{Object: map[string]any{"metadata": md}}
	if v, found, err := unstructured.NestedFieldNoCopy(u.Object, r.path...); found && err == nil {
		_ = unstructured.SetNestedField(out.Object, v, r.path...)
	}
	if av, ok := u.Object["apiVersion"]; ok {
		out.Object["apiVersion"] = av
	}
	if k, ok := u.Object["kind"]; ok {
		out.Object["kind"] = k
	}
	return out
}
