"""The local cluster: a real Kubernetes with real Flux and Tekton, as plain processes on this machine.

One module per component; each is a ``Component`` (component.py) that sees the cluster only
through the narrow ``Context`` (context.py). ``cluster.py`` holds the ordered list and the runner:

- ``bridge``              the node's network bridge; the servers listen on its gateway address
- ``etcd``                the API server's store
- ``registry``            Debian's docker-registry; containerd pulls registry.example and ghcr.io from it
- ``gitserver``           git over smart HTTP: druppie-apps for Flux (and the tests' in-process git server)
- ``gitea``               Gitea, the forge of the CI/CD loop (its API client: ``gitea_api``)
- ``apiserver``           kube-apiserver, its certificates, the admin's random token and kubeconfig
- ``controller_manager``  kube-controller-manager
- ``scheduler``           kube-scheduler
- ``flux``                Flux's CRDs, source-controller and kustomize-controller
- ``containerd``          the node's container runtime (Debian's containerd and runc), the pause image
- ``containerd2``         instead, containerd v2 and runc v1.5.3 (DRUPPIE_CONTAINERD=2): pods with hostUsers: false
- ``kubelet``             a real kubelet, the node ``druppie-node``
- ``kwok``                kwok's fake node instead (DRUPPIE_NODE_SIDE=kwok)
- ``kube_proxy``          Services in iptables mode
- ``kube_router``         NetworkPolicy enforcement (kube-router's policy controller only)
- ``tekton``              Tekton Pipelines from its release config, with a non-root shell image
- ``storage``             local-path-provisioner, the default StorageClass
- ``dns``                 CoreDNS behind the kube-dns Service
- ``triggers``            Tekton Triggers from its release config

Shared plumbing: ``release`` (a Go project's release config with ko:// references replaced by
locally built images), ``ociimage`` (FROM-scratch images without a container engine),
``process`` (processes and probes), ``toolchain`` (versions and the build cache).

`python -m localcluster up|down|status` (and `make cluster-up` / `cluster-down`), the e2e
fixtures, the benchmarks and the demo (through testbed/) all use ``LocalCluster``. Nothing here
imports tests/ or testbed/.
"""
