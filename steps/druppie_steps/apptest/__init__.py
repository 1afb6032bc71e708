"""The parts of ``druppie-step test``: what a Python app installs (project), running processes with
a deadline (process), the app's own virtual environment (pyenv) and the JUnit report (junit)."""
