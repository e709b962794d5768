package main

// main.go is generated: the lite distribution's components are defined in
// cmd/sluice-build (liteComponents), and a test there checks that main.go
// is current.
//go:generate go run ../sluice-build --distribution lite --emit-main main.go
