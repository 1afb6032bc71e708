"""What the tests, the benchmarks and `make demo` share on top of the local cluster (localcluster/):

- ``loop``       the CI/CD loop installed as a platform team installs it (Gitea, catalog, trigger,
                 Flux), and driven: push a change, find its PipelineRun, read what the app serves
- ``readme``     the commands of a README's bash blocks, so tests and the demo run exactly those
- ``fluxapp``    an isolated Flux app on the cluster: its own repo, namespace, GitRepository, Kustomization
- ``apps``       the example app and its failing variants (tests/fixtures/drone-variants) as fresh copies
- ``registry``   Debian's docker-registry on loopback, open or with htpasswd auth, with a busybox base
- ``kubewatch``  every version of one object as the API shows it, with arrival times
- ``site``       this cluster's own settings around the catalog (its registry's NetworkPolicy allowance)
- ``wait``       poll until something holds, failing with what was waited for

Nothing here imports tests/; tests/support/ holds what only the tests use.
"""
