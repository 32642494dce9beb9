"""schoolmon: the command on top of agent and collector."""

# The one place the release version is written: pyproject.toml reads it (setuptools
# `dynamic`), `make dist` names the wheel after it, the Ansible roles pin it, and agents report
# it (from the installed distribution's metadata) in their `agent` samples.
__version__ = "0.1.0"
