"""The contract agent and collector share: wire format and config primitives, nothing else."""
