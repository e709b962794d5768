// Package all imports every built-in component, registering them.
package all
