// Package testfile reads and runs pipeline unit tests: the *.test.hcl
// files of `sluice test` (docs/testing.md). parse.go turns a file into a
// Suite (HCL diagnostics with file:line for anything malformed); run.go
// builds the config under test with runtime.LoadFixtureGraph, plays the
// steps and compares expositions (compare.go).
package testfile

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/prometheus/common/model"

	"github.com/sluicehq/sluice/pipeline"
)

// MaxFileBytes bounds a test file: a test is written by hand.
const MaxFileBytes = 4 << 20

// Suite is one test file.
type Suite struct {
	Filename string
	// ConfigFile is the config under test, resolved against the test
	// file's directory; "" when the config is inline.
	ConfigFile string
	// InlineConfig is the source of an inline config block: the test
	// file's bytes with everything outside the block's body blanked, so
	// that diagnostics point at the test file's own lines.
	InlineConfig []byte
	Env          map[string]string
	Steps        []Step
}

// Step is what happens at one point on the fake clock, in this order: the
// clock advances, the inputs are handed over in file order, the
// expectations are checked.
type Step struct {
	Name    string
	Range   hcl.Range
	Advance time.Duration
	Inputs  []Input
	Expects []Expect
}

// Input is one fixture for one component: Lines, a Request or Rows.
type Input struct {
	Component string
	Range     hcl.Range
	Lines     []string
	Request   *Request
	Rows      *pipeline.FixtureRows
	Output    *CommandOutput
	Response  *Response
}

// CommandOutput is what a command printed and how it exited.
type CommandOutput struct {
	Stdout   string
	ExitCode int
}

// Response is an HTTP API's answer to a poll.
type Response struct {
	Status int
	Body   string
}

// Request is an HTTP request to a component.
type Request struct {
	Method  string
	Path    string
	Headers map[string]string
	Body    string
	// Status is the status the response must have; 0 accepts any 2xx.
	Status int
}

// Match modes of an expectation.
const (
	MatchExact  = "exact"  // the exposition is exactly the listed series
	MatchListed = "listed" // the listed series are there with these values
)

// Expect is the exposition expected at a component after a step.
type Expect struct {
	Component string
	Range     hcl.Range
	Match     string
	Metrics   string // Prometheus text format
}

type fileSchema struct {
	Config *string           `hcl:"config,optional"`
	Env    map[string]string `hcl:"env,optional"`
	Remain hcl.Body          `hcl:",remain"`
}

type stepSchema struct {
	Advance *string  `hcl:"advance,optional"`
	Remain  hcl.Body `hcl:",remain"`
}

type linesSchema struct {
	Lines []string `hcl:"lines"`
}

type rowsSchema struct {
	Query    string      `hcl:"query"`
	Database *string     `hcl:"database,optional"`
	Columns  []string    `hcl:"columns"`
	Rows     [][]*string `hcl:"rows"`
}

type outputSchema struct {
	Stdout   string `hcl:"stdout"`
	ExitCode *int   `hcl:"exit_code,optional"`
}

type responseSchema struct {
	Status *int   `hcl:"status,optional"`
	Body   string `hcl:"body"`
}

type requestSchema struct {
	Method  *string           `hcl:"method,optional"`
	Path    string            `hcl:"path"`
	Headers map[string]string `hcl:"headers,optional"`
	Body    *string           `hcl:"body,optional"`
	Status  *int              `hcl:"status,optional"`
}

type expectSchema struct {
	Match   *string `hcl:"match,optional"`
	Metrics string  `hcl:"metrics"`
}

// onlyAttributes refuses attributes other than names (gohcl's remain
// body would take them silently).
func onlyAttributes(body *hclsyntax.Body, where string, names ...string) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for name, a := range body.Attributes {
		if !slices.Contains(names, name) {
			diags = append(diags, errAt(a.NameRange, "Unsupported argument", fmt.Sprintf("An argument named %q is not expected in %s (expected: %s).", name, where, strings.Join(names, ", "))))
		}
	}
	return diags
}

func errAt(rng hcl.Range, summary, detail string) *hcl.Diagnostic {
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: rng.Ptr()}
}

// Parse reads a test file's source. Relative paths are resolved by the
// caller (Run) against the file's directory.
func Parse(filename string, src []byte) (*Suite, hcl.Diagnostics) {
	if len(src) > MaxFileBytes {
		return nil, hcl.Diagnostics{errAt(hcl.Range{Filename: filename}, "Test file too large", fmt.Sprintf("%d bytes; a test file may have at most %d.", len(src), MaxFileBytes))}
	}
	f, diags := hclsyntax.ParseConfig(src, filename, hcl.InitialPos)
	if diags.HasErrors() {
		return nil, diags
	}
	body := f.Body.(*hclsyntax.Body)
	if d := onlyAttributes(body, "the top level of a test file", "config", "env"); d.HasErrors() {
		return nil, d
	}
	var fs fileSchema
	if d := gohcl.DecodeBody(body, nil, &fs); d.HasErrors() {
		// Unknown blocks end up in Remain; attributes are checked here.
		return nil, d
	}
	s := &Suite{Filename: filename, Env: fs.Env}
	if fs.Config != nil {
		s.ConfigFile = *fs.Config
	}
	for _, b := range body.Blocks {
		switch b.Type {
		case "config":
			if len(b.Labels) != 0 {
				diags = append(diags, errAt(b.DefRange(), "Unexpected label", "A config block has no label: config { ...component blocks... }."))
				continue
			}
			if s.InlineConfig != nil || s.ConfigFile != "" {
				diags = append(diags, errAt(b.DefRange(), "Config given twice", "Give the config under test once: config = \"FILE\" or one config { } block."))
				continue
			}
			s.InlineConfig = blankOutside(src, b.Body.SrcRange)
		case "step":
			st, d := parseStep(b)
			diags = append(diags, d...)
			if st != nil {
				s.Steps = append(s.Steps, *st)
			}
		default:
			diags = append(diags, errAt(b.DefRange(), "Unsupported block type", fmt.Sprintf("Blocks of type %q are not expected here; a test file has config = \"FILE\" (or a config { } block), env = {...} and step \"NAME\" { } blocks.", b.Type)))
		}
	}
	if s.ConfigFile == "" && s.InlineConfig == nil && !diags.HasErrors() {
		diags = append(diags, errAt(body.SrcRange, "No config under test", "Set config = \"FILE\" (relative to the test file) or write the components in a config { } block."))
	}
	if len(s.Steps) == 0 && !diags.HasErrors() {
		diags = append(diags, errAt(body.SrcRange, "No steps", "A test needs at least one step \"NAME\" { } with an expect block."))
	}
	if diags.HasErrors() {
		return nil, diags
	}
	return s, diags
}

// blankOutside returns src with every byte outside rng (the braces
// included) turned into a space, newlines kept: the config parses alone,
// and its positions are the test file's.
func blankOutside(src []byte, rng hcl.Range) []byte {
	out := make([]byte, len(src))
	for i, c := range src {
		inside := i > rng.Start.Byte && i < rng.End.Byte-1
		switch {
		case inside, c == '\n':
			out[i] = c
		default:
			out[i] = ' '
		}
	}
	return out
}

func parseStep(b *hclsyntax.Block) (*Step, hcl.Diagnostics) {
	if len(b.Labels) != 1 {
		return nil, hcl.Diagnostics{errAt(b.DefRange(), "Missing step name", "Write step \"NAME\" { ... }: the name says what the step checks, and failures cite it.")}
	}
	st := &Step{Name: b.Labels[0], Range: b.DefRange()}
	if d := onlyAttributes(b.Body, "a step", "advance"); d.HasErrors() {
		return nil, d
	}
	var ss stepSchema
	diags := gohcl.DecodeBody(b.Body, nil, &ss)
	if diags.HasErrors() {
		return nil, diags
	}
	if ss.Advance != nil {
		d, err := model.ParseDuration(*ss.Advance)
		if err != nil || d < 0 {
			rng := b.Body.Attributes["advance"].Expr.Range()
			return nil, hcl.Diagnostics{errAt(rng, "Invalid advance", fmt.Sprintf("%q is not a duration such as \"30s\", \"5m\" or \"31d\".", *ss.Advance))}
		}
		st.Advance = time.Duration(d)
	}
	for _, ib := range b.Body.Blocks {
		switch ib.Type {
		case "lines", "request", "rows", "output", "response", "expect":
		default:
			diags = append(diags, errAt(ib.DefRange(), "Unsupported block type", fmt.Sprintf("Blocks of type %q are not expected in a step; a step has advance = \"DURATION\" and lines, request, rows, output, response and expect blocks, each labelled with a component ID.", ib.Type)))
			continue
		}
		if len(ib.Labels) != 1 || !strings.Contains(ib.Labels[0], ".") {
			diags = append(diags, errAt(ib.DefRange(), "Missing component ID", fmt.Sprintf("Write %s \"TYPE.NAME\" { ... } with the ID of a component of the config, e.g. \"statsd_receiver.app\".", ib.Type)))
			continue
		}
		id := ib.Labels[0]
		switch ib.Type {
		case "lines":
			var ls linesSchema
			if d := gohcl.DecodeBody(ib.Body, nil, &ls); d.HasErrors() {
				diags = append(diags, d...)
				continue
			}
			st.Inputs = append(st.Inputs, Input{Component: id, Range: ib.DefRange(), Lines: ls.Lines})
		case "rows":
			var rs rowsSchema
			if d := gohcl.DecodeBody(ib.Body, nil, &rs); d.HasErrors() {
				diags = append(diags, d...)
				continue
			}
			fr := &pipeline.FixtureRows{Query: rs.Query, Columns: rs.Columns, Rows: rs.Rows}
			if rs.Database != nil {
				fr.Database = *rs.Database
			}
			bad := false
			for i, row := range rs.Rows {
				if len(row) != len(rs.Columns) {
					diags = append(diags, errAt(ib.Body.Attributes["rows"].Expr.Range(), "Row length differs from columns", fmt.Sprintf("Row %d has %d values for %d columns.", i+1, len(row), len(rs.Columns))))
					bad = true
					break
				}
			}
			if bad {
				continue
			}
			st.Inputs = append(st.Inputs, Input{Component: id, Range: ib.DefRange(), Rows: fr})
		case "output":
			var out outputSchema
			if d := gohcl.DecodeBody(ib.Body, nil, &out); d.HasErrors() {
				diags = append(diags, d...)
				continue
			}
			o := &CommandOutput{Stdout: out.Stdout}
			if out.ExitCode != nil {
				o.ExitCode = *out.ExitCode
				if o.ExitCode < 0 || o.ExitCode > 255 {
					diags = append(diags, errAt(ib.Body.Attributes["exit_code"].Expr.Range(), "Invalid exit code", fmt.Sprintf("%d: an exit code is 0 to 255.", o.ExitCode)))
					continue
				}
			}
			st.Inputs = append(st.Inputs, Input{Component: id, Range: ib.DefRange(), Output: o})
		case "response":
			var rs responseSchema
			if d := gohcl.DecodeBody(ib.Body, nil, &rs); d.HasErrors() {
				diags = append(diags, d...)
				continue
			}
			r := &Response{Status: 200, Body: rs.Body}
			if rs.Status != nil {
				r.Status = *rs.Status
				if r.Status < 100 || r.Status > 599 {
					diags = append(diags, errAt(ib.Body.Attributes["status"].Expr.Range(), "Invalid status", fmt.Sprintf("%d is not an HTTP status code.", r.Status)))
					continue
				}
			}
			st.Inputs = append(st.Inputs, Input{Component: id, Range: ib.DefRange(), Response: r})
		case "request":
			var rs requestSchema
			if d := gohcl.DecodeBody(ib.Body, nil, &rs); d.HasErrors() {
				diags = append(diags, d...)
				continue
			}
			r := &Request{Method: "POST", Path: rs.Path, Headers: rs.Headers}
			if rs.Method != nil {
				r.Method = strings.ToUpper(*rs.Method)
			}
			if rs.Body != nil {
				r.Body = *rs.Body
			}
			if rs.Status != nil {
				r.Status = *rs.Status
				if r.Status < 100 || r.Status > 599 {
					diags = append(diags, errAt(ib.Body.Attributes["status"].Expr.Range(), "Invalid status", fmt.Sprintf("%d is not an HTTP status code.", r.Status)))
					continue
				}
			}
			if !strings.HasPrefix(r.Path, "/") {
				diags = append(diags, errAt(ib.Body.Attributes["path"].Expr.Range(), "Invalid path", fmt.Sprintf("%q: a request path starts with /.", r.Path)))
				continue
			}
			st.Inputs = append(st.Inputs, Input{Component: id, Range: ib.DefRange(), Request: r})
		case "expect":
			var es expectSchema
			if d := gohcl.DecodeBody(ib.Body, nil, &es); d.HasErrors() {
				diags = append(diags, d...)
				continue
			}
			e := Expect{Component: id, Range: ib.DefRange(), Match: MatchExact, Metrics: es.Metrics}
			if es.Match != nil {
				e.Match = *es.Match
			}
			if e.Match != MatchExact && e.Match != MatchListed {
				diags = append(diags, errAt(ib.Body.Attributes["match"].Expr.Range(), "Invalid match", fmt.Sprintf("%q: match is \"exact\" (the exposition is exactly these series) or \"listed\" (these series are there, others may be too).", e.Match)))
				continue
			}
			if _, err := parseExposition(e.Metrics); err != nil {
				diags = append(diags, errAt(ib.Body.Attributes["metrics"].Expr.Range(), "Invalid expected exposition", fmt.Sprintf("The metrics are not in the Prometheus text format: %v.", err)))
				continue
			}
			st.Expects = append(st.Expects, e)
		}
	}
	if diags.HasErrors() {
		return nil, diags
	}
	return st, diags
}
