package runtime

import "github.com/sluicehq/sluice/pipeline"

// The contract's names the runtime uses unqualified. They keep the files
// that moved here from package pipeline as they were, so that edits made
// to them on other branches merge; new code may qualify them.
type (
	// Component types and their registration.
	ComponentType  = pipeline.ComponentType
	Instance       = pipeline.Instance
	Stability      = pipeline.Stability
	Options[E any] = pipeline.Options[E]
	Pending        = pipeline.Pending
	HTTPMounter    = pipeline.HTTPMounter

	// The optional interfaces of Arguments.
	SetDefaulter      = pipeline.SetDefaulter
	Validator         = pipeline.Validator
	PathResolver      = pipeline.PathResolver
	FileReferrer      = pipeline.FileReferrer
	HTTPPathUser      = pipeline.HTTPPathUser
	Provisioner       = pipeline.Provisioner
	ListenAddressUser = pipeline.ListenAddressUser
	ListenAddress     = pipeline.ListenAddress

	// Health.
	Health         = pipeline.Health
	HealthState    = pipeline.HealthState
	HealthReporter = pipeline.HealthReporter

	// Errors that point into a block.
	AttrError  = pipeline.AttrError
	BlockError = pipeline.BlockError
)

const (
	HealthUnknown   = pipeline.HealthUnknown
	HealthHealthy   = pipeline.HealthHealthy
	HealthUnhealthy = pipeline.HealthUnhealthy
	HealthExited    = pipeline.HealthExited

	PathMetrics    = pipeline.PathMetrics
	PathHealthy    = pipeline.PathHealthy
	PathReady      = pipeline.PathReady
	PathReload     = pipeline.PathReload
	PathComponents = pipeline.PathComponents
)
