// Package runtime is Sluice's kernel: it loads a config into a graph of
// components and runs them, applies reloads all or nothing, and serves the
// agent's HTTP API. Components do not import it: they implement the
// contract (package pipeline), and sluicecmd wires the runtime.
//
// The lifecycle of a config, in reading order:
//
//	source.go            a config as a load sees it: its bytes and every
//	                     file it refers to, each read once (fileCache);
//	                     hashes of configs and files; its parse, once,
//	                     with the secret ranges every diagnostic about it
//	                     hides. The controller is handed a source and
//	                     reads nothing itself
//	loader.go            parse -> schema check -> reference graph -> cycle
//	                     check -> per block, in topological order: decode
//	                     -> ResolvePaths -> Validate -> Provision -> build
//	decode.go            HCL body -> Arguments struct: the tags, the decoder,
//	                     Validate errors as diagnostics
//	assign.go            an evaluated value -> a field's Go value
//	exprkey.go           what counts as a change of an expression argument
//	values.go            exports -> cty values that expressions see
//	functions.go         env(), file() and the other expression functions
//	functions_buckets.go linear() and exponential() bucket lists
//	checks.go            whole-config checks: two components on one HTTP
//	                     path
//	listen.go            ... or on one socket (ListenAddressUser)
//	controller.go        the Controller: apply a loaded graph
//	                     all-or-nothing: build new nodes, prepare every
//	                     Update, then commit, stop, start; re-evaluate the
//	                     dependents of a changed export
//	controller_status.go the Controller's read-only views: readiness,
//	                     components and their health, self-metrics, and
//	                     for the status UI (runtime/ui) the last reload and
//	                     one component's detail
//	node.go              one running component: run with restart backoff,
//	                     Update/Commit, exports, health
//	watcher.go           reload triggers: fsnotify (SIGHUP and POST
//	                     /-/reload go through Controller.LoadFile too)
//	server.go            /-/healthy, /-/ready, /-/reload,
//	                     /api/v0/components, /metrics
//	mountpath.go         paths components mount on the agent's server
//	diagnostics.go       rendering of load errors
//	redact.go            keeping secrets out of diagnostics, logs and the API
//	describe.go          documentation of registered components
//	                     (sluice components)
//	fixturegraph.go      a config built for `sluice test`: never run,
//	                     driven through the contract's fixture interfaces
//	contract.go          the contract's names, as the runtime uses them
package runtime
