"""Facts about the catalog that several test modules check against."""

# The ServiceAccount each pipeline task of ours must run under.
TASK_ACCOUNTS = {
    "druppie-tag-commit": "druppie-tag-commit",
    "druppie-flux-reconcile-wait": "druppie-flux-wait",
    "druppie-promotion-gate": "druppie-promotion-gate",
    "druppie-git-clone": "druppie-git-clone",
    "druppie-test": "druppie-test",
    "druppie-scan": "druppie-scan",
    "druppie-build": "druppie-build",
    "druppie-summary": "druppie-summary",
    "druppie-commit-status": "druppie-commit-status",
}
