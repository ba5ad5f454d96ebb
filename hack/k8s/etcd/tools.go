//go:build tools

// Package tools pins the etcd server command built by hack/k8s/build so that
// `go mod tidy` records its full dependency set in go.sum. It is never
// compiled into anything.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
)
