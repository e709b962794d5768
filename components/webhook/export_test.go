package webhook

import "github.com/sluicehq/sluice/internal/faultfs"

// SetFS makes c write its state through fsys (tests inject faults); call
// before Run.
func SetFS(c *Component, fsys faultfs.FS) { c.fs = fsys }
