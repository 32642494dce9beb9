"""schoolmon: the command on top of agent and collector."""
