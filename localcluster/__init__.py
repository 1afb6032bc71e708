"""The local cluster: a real Kubernetes with real Flux and Tekton, as plain processes on this machine.

One module per component, each started by `LocalCluster.up` in order and stopped by `down`:

- ``toolchain``    versions (hack/toolchain.env), the build cache, which binaries are missing
- ``process``      starting, waiting for and stopping processes (no component knowledge)
- ``controlplane`` etcd, kube-apiserver, kube-controller-manager, kube-scheduler
- ``network``      the node's bridge (pods reach the host through it) and kube-proxy (Services)
- ``node``         a real kubelet on containerd and runc (or kwok's fake nodes)
- ``registry``     Debian's docker-registry; containerd mirrors registry.example and ghcr.io to it
- ``gitserver``    git over smart HTTP (druppie-apps for Flux; the tests' git server too)
- ``flux``         source-controller and kustomize-controller
- ``tekton``       Tekton Pipelines from its release manifests, images built from the Go module
- ``ociimage``     FROM-scratch images without a container engine

`python -m localcluster up|down|status` (and `make cluster-up` / `cluster-down`), the e2e
fixtures, the benchmarks and the demo all use `LocalCluster`. Nothing here imports tests/.
"""
