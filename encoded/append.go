package encoded

import (
	"math"
	"strconv"
	"strings"
)

// Writing the text format by hand, for components that encode their
// families themselves (GatherText) rather than through expfmt: the same
// escaping and number formatting, so that the bytes are expfmt's.

// AppendEscaped appends s escaped as the text format escapes a label value
// (labelValue: backslash, newline and double quote) or a HELP text
// (backslash and newline).
func AppendEscaped(b []byte, s string, labelValue bool) []byte {
	if !strings.ContainsAny(s, "\\\n\"") {
		return append(b, s...)
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			b = append(b, `\\`...)
		case c == '\n':
			b = append(b, `\n`...)
		case c == '"' && labelValue:
			b = append(b, `\"`...)
		default:
			b = append(b, c)
		}
	}
	return b
}

// AppendFloat appends a sample value as the text format writes it.
func AppendFloat(b []byte, f float64) []byte {
	switch {
	case f == 1:
		return append(b, '1')
	case f == 0:
		return append(b, '0')
	case f == -1:
		return append(b, "-1"...)
	case math.IsNaN(f):
		return append(b, "NaN"...)
	case math.IsInf(f, 1):
		return append(b, "+Inf"...)
	case math.IsInf(f, -1):
		return append(b, "-Inf"...)
	}
	return strconv.AppendFloat(b, f, 'g', -1, 64)
}
