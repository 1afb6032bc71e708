"""GitOps plumbing: image references, the YAML image edit, and git clone/commit/push."""
