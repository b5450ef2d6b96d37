// Package kubernetes holds the Kubernetes manifests of lxcfs-oci (YAML files
// beside this one) and, in its test, their validation: each document is
// decoded strictly into the Kubernetes API types, so a misspelt or
// misplaced field fails, and the settings the daemon and the hook depend on
// are checked. No cluster is involved.
package kubernetes
