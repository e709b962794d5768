package runtime

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
)

// LookupEnvFunc is how env() reads the environment; tests substitute it.
type LookupEnvFunc func(string) (string, bool)

// functions returns the functions available in expressions. Relative paths
// given to file() resolve against configDir; file() reads through readFile
// (the load's cache) and onRead (if not nil) learns every file it reads, so
// that the controller can reload when one changes.
func functions(configDir string, lookupEnv LookupEnvFunc, readFile func(string) ([]byte, error), onRead func(string)) map[string]function.Function {
	if lookupEnv == nil {
		lookupEnv = os.LookupEnv
	}
	if readFile == nil {
		readFile = os.ReadFile
	}
	return map[string]function.Function{
		"env":  envFunc(lookupEnv),
		"file": fileFunc(configDir, readFile, onRead),

		"upper":      stdlib.UpperFunc,
		"lower":      stdlib.LowerFunc,
		"trimspace":  stdlib.TrimSpaceFunc,
		"trimprefix": stdlib.TrimPrefixFunc,
		"trimsuffix": stdlib.TrimSuffixFunc,
		"replace":    stdlib.ReplaceFunc,
		"split":      stdlib.SplitFunc,
		"join":       stdlib.JoinFunc,
		"format":     stdlib.FormatFunc,
		"substr":     stdlib.SubstrFunc,
		"regex":      stdlib.RegexFunc,
		"concat":     stdlib.ConcatFunc,
		"merge":      stdlib.MergeFunc,
		"length":     stdlib.LengthFunc,
		"contains":   stdlib.ContainsFunc,
		"coalesce":   stdlib.CoalesceFunc,
		"distinct":   stdlib.DistinctFunc,
		"flatten":    stdlib.FlattenFunc,
		"keys":       stdlib.KeysFunc,
		"values":     stdlib.ValuesFunc,
		"lookup":     stdlib.LookupFunc,
		"min":        stdlib.MinFunc,
		"max":        stdlib.MaxFunc,
		"parseint":   stdlib.ParseIntFunc,
		"jsondecode": stdlib.JSONDecodeFunc,
		"jsonencode": stdlib.JSONEncodeFunc,
		"tostring":   stdlib.MakeToFunc(cty.String),
		"tonumber":   stdlib.MakeToFunc(cty.Number),
		"tobool":     stdlib.MakeToFunc(cty.Bool),

		"linear":      linearFunc, // histogram buckets: functions_buckets.go
		"exponential": exponentialFunc,
	}
}

// envFunc is env(NAME) or env(NAME, DEFAULT). An unset variable without a
// default is an error, so a typo never silently becomes "".
func envFunc(lookupEnv LookupEnvFunc) function.Function {
	return function.New(&function.Spec{
		Description: "Reads an environment variable, with an optional default.",
		Params:      []function.Parameter{{Name: "name", Type: cty.String}},
		VarParam:    &function.Parameter{Name: "default", Type: cty.String},
		Type:        function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			if len(args) > 2 {
				return cty.NilVal, fmt.Errorf("env takes a name and at most one default, got %d arguments", len(args))
			}
			name := args[0].AsString()
			if v, ok := lookupEnv(name); ok {
				return cty.StringVal(v), nil
			}
			if len(args) == 2 {
				return args[1], nil
			}
			return cty.NilVal, fmt.Errorf("environment variable %q is not set; set it or give a default: env(%q, \"...\")", name, name)
		},
	})
}

func fileFunc(configDir string, readFile func(string) ([]byte, error), onRead func(string)) function.Function {
	return function.New(&function.Spec{
		Description: "Reads a file, relative to the config file's directory.",
		Params:      []function.Parameter{{Name: "path", Type: cty.String}},
		Type:        function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			p := args[0].AsString()
			if !filepath.IsAbs(p) {
				p = filepath.Join(configDir, p)
			}
			if onRead != nil {
				onRead(p)
			}
			b, err := readFile(p)
			if err != nil {
				return cty.NilVal, fmt.Errorf("reading %s: %w", p, err)
			}
			return cty.StringVal(string(b)), nil
		},
	})
}
