package runtime_test

import (
	"testing"

	"github.com/sluicehq/sluice/internal/testing/doccheck"
)

// The reading-order map in the package doc names every file of the
// runtime, and only those.
func TestReadingOrderMap(t *testing.T) { doccheck.ReadingOrder(t, ".", "doc.go") }
